"""The control step: board HAL -> safety monitor -> session -> regulator -> output.

`tick(now_us)` is the one entry point; the clock is injected (a board's loop passes
`ticks_us()`, host tests a virtual clock), so a session is reproducible in virtual
time. Order inside a step: measure, let the independent safety monitor judge the
measurements (it cuts the output itself on a trip), then compute and apply the new
output. Nothing here allocates once constructed.

Modes (profiles.py): pulsed sets the HAL's gate at start (output off) and clamps the
average command so that the peak stays under the ceiling; a calibration hold drives
the reference open loop (setpoint straight to the HAL, no regulator). `set_target()`
re-arms the trip level in the safe order (raised before the setpoint rises, lowered
only once the setpoint is under it).
"""

import limits
import profiles
import safety
import session as sm
from session import DONE, IDLE
from regulator import Regulator
from ticks import ticks_diff


def trip_for(mode, target_ua):
    """Trip level for a target: x1.1 (x1.25 in a calibration hold: the channels are
    uncalibrated by definition), never above TRIP_ABS_UA."""
    if mode == profiles.MODE_CAL:
        t = target_ua * 125 // 100
        return t if t < limits.TRIP_ABS_UA else limits.TRIP_ABS_UA
    return limits.trip_level_ua(target_ua)


def target_ok(profile, ua):
    """The absolute and mode limits for a target (average µA) of `profile`."""
    if not isinstance(ua, int) or isinstance(ua, bool):
        return False
    if ua < 1000 or ua > limits.CEILING_UA:
        return False
    if profile.mode == profiles.MODE_DOSE and ua > limits.DOSE_MAX_UA:
        return False
    if profile.mode == profiles.MODE_PULSED and ua * 100 // profile.duty_pct > limits.CEILING_UA:
        return False
    return True


