"""The control step: board HAL -> safety monitor -> session -> regulator -> output.

`tick(now_us)` is the one entry point; the clock is injected (a board's loop passes
`ticks_us()`, host tests a virtual clock), so a session is reproducible in virtual
time. Order inside a step: measure, let the independent safety monitor judge the
measurements (it cuts the output itself on a trip), then compute and apply the new
output. Nothing here allocates once constructed.
"""

import limits
import safety
import session as sm
from regulator import Regulator
from ticks import ticks_diff


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
        self.arm_watchdog = arm_watchdog   # called once, at the first session start (main)

    # ---- commands (validated; a refused command changes nothing) ---------------
    def start(self, profile):
        profile.validate()
        if self.safety.fault:
            raise ValueError("fault latched: reset first")
        self.session.start(profile)
        if self.arm_watchdog is not None:
            self.arm_watchdog()
            self.arm_watchdog = None
        trip = limits.trip_level_ua(profile.target_ua)
        self.regulator.new_session()
        # the command may exceed the target by the trip margin to absorb source gain error
        self.regulator.ceiling_ua = trip
        self.safety.arm(trip, profile.hard_cap_ms(),
                        self.hal.code_for_ua(safety.PLAUS_CMD_UA),
                        self.hal.code_for_ua(safety.PLAUS_TREAT_UA))
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
            self.safety.reset()
            self.safety.disarm()
            self.session.reset()
            self.regulator.reset()

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
        ses = self.session
        reg = self.regulator

        fault = self.safety.check(dt_us, dt_ms, i, v)
        if fault:
            ses.fault(fault)
            reg.reset()
            hal.feed_watchdog()
            return

        ses.update(dt_ms, i, v, reg.limited)
        if ses.state == sm.DONE or ses.state == sm.IDLE:
            self.safety.disarm()
        if ses.enable:
            u = reg.step(ses.sp_ua, i, v)
            top = self.safety.trip_ua
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
