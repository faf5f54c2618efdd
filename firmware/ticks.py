"""Wrapping tick arithmetic, the same on boards and on the CPython host.

MicroPython's `time.ticks_*` wrap at a port-defined period (2**30 on boards, 2**62 on
the unix port).  CPython has no ticks, so the host gets an equivalent with the board
period (2**30), which lets host tests exercise the wrap.  Firmware code uses only
`ticks_diff` and `ticks_add` from here, never plain subtraction of tick values.
"""

try:
    from time import ticks_add, ticks_diff, ticks_us  # MicroPython
except ImportError:  # CPython host: emulate a board's 2**30 period
    import time as _time

    TICKS_PERIOD = 1 << 30
    _MASK = TICKS_PERIOD - 1
    _HALF = TICKS_PERIOD >> 1

    def ticks_add(ticks, delta):
        return (ticks + delta) & _MASK

    def ticks_diff(end, start):
        return ((end - start + _HALF) & _MASK) - _HALF

    def ticks_us():
        return int(_time.monotonic_ns() // 1000) & _MASK
