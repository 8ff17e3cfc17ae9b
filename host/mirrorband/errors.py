"""Errors the command line reports as one line with exit status 2."""


class CliError(Exception):
    """A user mistake (bad argument, missing file, unreachable band): one line, exit 2."""
