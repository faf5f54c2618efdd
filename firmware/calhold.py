"""Raw ADC means while a technician's calibration hold (MODE_CAL) holds its point.

`CalSampler.poll()` runs in the app's poll after each control step. Once the hold is
steady (TREAT, setpoint at the target, output on) for SETTLE_MS, it sums the raw
(uncalibrated) current and voltage codes and notes the raw reference code the HAL
drives, so the host can fit gain and offset against its reference meter whatever the
calibration in use. Any unsteady poll starts the sums again. The sums stay small ints:
at most N_MAX samples of 16-bit codes (< 2**30).
"""

from micropython import const

import profiles
import session as sm
from clock import ms_diff

SETTLE_MS = const(300)      # the source, the load and the sense filter settle first
N_MAX = const(4096)


class CalSampler:
    def __init__(self, ctrl, clock):
        """`clock`: the app's clock.Clock (its wrapping `ms`)."""
        self._ctrl = ctrl
        self._clock = clock
        self.restart()

    def restart(self):
        self.n = 0
        self.i_sum = 0
        self.v_sum = 0
        self.ref_code = 0
        self._since = -1

    def steady(self):
        ctrl = self._ctrl
        ses = ctrl.session
        return (ses.state == sm.TREAT and ctrl.hal.enabled
                and ses.profile.mode == profiles.MODE_CAL and ses.sp_ua == ses.target_ua)

    def poll(self):
        if not self.steady():
            if self._since >= 0 or self.n:
                self.restart()
            return
        now = self._clock.ms
        if self._since < 0:
            self._since = now
            return
        if ms_diff(now, self._since) < SETTLE_MS or self.n >= N_MAX:
            return
        hal = self._ctrl.hal
        self.i_sum += hal.read_current_code()
        self.v_sum += hal.read_voltage_code()
        self.ref_code = hal.ref_code
        self.n += 1
