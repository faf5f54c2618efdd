"""A treatment profile: what one session delivers, validated against the limits."""

import limits

MODE_DC = 0


class Profile:
    def __init__(self, target_ua=15000, duration_s=600, ramp_up_s=30, ramp_down_s=15,
                 reverse=False, mode=MODE_DC):
        self.target_ua = target_ua
        self.duration_s = duration_s
        self.ramp_up_s = ramp_up_s
        self.ramp_down_s = ramp_down_s
        self.reverse = reverse
        self.mode = mode

    def validate(self, ceiling_ua=limits.CEILING_UA):
        """Raise ValueError naming the first bad field; return self when all are valid."""
        _check_int("target_ua", self.target_ua, 1000, ceiling_ua)
        _check_int("duration_s", self.duration_s, limits.MIN_DURATION_S, limits.MAX_DURATION_S)
        _check_int("ramp_up_s", self.ramp_up_s, limits.MIN_RAMP_MS // 1000, 120)
        _check_int("ramp_down_s", self.ramp_down_s, 5, 60)
        if self.reverse is not True and self.reverse is not False:
            raise ValueError("reverse must be true or false")
        if self.mode != MODE_DC:
            raise ValueError("mode not supported")
        return self

    def hard_cap_ms(self):
        return (self.duration_s + self.ramp_up_s + self.ramp_down_s) * 1000 + limits.CAP_EXTRA_MS


def _check_int(name, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(name + " must be an integer")
    if value < lo or value > hi:
        raise ValueError("%s=%d outside %d..%d" % (name, value, lo, hi))
