"""Device time for the log and the schedule: uptime, and wall-clock time once the host sets it.

Boards here have no battery-backed clock, so the wall-clock time (Unix epoch seconds) is
unknown until the host sends `time_set`; from then on it runs from the loop clock.
`update()` is called from main's poll (never from the step): it folds the elapsed
`ticks_us` into whole milliseconds and seconds with `ticks_diff`, so the 2**30 wrap of
the board clock does no harm as long as polls come less than ~9 minutes apart.
`ms` is the same uptime as a millisecond count that wraps at 2**29 (6.2 days; compare
with `ms_diff`, advance with `ms_add`): a small int forever. Every deadline of the poll
is kept in it: a heap-locked poll (a session's) must not allocate, and an uptime in ms
outgrows a 32-bit board's small ints (2**30) after 12.4 days, which used to fault every
session of a board left on that long (MemoryError in the poll: measured on the
emulated RP2040). `uptime_s` is small for 34 years.

Who may set it: `refusal()` (docs/protocol.md, time_set).
"""

# Issue 15, the clock cannot rewrite history: service mode may set any time; otherwise
# the first set after a boot must not be before the log's recorded history (`floor_s`:
# the newest dated record's start + delivered + paused, a lower bound of the true time)
# nor more than TIME_AHEAD_S after it, and later sets stay within TIME_SLEW_S of where
# that first set puts the clock now (drift correction: many small sets cannot add up),
# never before the floor. A board has no battery clock, so the patient's host must be
# able to date each boot's sessions; their order is proven by their numbers
# (treatment_log seq), never by these times.

from micropython import const

from ticks import ticks_diff

_MS_MASK = const(0x1FFFFFFF)     # `ms` wraps at 2**29
# The most a set outside service mode may move a running clock: 5 min, the shortest
# session (limits.MIN_DURATION_S), so a nudge never makes two sessions overlap; a
# crystal clock (±30 ppm: 2.6 s a day) needs it only after ~100 days of uptime.
TIME_SLEW_S = const(300)
# The farthest a first set after a boot may lie past the log's history outside service
# mode: a year (a board put away for longer goes back to its technician). Without it a
# patient could date the next session in 2099 (issue 15).
TIME_AHEAD_S = const(366 * 24 * 3600)
_EARLY = "%d: before the log's newest record (%d): service mode"
_MS_HALF = const(0x10000000)
_SPLIT = const(100000)           # epoch_lo's range: 5 decimal digits


def ms_diff(a, b):
    """a - b for wrapping `ms` counts (|a - b| < 2**28 ms, 3 days)."""
    return ((a - b + _MS_HALF) & _MS_MASK) - _MS_HALF


def ms_add(a, d):
    """The wrapping `ms` count `d` ms after `a` (0 <= d < 2**28)."""
    return (a + d) & _MS_MASK


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
        # epoch(), once set, as epoch_hi * 100000 + epoch_lo: two small ints kept up to
        # date every second, for a reply written during a session (epoch seconds are
        # over 2**30, a heap int on a 32-bit board: 160 B a status, issue 11)
        self.epoch_hi = 0
        self.epoch_lo = 0
        self._anchor = 0          # the last setting in service mode or the first since
        self._anchor_up = 0       # boot (epoch s, at uptime s): later ones stay near it

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
            lo = self.epoch_lo + s
            if lo >= _SPLIT:
                self.epoch_hi += lo // _SPLIT
                lo %= _SPLIT
            self.epoch_lo = lo
        self._ms = ms

    def set_epoch(self, epoch_s, anchor=True):
        """Set the wall-clock time; `anchor`: later sets are judged against this one."""
        if anchor or self._epoch0 is None:
            self._anchor = epoch_s
            self._anchor_up = self.uptime_s
        self._epoch0 = epoch_s
        self._up0 = self.uptime_s
        self.epoch_hi = epoch_s // _SPLIT
        self.epoch_lo = epoch_s % _SPLIT

    def refusal(self, epoch_s, floor_s, service):
        """Why setting `epoch_s` is refused (str), or None; `floor_s`: the log's floor."""
        if service:
            return None
        now = self.epoch()
        if now is None:
            if epoch_s < floor_s:
                return _EARLY % (epoch_s, floor_s)
            if floor_s and epoch_s > floor_s + TIME_AHEAD_S:
                return "%d: over a year after the log's newest record (%d): service mode" % (
                    epoch_s, floor_s)
            return None
        if epoch_s < floor_s:
            return _EARLY % (epoch_s, floor_s)
        near = self._anchor + self.uptime_s - self._anchor_up
        if epoch_s > near + TIME_SLEW_S or epoch_s < near - TIME_SLEW_S:
            return "set this boot (now %d): outside service mode it moves at most %d s" % (
                near, TIME_SLEW_S)
        return None

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
