"""Independent safety monitor: runs every step, before any new output is applied.

It trusts nothing but the two sense channels, the hardware trip input and what the HAL
actually applied (enable, reference). It never asks the regulator or the session. On a
trip it cuts the output itself and latches the fault until a deliberate `reset()`.
No command can switch it off: the controller calls `check()` unconditionally.
Pulsed mode: the sense channel reads the average; the peak is estimated from the
duty the HAL actually applied (average x 100 / duty) and must stay below TRIP_ABS_UA.
"""

from micropython import const

from limits import (DISABLED_MAX_UA, ENV_HOLD_US, ENV_MARGIN_UA, ENV_SLOPE_UA_S, OPEN_UA,
                    OPEN_V_PCT, SHORT_OHM, TRIP_ABS_UA)

OK = const(0)
F_OVERCURRENT = const(1)   # current above the trip level
F_ENVELOPE = const(2)      # current rising faster than any legitimate ramp
F_SHORT = const(3)         # load below SHORT_OHM
F_SENSOR = const(4)        # current read while disabled / voltage channel at full scale
F_PLAUSIBILITY = const(5)  # commanded current, none read, yet the electrode is not open
F_OVERRUN = const(6)       # loop late while current flows
F_HARD_CAP = const(7)      # treatment time past the independent cap
F_HW_TRIP = const(8)       # hardware comparator
F_EXCEPTION = const(9)     # uncaught exception in the loop (set by main)

NAMES = ("ok", "overcurrent", "envelope", "short", "sensor", "plausibility",
         "overrun", "hard_cap", "hw_trip", "exception")

_SHORT_MIN_UA = const(200)
PLAUS_CMD_UA = const(150)      # plausibility is judged from half the probe drive up
_PLAUS_STEPS = const(3)        # at treatment commands: a blind current sensor lets the
#                                PI push, so judge fast
_PLAUS_PROBE_STEPS = const(40)  # at probe commands: harmless, and a large output
#                                capacitance takes a while to rail on an open circuit
PLAUS_TREAT_UA = const(1000)
_ENERGIZED_UA = const(600)   # above the probe: counts as treatment time


class Safety:
    def __init__(self, hal, board, period_us):
        self._hal = hal
        self._period_us = period_us
        self._overrun_us = 2 * period_us
        self._late_us = period_us + (period_us >> 1)   # a late step (counted)
        self._open_mv = board.COMPLIANCE_MV * OPEN_V_PCT // 100
        self._v_fs_mv = board.V_FS_MV - board.V_FS_MV // 64
        self._plaus_code = 0
        self._treat_code = 0
        self.fault = OK
        self.overruns = 0
        self.worst_dt_us = 0
        self.disarm()

    def arm(self, trip_ua, cap_ms, plaus_code, treat_code):
        """Session start: trip level and hard cap from the validated profile.

        `plaus_code`, `treat_code`: reference codes for PLAUS_CMD_UA and 1 mA (from the
        HAL's calibration), above which a command must show current.
        """
        self.trip_ua = trip_ua if trip_ua < TRIP_ABS_UA else TRIP_ABS_UA
        self.cap_ms = cap_ms
        self.energized_ms = 0
        self._plaus_code = plaus_code
        self._treat_code = treat_code

    def disarm(self):
        """No session: the trip falls to the probe level's neighbourhood."""
        self.trip_ua = TRIP_ABS_UA
        self.cap_ms = 0
        self.energized_ms = 0
        self._base_ua = 0
        self._hold_ua = 0
        self._hold_us = 0
        self._odd = 0
        self._plaus_code = 0

    def reset(self):
        """Deliberate fault reset (user/host): only clears the latch; output stays off."""
        self.fault = OK
        self._base_ua = 0
        self._hold_ua = 0
        self._hold_us = 0
        self._odd = 0

    def check(self, dt_us, dt_ms, i_ua, v_mv):
        """Judge this step's measurements; on a trip cut the output and latch. Return the fault."""
        if self.fault:
            self._hal.off()
            return self.fault
        hal = self._hal
        if dt_us > self.worst_dt_us:
            self.worst_dt_us = dt_us
        if dt_us > self._late_us:
            self.overruns += 1
        f = OK
        enabled = hal.enabled
        if hal.hw_tripped():
            f = F_HW_TRIP
        elif i_ua > self.trip_ua or i_ua * 100 > TRIP_ABS_UA * hal.duty_pct:
            f = F_OVERCURRENT      # average above the trip, or the peak above 30 mA
        elif v_mv >= self._v_fs_mv:
            f = F_SENSOR
        elif enabled:
            # Envelope: the current may follow the fastest legitimate ramp from the
            # lowest level it was recently at, or come back to the level it held within
            # ENV_HOLD_US (a dip, e.g. a rail step through the skin's capacitance), plus
            # a margin; a jump beyond both is a fault.
            base = self._base_ua + (ENV_SLOPE_UA_S * dt_us) // 1000000
            hold = self._hold_ua
            if i_ua > (base if base > hold else hold) + ENV_MARGIN_UA:
                f = F_ENVELOPE
            elif i_ua >= _SHORT_MIN_UA and v_mv * 1000 < SHORT_OHM * i_ua:
                f = F_SHORT
            elif dt_us > self._overrun_us:
                f = F_OVERRUN
            self._base_ua = i_ua if i_ua < base else base
            if i_ua >= hold:
                self._hold_ua = i_ua
                self._hold_us = ENV_HOLD_US
            else:
                self._hold_us -= dt_us
                if self._hold_us <= 0:          # held too long ago: the level now
                    self._hold_ua = i_ua
                    self._hold_us = ENV_HOLD_US
            if self._plaus_code and hal.ref_code >= self._plaus_code \
                    and i_ua < OPEN_UA and v_mv < self._open_mv:
                self._odd += 1
                n = _PLAUS_STEPS if hal.ref_code >= self._treat_code else _PLAUS_PROBE_STEPS
                if self._odd >= n:
                    f = f or F_PLAUSIBILITY
            else:
                self._odd = 0
            if i_ua >= _ENERGIZED_UA:
                self.energized_ms += dt_ms
                if self.cap_ms and self.energized_ms > self.cap_ms:
                    f = f or F_HARD_CAP
        else:
            self._base_ua = 0
            self._hold_ua = 0
            if i_ua > DISABLED_MAX_UA:
                self._odd += 1
                if self._odd >= 2:
                    f = F_SENSOR
            else:
                self._odd = 0
        if f:
            hal.off()
            self.fault = f
        return f
