"""Partial-lift detector: the load resistance rising more than LIFT_RATIO within a second.

When one hand's wetted area shrinks while the source holds the current, the current
crowds onto less skin: current density, not current, becomes the hazard. The load seen
from the electrodes rises; this detector compares the newest V/I with the lowest of the
last second, kept in a preallocated ring (no allocation per step). The ring changes only
when a sample goes in (one per tenth of the window), so its lowest value is found then
(the builtin min, in C) and kept: a step compares with it instead of scanning the ring.
"""

from micropython import const

from limits import LIFT_MIN_UA, LIFT_RATIO, LIFT_WINDOW_MS

_SLOTS = const(10)      # one R sample per tenth of the window
_EMPTY = const(1 << 29)  # an empty slot: above any R (a small int on a 32-bit board)


class LiftDetector:
    def __init__(self):
        self._ring = [_EMPTY] * _SLOTS     # R history (Ω)
        self._slot_ms = LIFT_WINDOW_MS // _SLOTS
        self.reset()

    def reset(self):
        ring = self._ring
        for k in range(_SLOTS):
            ring[k] = _EMPTY
        self._lo = _EMPTY        # the lowest R in the ring
        self._k = 0
        self._ms = 0

    def lifted(self, dt_ms, i_ua, v_mv, sp_ua):
        """True when the load rose past LIFT_RATIO x its lowest value of the last second.

        Judged only while the source holds the current (within 1/8 of the setpoint) and
        above LIFT_MIN_UA, where V/I is meaningful.
        """
        if i_ua < LIFT_MIN_UA or i_ua < sp_ua - (sp_ua >> 3):
            return False
        r = (v_mv * 1000) // i_ua
        lo = self._lo
        if r < lo:
            lo = r
        ms = self._ms + dt_ms
        if ms >= self._slot_ms:
            ms = 0
            k = self._k
            ring = self._ring
            ring[k] = r if r else _EMPTY    # an R of 0 is no sample
            self._k = k + 1 if k + 1 < _SLOTS else 0
            self._lo = min(ring)
        self._ms = ms
        return r > lo * LIFT_RATIO
