"""Current regulator: PI around a feed-forward, with anti-wind-up that finds the rail's edge.

The analog source already holds the current; this loop trims the reference so that the
*measured* current equals the setpoint despite the source's gain/offset error.
Integer only (µA, mV, Q8 gains): a step allocates nothing. docs/design.md gives the
reasoning; in short:

- *Railed* (the load needs more voltage than the source has) is recognised by the
  source's response, not by a voltage threshold: the command rose and neither the
  current nor the electrode voltage followed, for 3 steps with a shortfall above
  100 µA, or over a 20-step window whatever the shortfall; never with the electrode
  under 40 % of the nominal compliance (a dead source or sensor, not a rail) or
  falling fast (a load that fell, its skin capacitance discharging). The
  electrode voltage there becomes the learned rail (the supply may sag below the
  board's nominal compliance).
- While railed the trim cannot be observed (the current does not depend on the
  command), so it is not integrated. It is rolled back to its value when the current
  last followed the setpoint, scaled down with the setpoint (a gain error is a share
  of the current: a trim learnt at 15 mA is too large at 7 mA), and the command creeps
  down 2 µA per step so that a trim that drifted unseen is found again at the rail's
  edge. The command is held at most 100 µA above the flow the rail lets through
  (`flow_ua`: the current while the electrode is at the rail, held while it is not, so
  that a current lowered by the command itself is not followed down).
- Railed ends when the source shows it left the rail: the electrode 300 mV under the
  learned rail, the current at the setpoint, or the current following the command
  (up with the voltage, or down with it) over a window. The PI integrates again from
  where the railed trim left it: nothing is frozen at a wrong trim. The trim (last
  command less the current) is observed off the rail: on track, when the PI moves the
  command and the current follows, when the current rises past the rail's flow, and -
  after the electrode left the rail, which a sagging supply also does - once current
  and electrode come back up to the rail with the command. The next rail starts from
  the last observation.
- Feed-forward: the setpoint is capped at what the learned rail pushes through the
  estimated load (rail / R_est + 150 µA), so the rail is rarely hit at all.

`limited` (for the session's bumpless ramp and the display): railed, capped by the
feed-forward, or the command pinned at its ceiling short of the setpoint.
"""

from micropython import const

from limits import RAIL_MIN_PCT

_KP_Q8 = const(64)            # 0.25
_KI_Q8 = const(77)            # 0.30 per step
_HEADROOM_UA = const(150)     # feed-forward: aim at most this above what the rail pushes
_SLEW_UA = const(250)         # largest change of command per step
_R_MIN_UA = const(500)        # estimate the load only above this current
_LIMIT_ERR_UA = const(100)    # a shortfall above this, 3 steps, the current not following
_SHORTFALL_STEPS = const(3)
_WINDOW = const(20)           # response window (steps): means of command, current, voltage
_WINDOW_DU_UA = const(40)     # ... judged when the mean command moved at least this much
_RAILED_HEAD_UA = const(100)  # railed: the command aims at most this above the flow
_LEAK_UA = const(2)           # railed: the command creeps down 2 µA/step (0.4 mA/s) ...
_LEAK_MAX_UA = const(30000)   # ... at most this far (Q8 of it stays a small int)
_TRIM_MAX_UA = const(30000)   # |trim| kept below: trim x setpoint stays a small int
_LEAVE_MV = const(300)        # electrode this far under the learned rail: off the rail
_TRACK_UA = const(30)         # |error| within this: on track (the trim is right here)
_DV_FALL_MV = const(500)      # the electrode fell more than this in a step (the window
_WV_FALL_MV = const(150)      # rule: its mean more than _DV_FALL_MV, or the step more than
#                               this): the load fell, its skin capacitance discharging, not
#                               a rail (a rail is flat; a sag falls 25-200 mV a step and is
#                               seen by the 3-step rule)
_I_NOISE_UA = const(50)      # a current this much higher: not ADC noise (3 LSB of 8 µA x 2)
_DV_FOLLOW_MV = const(50)     # the electrode rose less than this: it did not follow (ADC
#                               noise: 1-3 LSB of 16 mV on the sim and Pico dividers)


