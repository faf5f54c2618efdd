"""Builds the treatment log record of each session by watching the controller.

`observe(ctrl, clock)` runs from main's poll after every step (never inside the step):
it notices a session begin and end, and while in TREAT it adds up the measured current
and load (in blocks of 1024 samples, so every sum stays a small int on a 32-bit MCU).
When the session leaves the current-carrying states (DONE or FAULT) the record is
queued in `pending`; the app appends it to the log once no current flows. A
technician's calibration hold (profiles.MODE_CAL) is not a treatment: it is not logged.
"""

from micropython import const

import profiles
from session import DONE, FAULT, IDLE, TREAT

_BLOCK = const(1024)
MAX_PENDING = 4


class Recorder:
    def __init__(self):
        self.running = False
        self.pending = []
        self.lost = 0            # records dropped because the queue was full
        self._start = 0
        self._epoch = False

    def observe(self, ctrl, clock):
        st = ctrl.session.state
        if st == IDLE or st == DONE or st == FAULT:
            if self.running:
                self._finish(ctrl)
            return
        if not self.running:
            self.begin(clock)
        if st != TREAT:
            return
        i = ctrl.i_ua
        if i > 0:
            n = self._i_n + 1
            if n == _BLOCK:
                self._i_blocks += (self._i_acc + i) // _BLOCK
                self._i_nb += 1
                self._i_acc = 0
                n = 0
            else:
                self._i_acc += i
            self._i_n = n
            if i >= 1000:
                v = ctrl.v_mv
                if v > 0:
                    n = self._r_n + 1
                    r = v * 1000 // i
                    if n == _BLOCK:
                        self._r_blocks += (self._r_acc + r) // _BLOCK
                        self._r_nb += 1
                        self._r_acc = 0
                        n = 0
                    else:
                        self._r_acc += r
                    self._r_n = n

    def begin(self, clock):
        """A session started (the start command calls this too, in case the session ends
        before the next poll)."""
        self.running = True
        self._start, self._epoch = clock.now_s()
        self._i_acc = self._i_n = self._i_blocks = self._i_nb = 0
        self._r_acc = self._r_n = self._r_blocks = self._r_nb = 0

    def _finish(self, ctrl):
        self.running = False
        ses = ctrl.session
        p = ses.profile
        if p.mode == profiles.MODE_CAL:
            return
        rec = {"start": self._start, "epoch": self._epoch, "target_ua": p.target_ua,
               "duration_s": p.duration_s, "ramp_up_s": p.ramp_up_s,
               "ramp_down_s": p.ramp_down_s, "reverse": bool(p.reverse),
               "delivered_s": ses.elapsed_ms // 1000, "charge_uamin": ses.charge_uamin,
               "i_min_ua": ses.i_min_ua, "i_max_ua": ses.i_max_ua,
               "i_mean_ua": _mean(self._i_blocks, self._i_nb, self._i_acc, self._i_n),
               "load_ohm": _mean(self._r_blocks, self._r_nb, self._r_acc, self._r_n),
               "pauses": ses.pauses, "paused_s": ses.pause_ms // 1000,
               "end": ses.end_reason, "fault": ses.fault_code,
               "profile": _profile_code(p.name)}
        if len(self.pending) >= MAX_PENDING:
            self.pending.pop(0)
            self.lost += 1
        self.pending.append(rec)


def _profile_code(name):
    """1 + the catalogue index of `name` (treatment_log's profile byte); 0 if unnamed."""
    for k in range(len(profiles.NAMES)):
        if profiles.NAMES[k] == name:
            return k + 1
    return 0


def _mean(blocks, nb, acc, n):
    total = nb * _BLOCK + n
    if total == 0:
        return 0
    return (blocks * _BLOCK + acc) // total
