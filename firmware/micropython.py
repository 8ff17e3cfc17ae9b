"""CPython stand-in for MicroPython's built-in ``micropython`` module.

The firmware imports ``from micropython import const`` exactly as on the band.
Under CPython (the host, the tests) this module answers instead; on every
MicroPython port the built-in module takes precedence over a file of the same
name, so this file is never used there (and is not deployed to bands).
"""


def const(expr):
    return expr


def heap_lock():
    return 0


def heap_unlock():
    return 0


def native(func):
    return func


def viper(func):
    return func