class Regulator:
    def __init__(self, compliance_mv, ceiling_ua, margin_mv):
        self._comp_mv = compliance_mv
        self._margin_mv = margin_mv
        self.ceiling_ua = ceiling_ua
        self.rail_mv = compliance_mv   # learned compliance rail
        self._floor_mv = compliance_mv * RAIL_MIN_PCT // 100   # no rail below this
        self.reset()

    def new_session(self):
        self.rail_mv = self._comp_mv
        self.reset()

    def reset(self):
        self.integ = 0        # Q8 µA: the trim (command - setpoint) the source needs
        self.u_ua = 0         # last command
        self.r_ohm = 0        # filtered load estimate (0 = unknown)
        self.limited = False  # railed, capped or pinned: the setpoint is out of reach
        self.flow_ua = 0      # the current the source delivers (railed: the rail's, held)
        self._sat = False     # railed: the source is at its compliance voltage
        self._short_n = 0
        self._trim_s = 0      # railed: the trim (µA) it starts from ...
        self._sp_s = 1        # ... and the setpoint it was learnt at (µA, > 0)
        self._trim_ok = 0     # the trim when the current last followed the setpoint
        self._sp_ok = 1       # ... at this setpoint
        self._leak = 0        # railed: how far the command crept down (µA)
        self._u_prev = 0      # command before the last one (its effect is in i_prev)
        self._i_prev = 0
        self._v_prev = 0
        self._win_n = 0       # response window: steps, sums, the last window's sums
        self._su = 0
        self._si = 0
        self._sv = 0
        self._pu = 0
        self._pi = 0
        self._pv = 0
        self._cand = 0        # off the rail by the voltage: the trim it showed, ...
        self._cand_i = 0      # ... at this current, taken once the current comes back
        self._cand_up = 0     # ... up to this (0: nothing pending)
        self._w_trim = 0      # trim and setpoint at the start of the last window
        self._w_sp = 1

    def step(self, sp_ua, i_ua, v_mv):
        """Return the source command in µA for setpoint `sp_ua` given the measurements.

        The command is in source units (what the HAL's calibration maps to a reference
        code); the setpoint and the measurements are in measured µA.
        """
        di = i_ua - self._i_prev
        dv = v_mv - self._v_prev
        if i_ua >= _R_MIN_UA and -_SLEW_UA < di < _SLEW_UA \
                and -_DV_FALL_MV < dv < _DV_FALL_MV:
            # the load from a steady step only: in a step's transient (a rail step
            # discharging the skin's capacitance) V/I is not the load
            r = (v_mv * 1000) // i_ua
            self.r_ohm = r if self.r_ohm == 0 else self.r_ohm + ((r - self.r_ohm) >> 2)
        # Feed-forward from the estimated load: never aim above what the rail can push
        # through it (plus a little).
        capped = False
        push = 0
        if self.r_ohm > 0:
            push = (self.rail_mv * 1000) // self.r_ohm
            if sp_ua > push + _HEADROOM_UA:
                sp_ua = push + _HEADROOM_UA
                capped = True
        sat = self._sat
        if sat:
            # the flow the rail lets through: the current while the electrode is at the
            # rail; held while it is not (the command below the edge lowers the current,
            # and following that down would lower the command further)
            if v_mv >= self.rail_mv - (_LEAVE_MV >> 1):
                self.flow_ua = i_ua
            if sp_ua > self.flow_ua + _RAILED_HEAD_UA:
                sp_ua = self.flow_ua + _RAILED_HEAD_UA
        e = sp_ua - i_ua
        prev = self.u_ua
        du = prev - self._u_prev           # the command change whose effect is in di
        self._u_prev = prev
        self._i_prev = i_ua
        self._v_prev = v_mv
        # response window: compare the means of this window with the last one's
        self._su += prev
        self._si += i_ua
        self._sv += v_mv
        n = self._win_n + 1
        wu = 0
        wi = 0
        wv = 0
        if n >= _WINDOW:
            wu = self._su - self._pu       # x _WINDOW: changes of the means
            wi = self._si - self._pi
            wv = self._sv - self._pv
            if self._pu == 0 and self._pi == 0:
                wu = 0                     # no last window yet
            self._pu = self._su
            self._pi = self._si
            self._pv = self._sv
            self._su = 0
            self._si = 0
            self._sv = 0
            n = 0
        self._win_n = n
        # the current follows the command over the last window (up or down, with the
        # voltage): the source is off the rail, and the current shows the trim there
        # (the last command, whose effect is in i_ua, less the current)
        follows = (wu > _WINDOW * _WINDOW_DU_UA and 4 * wi >= 3 * wu and wv > 0) or (
            wu < -_WINDOW * _WINDOW_DU_UA and 4 * wi <= 3 * wu and wv < 0)
        t_obs = prev - i_ua                # the trim, if the source is off the rail
        i_obs = i_ua
        seen = False
        if sat:
            if v_mv > self.rail_mv:
                self.rail_mv = v_mv        # the rail is at least here
            if e <= 0:
                # the current rose 100 µA above the rail's flow: off the rail
                sat = False
                seen = True
            elif follows or v_mv < self.rail_mv - _LEAVE_MV:
                # The current follows the command, or the electrode left the rail: the
                # command went below the edge (then this trim is right there) or the
                # rail moved (a sag: the source is still railed; the command follows
                # the flow, so the current "follows" it: too large a trim). Which one
                # shows next: the current and the electrode come back up to the rail
                # with the command only in the first case.
                sat = False
                self._cand = t_obs
                self._cand_i = i_ua
                d = (self.flow_ua - i_ua) >> 1
                self._cand_up = i_ua + (d if d > _I_NOISE_UA else _I_NOISE_UA)
        elif follows:
            seen = True                    # the PI moved the command, the current followed
        elif self._cand_up and i_ua >= self._cand_up \
                and v_mv >= self.rail_mv - (_LEAVE_MV >> 1):
            seen = True                    # it came back: the release showed the trim
            t_obs = self._cand
            i_obs = self._cand_i
        if seen and i_obs > 0:
            if -_TRIM_MAX_UA < t_obs < _TRIM_MAX_UA:
                self._trim_ok = t_obs      # the next rail starts from it
                self._sp_ok = i_obs
            self._cand_up = 0
        if not self._sat and v_mv < self._floor_mv:
            self._short_n = 0              # no rail this low: a dead source or sensor
        elif not self._sat:                # on the rail now?
            if e > _LIMIT_ERR_UA and du > 0 and 2 * di < du \
                    and -_DV_FALL_MV < dv < _DV_FOLLOW_MV:
                # the command went up and neither the current nor the electrode voltage
                # followed (a blind current sensor shows as a voltage that follows: not
                # a rail, the safety monitor's plausibility check judges it; a voltage
                # falling fast is a load that fell, not a rail)
                self._short_n += 1
                if self._short_n >= _SHORTFALL_STEPS:
                    sat = True             # from the trim learnt on track
                    self._trim_s = self._trim_ok
                    self._sp_s = self._sp_ok
            else:
                self._short_n = 0
            if not sat and wu > _WINDOW * _WINDOW_DU_UA and 2 * wi < wu and e > 0 \
                    and -_WINDOW * _DV_FALL_MV < wv < _WINDOW * _DV_FOLLOW_MV \
                    and dv > -_WV_FALL_MV:
                # a slow wind-up: the command crept up a window, the current did not
                sat = True                 # from the trim a window ago, if lower
                self._trim_s = self._trim_ok
                self._sp_s = self._sp_ok
                if self._w_trim < self._trim_ok:
                    self._trim_s = self._w_trim
                    self._sp_s = self._w_sp
            if sat:
                self._short_n = 0
                self._leak = 0
                self._cand_up = 0          # a sagged rail: the release showed nothing
                self.flow_ua = i_ua
                if v_mv < self.rail_mv:
                    self.rail_mv = v_mv    # the source stops delivering here
            elif v_mv > self.rail_mv:
                self.rail_mv = v_mv + self._margin_mv   # it delivered above the rail
        if n == 0:
            t = self.integ >> 8
            if -_TRIM_MAX_UA < t < _TRIM_MAX_UA and sp_ua > 0:
                self._w_trim = t
                self._w_sp = sp_ua
        self._sat = sat
        if sat:
            # The trim cannot be seen at the rail: the one learnt before, scaled down
            # with the setpoint (gain error), less the creep towards the rail's edge.
            t = self._trim_s
            s = self._sp_s
            if sp_ua < s:
                t = t * sp_ua // s if sp_ua > 0 else 0
            leak = self._leak
            if leak < _LEAK_MAX_UA:
                leak += _LEAK_UA
                self._leak = leak
            self.integ = (t - leak) << 8
        raw = sp_ua + ((_KP_Q8 * e + self.integ) >> 8)
        u = raw
        if u > prev + _SLEW_UA:
            u = prev + _SLEW_UA
        elif u < prev - _SLEW_UA:
            u = prev - _SLEW_UA
        hi = self.ceiling_ua
        pinned = False
        if u > hi:
            u = hi
            pinned = e > _LIMIT_ERR_UA
        elif u < 0:
            u = 0
        self.limited = sat or capped or pinned
        if not sat:
            # capped: what the rail pushes through the load, so that the session's
            # bumpless setpoint holds at the cap and not at a current that dipped
            self.flow_ua = push if capped and push > i_ua else i_ua
        # Integrate only where it cannot wind up: not railed, and the command not held
        # by the slew limit or a clamp.
        if u == raw and not sat:
            if -_TRACK_UA <= e <= _TRACK_UA and sp_ua > 0:
                t = self.integ >> 8
                if -_TRIM_MAX_UA < t < _TRIM_MAX_UA:
                    self._trim_ok = t
                    self._sp_ok = sp_ua
            self.integ += _KI_Q8 * e
        self.u_ua = u
        return u
