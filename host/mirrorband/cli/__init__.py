"""The ``mirrorband`` command: one module per command group, each parsing its arguments,
calling the layers below and printing; nothing else lives here."""

from mirrorband.cli.core import main

__all__ = ["main"]
