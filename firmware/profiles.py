"""Treatment profiles: what one session delivers, and the named catalogue.

A `Profile` is validated against the limits (limits.py) before a session starts.
Modes:
    MODE_DC      constant direct current at `target_ua`
    MODE_PULSED  the source is gated by a PWM at `pulse_hz`, on for `duty_pct` % of
                 each period; `target_ua` is the *average* current, the peak is
                 target * 100 / duty and never above the absolute ceiling
    MODE_DOSE    direct current at `target_ua` (<= 4 mA) until the delivered charge
                 reaches `dose_uamin` (µA·min, <= 80 mA·min); `duration_s` is then the
                 longest the session may take
    MODE_CAL     technician calibration hold (service mode only): the reference is
                 driven open loop (no regulator) so the source's own gain is measured
`CATALOG` holds the named profiles of docs/requirements.md, safety numbers; a prescription caps them.
"""

from micropython import const

import limits

MODE_DC = const(0)
MODE_PULSED = const(1)
MODE_DOSE = const(2)
MODE_CAL = const(3)
MODE_NAMES = ("dc", "pulsed", "dose", "cal")


class Profile:
    def __init__(self, target_ua=15000, duration_s=600, ramp_up_s=30, ramp_down_s=15,
                 reverse=False, mode=MODE_DC, pulse_hz=0, duty_pct=100, dose_uamin=0):
        self.target_ua = target_ua
        self.duration_s = duration_s
        self.ramp_up_s = ramp_up_s
        self.ramp_down_s = ramp_down_s
        self.reverse = reverse
        self.mode = mode
        self.pulse_hz = pulse_hz
        self.duty_pct = duty_pct
        self.dose_uamin = dose_uamin
        self.name = None         # the catalogue name (from_catalog), for the log

    def validate(self, ceiling_ua=limits.CEILING_UA):
        """Raise ValueError naming the first bad field; return self when all are valid."""
        _check_int("target_ua", self.target_ua, 1000, ceiling_ua)
        _check_int("duration_s", self.duration_s, limits.MIN_DURATION_S, limits.MAX_DURATION_S)
        _check_int("ramp_up_s", self.ramp_up_s, limits.MIN_RAMP_MS // 1000, 120)
        _check_int("ramp_down_s", self.ramp_down_s, 5, 60)
        if self.reverse is not True and self.reverse is not False:
            raise ValueError("reverse must be true or false")
        m = self.mode
        if m == MODE_PULSED:
            _check_int("pulse_hz", self.pulse_hz, limits.PULSE_HZ_MIN, limits.PULSE_HZ_MAX)
            _check_int("duty_pct", self.duty_pct, limits.DUTY_MIN_PCT, limits.DUTY_MAX_PCT)
            if self.peak_ua() > limits.CEILING_UA:
                raise ValueError("peak %d uA (target_ua %d at duty %d %%) above the ceiling %d"
                                 % (self.peak_ua(), self.target_ua, self.duty_pct,
                                    limits.CEILING_UA))
        elif m == MODE_DC or m == MODE_DOSE or m == MODE_CAL:
            if self.pulse_hz != 0 or self.duty_pct != 100:
                raise ValueError("pulse_hz/duty_pct only in pulsed mode")
        else:
            raise ValueError("mode not supported")
        if m == MODE_DOSE:
            _check_int("target_ua", self.target_ua, 1000, limits.DOSE_MAX_UA)
            _check_int("dose_uamin", self.dose_uamin, 1000, limits.DOSE_CAP_UAMIN)
            if self.dose_uamin * 60 > self.target_ua * self.duration_s:
                raise ValueError("dose_uamin %d not reachable at %d uA in %d s" % (
                    self.dose_uamin, self.target_ua, self.duration_s))
        elif self.dose_uamin != 0:
            raise ValueError("dose_uamin only in dose mode")
        if m == MODE_CAL and self.reverse:
            raise ValueError("no reversal in a calibration hold")
        return self

    def peak_ua(self):
        """Highest instantaneous current the profile asks for (pulsed: average / duty)."""
        return self.target_ua * 100 // self.duty_pct

    def hard_cap_ms(self):
        return (self.duration_s + self.ramp_up_s + self.ramp_down_s) * 1000 + limits.CAP_EXTRA_MS


# name -> the profile's fields (docs/requirements.md, safety numbers, and the devices on the market)
CATALOG = {
    "hands": {"target_ua": 15000, "duration_s": 600, "ramp_up_s": 30, "ramp_down_s": 15},
    "feet": {"target_ua": 20000, "duration_s": 900, "ramp_up_s": 30, "ramp_down_s": 15},
    "child": {"target_ua": 8000, "duration_s": 600, "ramp_up_s": 40, "ramp_down_s": 20},
    # underarm / sensitive skin: pulsed at 4.3 kHz, half duty (peak 20 mA)
    "underarm": {"target_ua": 10000, "duration_s": 600, "ramp_up_s": 30, "ramp_down_s": 15,
                 "mode": MODE_PULSED, "pulse_hz": 4300, "duty_pct": 50},
    # drug delivery: 40 mA·min at 4 mA (10 min), at most 20 min
    "drug": {"target_ua": 4000, "duration_s": 1200, "ramp_up_s": 30, "ramp_down_s": 15,
             "mode": MODE_DOSE, "dose_uamin": 40000},
}
NAMES = ("hands", "feet", "child", "underarm", "drug")


def from_catalog(name, **changes):
    """The named profile with `changes` applied (not yet validated); KeyError if unknown."""
    args = {}      # untyped: the catalogue's int values go to int and bool parameters
    args.update(CATALOG[name])
    args.update(changes)
    p = Profile(**args)
    p.name = name
    return p


def _check_int(name, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(name + " must be an integer")
    if value < lo or value > hi:
        raise ValueError("%s=%d outside %d..%d" % (name, value, lo, hi))
