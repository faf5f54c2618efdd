"""Current regulator: PI around a feed-forward, with load-aware anti-wind-up.

The analog source already holds the current; this loop trims the reference so that the
*measured* current equals the setpoint despite the source's gain/offset error.
Integer only (µA, mV, Q8 gains): a step allocates nothing.

Anti-wind-up is a safety feature: while the load needs more voltage than the source
has (compliance limited), the command is held just above what the load can take
(feed-forward from the estimated load) and the integrator is frozen, so a sudden drop
of skin resistance cannot release a wound-up reference as a current jump.
"""

from micropython import const

_KP_Q8 = const(64)            # 0.25
_KI_Q8 = const(77)            # 0.30 per step
_HEADROOM_UA = const(300)     # command above the reachable current while limited
_SLEW_UA = const(250)         # largest change of command per step
_R_MIN_UA = const(500)        # estimate the load only above this current
_LIMIT_ERR_UA = const(100)


class Regulator:
    def __init__(self, compliance_mv, ceiling_ua, margin_mv):
        self._comp_mv = compliance_mv
        self._rail_mv = compliance_mv - margin_mv
        self.ceiling_ua = ceiling_ua
        self.reset()

    def reset(self):
        self.integ = 0        # Q8 µA
        self.u_ua = 0         # last command
        self.r_ohm = 0        # filtered load estimate (0 = unknown)
        self.limited = False  # the load needs more voltage than the source has

    def step(self, sp_ua, i_ua, v_mv):
        """Return the source command in µA for setpoint `sp_ua` given the measurements.

        The command is in source units (what the HAL's calibration maps to a reference
        code); the setpoint and the measurements are in measured µA.
        """
        if i_ua >= _R_MIN_UA:
            r = (v_mv * 1000) // i_ua
            self.r_ohm = r if self.r_ohm == 0 else self.r_ohm + ((r - self.r_ohm) >> 2)
        # Feed-forward from the estimated load: never aim above what the compliance
        # voltage can push through it (plus a little), so nothing winds up.
        limited = False
        if self.r_ohm > 0:
            reach = (self._comp_mv * 1000) // self.r_ohm + _HEADROOM_UA
            if sp_ua > reach:
                sp_ua = reach
                limited = True
        e = sp_ua - i_ua
        if v_mv >= self._rail_mv and e > _LIMIT_ERR_UA:
            limited = True
        self.limited = limited
        hi = self.ceiling_ua
        raw = sp_ua + ((_KP_Q8 * e + self.integ) >> 8)
        u = raw
        prev = self.u_ua
        if u > prev + _SLEW_UA:
            u = prev + _SLEW_UA
        elif u < prev - _SLEW_UA:
            u = prev - _SLEW_UA
        if u > hi:
            u = hi
        elif u < 0:
            u = 0
        # Integrate only where it cannot wind up: not limited, not at the rail (the
        # error there grows before "limited" is certain), and the command not held by
        # the slew limit or a clamp. The correction learned below the rail is kept.
        if u == raw and not limited and v_mv < self._rail_mv:
            self.integ += _KI_Q8 * e
        self.u_ua = u
        return u
