"""Builds the treatment log record of each session by watching the controller.

`observe(ctrl, clock)` runs from main's poll after every step (never inside the step):
it notices a session begin and end, and while in TREAT it adds up the measured current
and load (in blocks of 1024 samples, so every sum stays a small int on a 32-bit MCU).
When the session leaves the current-carrying states (DONE or FAULT) the record is
queued in `pending`; the app appends it to the log once no current flows. A
technician's calibration hold (profiles.MODE_CAL) is not a treatment: it is not logged.

Attempts, session numbers and checkpoints (issue 15): the comment below.
"""

# A session that delivered less than treatment_log.ATTEMPT_UAMIN (50 µA·min) is an
# attempt, no record of its own: it adds one to `attempts`, which the next record (and
# its checkpoints) carries. So start/stop with the hands out never writes flash and never
# pushes a treatment out of the ring. The count is in RAM only until then: a reset loses
# the attempts made since the last record (each delivered almost nothing).
# Once the running session delivered treatment_log.RECORD_UAMIN (25 µA·min) it gets its
# session number (`seq`, the log's reserve()) and a checkpoint is due at once (`ck_due`,
# clock.ms), then every treatment_log.CHECKPOINT_MS; the app writes them from its poll
# with `checkpoint(ctrl)`. A session on record that still ends below ATTEMPT_UAMIN is an
# attempt: `void_seq` asks the app to void its checkpoints (treatment_log.void).

from micropython import const

import profiles
from session import DONE, END_DOSE, FAULT, IDLE, TREAT
from treatment_log import ATTEMPT_UAMIN, END_INTERRUPTED, RECORD_UAMIN

_BLOCK = const(1024)
MAX_PENDING = 4
DOSE_LOOKBACK = 16      # records a dose start looks back through (dose_carry)
DOSE_MIN_UAMIN = 1000   # the smallest dose a start may ask for (commands._START)


class Recorder:
    def __init__(self, log):
        """`log`: the treatment_log.TreatmentLog that hands out session numbers."""
        self.log = log
        self.running = False
        self.pending = []
        self.lost = 0            # records dropped because the queue was full
        self.attempts = 0        # attempts since the last record
        self.seq = 0             # the running session's number (0: none yet)
        self.ck_due = -1         # clock.ms of the next checkpoint (-1: none due)
        self.checkpoints = 0     # checkpoints written
        self.void_seq = 0        # a session whose checkpoints must be voided (0: none)
        self._written = False    # a checkpoint of the running session was written
        self._prof = 0
        self._start = 0
        self._epoch = False

    def observe(self, ctrl, clock):
        ses = ctrl.session
        st = ses.state
        if st == IDLE or st == DONE or st == FAULT:
            if self.running:
                self._finish(ctrl)
            return
        if not self.running:
            self.begin(clock)
        if self.seq == 0 and ses.charge_uamin >= RECORD_UAMIN and \
                ses.profile.mode != profiles.MODE_CAL:
            self._number(ses)
            self.ck_due = clock.ms           # on record from now: a checkpoint at once
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
        self.seq = 0
        self.ck_due = -1
        self._written = False
        self._start, self._epoch = clock.now_s()
        self._i_acc = self._i_n = self._i_blocks = self._i_nb = 0
        self._r_acc = self._r_n = self._r_blocks = self._r_nb = 0

    def _number(self, ses):
        self.seq = self.log.reserve()
        self._prof = profile_code(ses.profile.name)

    def checkpoint(self, ctrl):
        """The running session's record so far into the log's checkpoint slots (raises
        OSError, MemoryError: the caller retries)."""
        ses = ctrl.session
        p = ses.profile
        self.log.checkpoint(
            self.seq, self._epoch, p.reverse, self._start, ses.charge_uamin,
            _mean(self._r_blocks, self._r_nb, self._r_acc, self._r_n), p.target_ua,
            p.duration_s, ses.elapsed_ms // 1000, ses.pause_ms // 1000, ses.i_min_ua,
            _mean(self._i_blocks, self._i_nb, self._i_acc, self._i_n), ses.i_max_ua,
            ses.pauses, END_INTERRUPTED, ses.fault_code, p.ramp_up_s, p.ramp_down_s,
            self._prof, self.attempts)
        self.checkpoints += 1
        self._written = True

    def _finish(self, ctrl):
        self.running = False
        self.ck_due = -1
        ses = ctrl.session
        p = ses.profile
        if p.mode == profiles.MODE_CAL:
            return
        if ses.charge_uamin < ATTEMPT_UAMIN:
            if self.attempts < 0xFFFF:
                self.attempts += 1           # an attempt: counted, no record
            if self.seq:
                if self._written:
                    self.void_seq = self.seq     # its checkpoints must not be logged
                else:
                    self.log.release(self.seq)
                self.seq = 0
            return
        if self.seq == 0:
            self._number(ses)
        rec = {"seq": self.seq, "start": self._start, "epoch": self._epoch,
               "target_ua": p.target_ua,
               "duration_s": p.duration_s, "ramp_up_s": p.ramp_up_s,
               "ramp_down_s": p.ramp_down_s, "reverse": bool(p.reverse),
               "delivered_s": ses.elapsed_ms // 1000, "charge_uamin": ses.charge_uamin,
               "i_min_ua": ses.i_min_ua, "i_max_ua": ses.i_max_ua,
               "i_mean_ua": _mean(self._i_blocks, self._i_nb, self._i_acc, self._i_n),
               "load_ohm": _mean(self._r_blocks, self._r_nb, self._r_acc, self._r_n),
               "pauses": ses.pauses, "paused_s": ses.pause_ms // 1000,
               "end": ses.end_reason, "fault": ses.fault_code,
               "profile": self._prof, "attempts": self.attempts}
        self.seq = 0
        self.attempts = 0
        if len(self.pending) >= MAX_PENDING:
            self.pending.pop(0)
            self.lost += 1
        self.pending.append(rec)


def profile_code(name):
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


def dose_carry(log, pending, prof, dose):
    """µA·min of `dose` a dose session of profile code `prof` starts with already
    delivered: a partial dose counts against the next start (issue 15)."""
    # The newest records (`pending` first, then the log, at most DOSE_LOOKBACK) that are
    # sessions of `prof` ended short of their dose (any end but END_DOSE: stopped, fault,
    # time out, interrupted by a reset) form a run; from its oldest on their charges add
    # up, and a sum within DOSE_MIN_UAMIN of `dose` counts as one whole dose (the sum
    # starts again). The next dose session delivers `dose` minus what is left, never less
    # than DOSE_MIN_UAMIN.
    run = []
    k = len(pending) - 1
    seq = log.last
    while len(run) < DOSE_LOOKBACK:
        if k >= 0:
            r = pending[k]
            k -= 1
        elif seq >= 1 and seq >= log.first:
            r = log.read(seq)
            seq -= 1
        else:
            break
        if r is None or r.get("profile", 0) != prof or r["end"] == END_DOSE:
            break
        run.append(r["charge_uamin"])
    acc = 0
    for c in reversed(run):
        acc += c
        if acc > dose - DOSE_MIN_UAMIN:
            acc = 0
    return acc
