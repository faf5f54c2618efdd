"""Delivered charge of a session, and in dose mode the dose it must reach.

Integer only: each step's µA·ms go into whole µA·min (`uamin`) plus a remainder below
one µA·min, so every value stays a small int on a 32-bit board and a step allocates
nothing. The session adds the measured current while the output is on (a pause
delivers nothing) and asks `reached()` whether its ramp down must start now for the
total, ramp included, to land on the dose.
"""

from micropython import const

_UAMS_PER_UAMIN = const(60000)


class Charge:
    def __init__(self):
        self.dose_uamin = 0      # 0: not dose mode
        self.near_uamin = 0      # reached() can be True only with at most this much left
        self.clear()

    def set_dose(self, dose_uamin, ramp_uams_max):
        """Dose mode with `dose_uamin` (0: off); `ramp_uams_max`: the most a ramp down
        can deliver in this session (µA·ms, ramp.Ramp.down_uams_from at the highest
        setpoint). It sets `near_uamin`, so the step asks reached() only near the end."""
        self.dose_uamin = dose_uamin
        self.near_uamin = ramp_uams_max // _UAMS_PER_UAMIN + 2

    def clear(self):
        self.uamin = 0           # delivered, µA·min
        self._acc = 0            # µA·ms not yet a whole µA·min

    def add(self, i_ua, dt_ms):
        acc = self._acc + i_ua * dt_ms
        n = acc // _UAMS_PER_UAMIN
        self.uamin += n
        self._acc = acc - n * _UAMS_PER_UAMIN

    def reached(self, ramp_uams):
        """The charge plus `ramp_uams` (what a ramp down from now would still deliver) has
        reached the dose. Small ints: the caller keeps `ramp_uams` below 2**30, and the
        exact comparison runs only once less than that + 2 µA·min is left."""
        left = self.dose_uamin - self.uamin            # µA·min still to deliver
        if left > ramp_uams // _UAMS_PER_UAMIN + 2:
            return False
        return left * _UAMS_PER_UAMIN - self._acc <= ramp_uams

    def remaining_ms(self, i_ua):
        """Time to deliver the rest of the dose at `i_ua` (µA, 0 < i_ua < 178,000), in ms
        to 10 ms. Small ints only (`status` answers with the heap locked): whole minutes,
        then the rest in 10-ms units, never left * 60000 (a bigint from 17,896 µA·min)."""
        left = self.dose_uamin - self.uamin
        if left <= 0:
            return 0
        q = left // i_ua
        return q * 60000 + (left - q * i_ua) * 6000 // i_ua * 10