class Controller:
    def __init__(self, hal, board, arm_watchdog=None):
        self.hal = hal
        self.board = board
        self.period_us = board.CONTROL_PERIOD_US
        self.safety = safety.Safety(hal, board, self.period_us)
        self.regulator = Regulator(board.COMPLIANCE_MV, limits.CEILING_UA,
                                   limits.COMPLIANCE_MARGIN_MV)
        self.session = sm.Session(board.COMPLIANCE_MV)
        self._last_us = None
        self._acc_us = 0
        self.i_ua = 0
        self.v_mv = 0
        self.peak_ua = 0          # measured peak estimate (pulsed: avg x 100 / duty)
        self._cmd_max = limits.TRIP_ABS_UA   # highest average command
        self._trip_next = 0       # a lowered trip level waiting for the setpoint (0: none)
        self._open_loop = False   # calibration hold
        self.arm_watchdog = arm_watchdog   # called once, at the first session start (main)

    # ---- commands (validated; a refused command changes nothing) ---------------
    def start(self, profile):
        profile.validate()
        if self.safety.fault:
            raise ValueError("fault latched: reset first")
        st = self.session.state
        if st != sm.IDLE and st != sm.DONE:
            raise ValueError("session already running")
        pulsed = profile.mode == profiles.MODE_PULSED
        if pulsed and self.hal.gate is None:
            raise ValueError("pulsed mode needs a board with a pulse gate")
        if pulsed:
            self.hal.set_pulse(profile.pulse_hz, profile.duty_pct)
        else:
            self.hal.pulse_off()
        self.session.start(profile)
        if self.arm_watchdog is not None:
            self.arm_watchdog()
            self.arm_watchdog = None
        self._open_loop = profile.mode == profiles.MODE_CAL
        trip = trip_for(profile.mode, profile.target_ua)
        self.regulator.new_session()
        self._set_trip(trip)
        # plausibility codes for average currents (the HAL's reference is the peak)
        d = self.hal.duty_pct
        self.safety.arm(trip, profile.hard_cap_ms(),
                        self.hal.code_for_ua(safety.PLAUS_CMD_UA * 100 // d),
                        self.hal.code_for_ua(safety.PLAUS_TREAT_UA * 100 // d))
        return True

    def _set_trip(self, trip):
        """Trip level and the command ceiling derived from it (pulsed: the peak
        command stays under CEILING_UA)."""
        self.safety.trip_ua = trip if trip < limits.TRIP_ABS_UA else limits.TRIP_ABS_UA
        top = trip
        d = self.hal.duty_pct
        if d != 100:
            peak_top = limits.CEILING_UA * d // 100
            if peak_top < top:
                top = peak_top
        self._cmd_max = top
        # the command may exceed the target by the trip margin to absorb source gain error
        self.regulator.ceiling_ua = top
        self._trip_next = 0

    def set_target(self, ua):
        """Change a running session's target (WAIT_CONTACT, RAMP_UP, TREAT, PAUSED).
        Only the absolute and mode limits are checked here (the caller checks the
        prescription). The setpoint moves at the ramp slope; the trip is raised at
        once, or lowered once the setpoint is under the new level (tick)."""
        ses = self.session
        st = ses.state
        if st != sm.WAIT_CONTACT and st != sm.RAMP_UP and st != sm.TREAT and st != sm.PAUSED:
            return False
        if not target_ok(ses.profile, ua):
            return False
        trip = trip_for(ses.profile.mode, ua)
        if trip >= self.safety.trip_ua:
            self._set_trip(trip)               # raised before the setpoint moves
        else:
            self._trip_next = trip             # lowered once the setpoint is under it
        ses.set_target(ua)
        return True

    def stop(self):
        self.session.stop()

    def pause(self):
        return self.session.pause()

    def resume(self):
        return self.session.resume()

    def reset(self):
        """Deliberate reset out of FAULT or DONE; the output is and stays off."""
        if self.session.state == sm.FAULT or self.session.state == sm.DONE:
            self.hal.off()
            self.hal.pulse_off()
            self.safety.reset()
            self.safety.disarm()
            self.session.reset()
            self.regulator.reset()
            self._trip_next = 0
            self._cmd_max = limits.TRIP_ABS_UA

    # ---- the step ---------------------------------------------------------------
    def tick(self, now_us):
        last = self._last_us
        dt_us = self.period_us if last is None else ticks_diff(now_us, last)
        self._last_us = now_us
        acc = self._acc_us + dt_us
        dt_ms = acc // 1000
        self._acc_us = acc - dt_ms * 1000

        hal = self.hal
        i = hal.read_current_ua()
        v = hal.read_voltage_mv()
        self.i_ua = i
        self.v_mv = v
        d = hal.duty_pct
        self.peak_ua = i if d == 100 else i * 100 // d
        ses = self.session
        reg = self.regulator

        fault = self.safety.check(dt_us, dt_ms, i, v)
        if fault:
            ses.fault(fault)
            reg.reset()
            hal.feed_watchdog()
            return

        ses.update(dt_ms, i, v, reg.limited, reg.flow_ua)
        st = ses.state
        if st == DONE or st == IDLE:
            self.safety.disarm()
            if d != 100 and not hal.enabled:
                hal.pulse_off()                  # session over: the gate back to DC
        nxt = self._trip_next
        if nxt and ses.sp_ua <= ses.target_ua and i < nxt:
            self._set_trip(nxt)                  # a lowered target: the setpoint is there
        if ses.enable:
            if self._open_loop:
                u = ses.sp_ua                    # calibration hold: the source's own gain
            else:
                u = reg.step(ses.sp_ua, i, v)
            top = self._cmd_max
            hal.set_current_ua(u if u < top else top)
            if not hal.enabled:
                hal.set_enabled(True)
        else:
            if hal.enabled or hal.ref_code:
                hal.off()
                reg.reset()
            if ses.polarity != hal.polarity:
                hal.set_polarity(ses.polarity)   # only ever reached with the output off
        hal.feed_watchdog()
