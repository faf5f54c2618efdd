"""Current regulator: PI around a feed-forward, with load-aware anti-wind-up.

The analog source already holds the current; this loop trims the reference so that the
*measured* current equals the setpoint despite the source's gain/offset error.
Integer only (µA, mV, Q8 gains): a step allocates nothing.

Anti-wind-up is a safety feature: while the load needs more voltage than the source
has (compliance limited), the setpoint is held just above what the load can take
(feed-forward from the estimated load and the rail) and the integrator is frozen, so a
sudden drop of skin resistance cannot release a wound-up reference as a current jump.
The rail is learned, not assumed: the supply can sag below the board's nominal
compliance. Saturation is recognised by the source itself - less current flows than
the last command gives with the correction learned while tracking - and the electrode
voltage at that moment becomes the rail.
"""

from micropython import const

_KP_Q8 = const(64)            # 0.25
_KI_Q8 = const(77)            # 0.30 per step
_HEADROOM_UA = const(300)     # command above the reachable current while limited
_SLEW_UA = const(250)         # largest change of command per step
_R_MIN_UA = const(500)        # estimate the load only above this current
_LIMIT_ERR_UA = const(100)
_SHORTFALL_STEPS = const(3)   # this many steps short by more than _LIMIT_ERR_UA = limited
_TRACK_UA = const(30)         # |error| within this = on track (integrator snapshot)


class Regulator:
    def __init__(self, compliance_mv, ceiling_ua, margin_mv):
        self._comp_mv = compliance_mv
        self._margin_mv = margin_mv
        self.ceiling_ua = ceiling_ua
        self.rail_mv = compliance_mv   # learned compliance rail
        self.reset()

    def new_session(self):
        self.rail_mv = self._comp_mv
        self.reset()

    def reset(self):
        self.integ = 0        # Q8 µA
        self.u_ua = 0         # last command
        self.r_ohm = 0        # filtered load estimate (0 = unknown)
        self.limited = False  # the load needs more voltage than the source has
        self._short_n = 0
        self._integ_ok = 0    # integrator when last on track: rollback point

    def step(self, sp_ua, i_ua, v_mv):
        """Return the source command in µA for setpoint `sp_ua` given the measurements.

        The command is in source units (what the HAL's calibration maps to a reference
        code); the setpoint and the measurements are in measured µA.
        """
        if i_ua >= _R_MIN_UA:
            r = (v_mv * 1000) // i_ua
            self.r_ohm = r if self.r_ohm == 0 else self.r_ohm + ((r - self.r_ohm) >> 2)
        # Feed-forward from the estimated load: never aim above what the rail can push
        # through it (plus a little).
        limited = False
        if self.r_ohm > 0:
            reach = (self.rail_mv * 1000) // self.r_ohm + _HEADROOM_UA
            if sp_ua > reach:
                sp_ua = reach
                limited = True
        # Saturation: less flows than the last command gives with the correction the
        # loop had when it last tracked. Wind-up widens this gap, so it cannot hide.
        gap = self.u_ua - (self._integ_ok >> 8) - i_ua
        if gap > _LIMIT_ERR_UA:
            self._short_n += 1
        else:
            self._short_n = 0
        if self._short_n >= _SHORTFALL_STEPS:
            limited = True
            if v_mv < self.rail_mv:
                self.rail_mv = v_mv       # the source stops delivering here
        elif v_mv > self.rail_mv:
            self.rail_mv = v_mv + self._margin_mv   # it delivered above the assumed rail
        e = sp_ua - i_ua
        if limited:
            if self.integ > self._integ_ok:
                self.integ = self._integ_ok   # undo what gathered while the gap grew
        elif -_TRACK_UA <= e <= _TRACK_UA:
            self._integ_ok = self.integ
        self.limited = limited
        raw = sp_ua + ((_KP_Q8 * e + self.integ) >> 8)
        u = raw
        prev = self.u_ua
        if u > prev + _SLEW_UA:
            u = prev + _SLEW_UA
        elif u < prev - _SLEW_UA:
            u = prev - _SLEW_UA
        hi = self.ceiling_ua
        if u > hi:
            u = hi
        elif u < 0:
            u = 0
        # Integrate only where it cannot wind up: not limited, and the command not
        # held by the slew limit or a clamp.
        if u == raw and not limited:
            self.integ += _KI_Q8 * e
        self.u_ua = u
        return u
