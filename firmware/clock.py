"""Device time for the log and the schedule: uptime, and wall-clock time once the host sets it.

Boards here have no battery-backed clock, so the wall-clock time (Unix epoch seconds) is
unknown until the host sends `time_set`; from then on it runs from the loop clock.
`update()` is called from main's poll (never from the step): it folds the elapsed
`ticks_us` into whole milliseconds and seconds with `ticks_diff`, so the 2**30 wrap of
the board clock does no harm as long as polls come less than ~9 minutes apart.
`ms` is the same uptime as a millisecond count that wraps at 2**29 (compare with
`ms_diff`): a small int forever, for pollers that must not allocate (the front panel).
"""

from micropython import const

from ticks import ticks_diff

_MS_MASK = const(0x1FFFFFFF)     # `ms` wraps at 2**29
_MS_HALF = const(0x10000000)


def ms_diff(a, b):
    """a - b for wrapping `ms` counts (|a - b| < 2**28 ms, 3 days)."""
    return ((a - b + _MS_HALF) & _MS_MASK) - _MS_HALF


class Clock:
    def __init__(self, ticks_us):
        self._ticks = ticks_us
        self._last = ticks_us()
        self._us = 0              # < 1000
        self._ms = 0              # < 1000
        self.ms = 0               # uptime ms, wrapping at 2**29
        self.uptime_s = 0
        self._epoch0 = None       # wall-clock seconds at uptime_s == _up0
        self._up0 = 0

    def update(self):
        now = self._ticks()
        d = ticks_diff(now, self._last)
        self._last = now
        if d <= 0:
            return
        us = self._us + d
        inc = us // 1000
        self._us = us - inc * 1000
        self.ms = (self.ms + inc) & _MS_MASK
        ms = self._ms + inc
        if ms >= 1000:             # once a second at most, between polls 5 ms apart
            s = ms // 1000
            self.uptime_s += s
            ms -= s * 1000
        self._ms = ms

    def uptime_ms(self):
        return self.uptime_s * 1000 + self._ms

    def set_epoch(self, epoch_s):
        self._epoch0 = epoch_s
        self._up0 = self.uptime_s

    @property
    def valid(self):
        return self._epoch0 is not None

    def epoch(self):
        """Wall-clock seconds, or None when the host has not set the time."""
        if self._epoch0 is None:
            return None
        return self._epoch0 + self.uptime_s - self._up0

    def now_s(self):
        """(seconds, is wall-clock): epoch seconds when known, else uptime seconds."""
        e = self.epoch()
        return (self.uptime_s, False) if e is None else (e, True)
