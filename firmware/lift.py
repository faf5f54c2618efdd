"""Partial-lift detector: the load resistance rising more than LIFT_RATIO within a second.

When one hand's wetted area shrinks while the source holds the current, the current
crowds onto less skin: current density, not current, becomes the hazard. The load seen
from the electrodes rises; this detector compares the newest V/I with the lowest of the
last second, kept in a preallocated ring (no allocation per step).
"""

from micropython import const

import limits

_SLOTS = const(10)   # one R sample per tenth of the window


class LiftDetector:
    def __init__(self):
        self._ring = [0] * _SLOTS     # R history (Ω), 0 = empty
        self.reset()

    def reset(self):
        ring = self._ring
        for k in range(_SLOTS):
            ring[k] = 0
        self._k = 0
        self._ms = 0

    def lifted(self, dt_ms, i_ua, v_mv, sp_ua):
        """True when the load rose past LIFT_RATIO x its lowest value of the last second.

        Judged only while the source holds the current (within 1/8 of the setpoint) and
        above LIFT_MIN_UA, where V/I is meaningful.
        """
        if i_ua < limits.LIFT_MIN_UA or i_ua < sp_ua - (sp_ua >> 3):
            return False
        r = (v_mv * 1000) // i_ua
        ring = self._ring
        lo = r
        for k in range(_SLOTS):
            x = ring[k]
            if x and x < lo:
                lo = x
        self._ms += dt_ms
        if self._ms >= limits.LIFT_WINDOW_MS // _SLOTS:
            self._ms = 0
            ring[self._k] = r
            self._k = (self._k + 1) % _SLOTS
        return r > lo * limits.LIFT_RATIO
