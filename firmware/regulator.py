"""Current regulator: PI around a feed-forward, with load-aware anti-wind-up.

The analog source already holds the current; this loop trims the reference so that the
*measured* current equals the setpoint despite the source's gain/offset error.
Integer only (µA, mV, Q8 gains): a step allocates nothing.

Anti-wind-up is a safety feature: while the load needs more voltage than the source
has (compliance limited), the integrator is frozen (and rolled back to its last
on-track value), and the setpoint is held just above what the load can take
(feed-forward from the estimated load and the rail), so a sudden drop of skin
resistance cannot release a wound-up reference as a current jump.

Saturation is recognised incrementally, by the source itself: a persistent shortfall
during which increases of the command move neither the current nor the electrode
voltage as the load says they should (a gain or offset error of the source changes the
ratio, never stops the response; a falling load can raise the current by itself, but
at a rail it cannot raise the voltage), or the command is pinned at its ceiling.
The electrode voltage at that moment becomes the learned rail: the supply may sag
below the board's nominal compliance.
"""

from micropython import const

_KP_Q8 = const(64)            # 0.25
_KI_Q8 = const(77)            # 0.30 per step
_HEADROOM_UA = const(300)     # command above the reachable current while limited
_SLEW_UA = const(250)         # largest change of command per step
_R_MIN_UA = const(500)        # estimate the load only above this current
_LIMIT_ERR_UA = const(100)
_SHORTFALL_STEPS = const(3)   # steps short, with the current not following the command
_WINDOW = const(20)           # while limited: every 20 steps, does the current follow again?
_WINDOW_DU_UA = const(40)     # ... judged only if the command rose at least this much
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
        self._sat = False     # the source is saturated (compliance limited)
        self._short_n = 0
        self._integ_ok = 0    # integrator when last on track: rollback point
        self._u_prev = 0      # command before the last one (its effect is in i_prev)
        self._i_prev = 0
        self._v_prev = 0
        self._win_n = 0
        self._win_u = 0
        self._win_i = 0
        self._win_v = 0

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
        capped = False
        if self.r_ohm > 0:
            reach = (self.rail_mv * 1000) // self.r_ohm + _HEADROOM_UA
            if sp_ua > reach:
                sp_ua = reach
                capped = True
        e = sp_ua - i_ua
        du = self.u_ua - self._u_prev      # the command change whose effect is in di
        di = i_ua - self._i_prev
        dv = v_mv - self._v_prev
        self._u_prev = self.u_ua
        self._i_prev = i_ua
        self._v_prev = v_mv
        if self._sat:
            self._win_n += 1
            if e <= 0:
                self._sat = False          # the current reached the setpoint
            elif self._win_n >= _WINDOW:
                wu = self.u_ua - self._win_u
                if wu > _WINDOW_DU_UA and 2 * (i_ua - self._win_i) >= wu \
                        and v_mv > self._win_v:
                    self._sat = False      # current and voltage follow the command again
                self._win_n = 0
                self._win_u = self.u_ua
                self._win_i = i_ua
                self._win_v = v_mv
        elif e > _LIMIT_ERR_UA and (self.u_ua >= self.ceiling_ua or (du > 0 and (
                2 * di < du or dv <= 0))):
            # the command cannot go up, or it went up and neither the current nor the
            # electrode voltage followed (at a rail the voltage cannot rise; a falling
            # load can make the current rise by itself)
            self._short_n += 1
            if self._short_n >= _SHORTFALL_STEPS:
                self._sat = True
                self._short_n = 0
                self._win_n = 0
                self._win_u = self.u_ua
                self._win_i = i_ua
                self._win_v = v_mv
                if v_mv < self.rail_mv:
                    self.rail_mv = v_mv    # the source stops delivering here
        else:
            self._short_n = 0
        if not self._sat and v_mv > self.rail_mv:
            self.rail_mv = v_mv + self._margin_mv   # it delivered above the assumed rail
        limited = self._sat or capped
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
