"""CPython stand-in for MicroPython's `micropython` module (host only, never flashed)."""


def const(value):
    return value


def native(func):
    return func


def viper(func):
    return func


def alloc_emergency_exception_buf(size):
    pass
