"""A session is on record from its start (issue 15): checkpoints, resets, power cuts.

treatment_log.py's checkpoints and recorder.py's session numbers, on a fake flash that
loses power at any byte (fakefs.FakeFs) and on the sim board in virtual time (protorig).
The random power-cut test reboots the device (a new Rig on the same flash) at random
steps and in the middle of random flash writes (checkpoints, voids, appends), and checks
after every boot that every committed record is intact and, at the end, that every
session that delivered ATTEMPT_UAMIN or more is in the log with its charge at most one
checkpoint interval below the truth (the firmware's own measured charge at the cut).
"""

import os
import random
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

import app as app_module  # noqa: E402
import session as sm  # noqa: E402
import treatment_log as tl  # noqa: E402
from fakefs import FakeFs, PowerCut  # noqa: E402
from protorig import Rig  # noqa: E402

T0 = 1750000000


def ck_fields(charge, delivered, attempts=0):
    """checkpoint()'s fields after seq for a 15 mA session."""
    return (True, False, T0, charge, 2500, 15000, 600, delivered, 0, 14900, 15000, 15100,
            0, tl.END_INTERRUPTED, 0, 30, 15, 1, attempts)


def new_log(fs):
    log = tl.TreatmentLog(fs, "data/log")
    log.load()
    return log


def committed(log):
    return {s: log.read(s) for s in range(max(log.first, 1), log.last + 1)}


# ---- the checkpoint slots ----------------------------------------------------------------

def _states():
    """(name, files, action) for a checkpoint or void write from a few starting points:
    the file's first write (creates it), a session's second and third checkpoints, a
    checkpoint with another session still waiting to be logged, a void."""
    out = []
    fs = FakeFs()
    log = new_log(fs)
    for k in range(1, 4):
        log.append({"start": T0 + k, "epoch": True, "target_ua": 15000, "duration_s": 600,
                    "ramp_up_s": 30, "ramp_down_s": 15, "reverse": False,
                    "delivered_s": 600, "charge_uamin": 150000, "i_min_ua": 14900,
                    "i_mean_ua": 15000, "i_max_ua": 15100, "load_ohm": 2500, "pauses": 0,
                    "paused_s": 0, "end": 1, "fault": 0})
    out.append(("first checkpoint (creates the file)", fs.snapshot(), ("ck", 4, 30, 1)))
    log.checkpoint(log.reserve(), *ck_fields(30, 2))
    out.append(("second checkpoint", fs.snapshot(), ("ck", 4, 15000, 61)))
    log.checkpoint(4, *ck_fields(15000, 61))
    out.append(("third checkpoint", fs.snapshot(), ("ck", 4, 30000, 121)))
    out.append(("void", fs.snapshot(), ("void", 4, 0, 0)))
    # session 4 ended, its record not logged yet; session 5's checkpoints around it
    log.checkpoint(5, *ck_fields(40, 3))
    out.append(("checkpoint next to a session waiting", fs.snapshot(), ("ck", 5, 9000, 40)))
    return out


def _orphans(log):
    return {r["seq"]: (r["charge_uamin"], r["delivered_s"]) for r in log.orphans}


@pytest.mark.parametrize("tear", ["drop", "garbage"])
def test_power_cut_at_every_byte_of_a_checkpoint(tear):
    tried = 0
    for name, files, (kind, seq, charge, delivered) in _states():
        before = new_log(FakeFs(files))
        old = _orphans(before)
        records = committed(before)
        probe = FakeFs(files)
        plog = new_log(probe)
        if kind == "ck":
            plog.checkpoint(seq, *ck_fields(charge, delivered))
        else:
            plog.void(seq)
        new = _orphans(new_log(probe))
        total = probe.used
        for cut in range(total + 1):
            fs = FakeFs(files, budget=cut, tear=tear)
            log = new_log(fs)
            try:
                if kind == "ck":
                    log.checkpoint(seq, *ck_fields(charge, delivered))
                else:
                    log.void(seq)
                done = True
            except PowerCut:
                done = False
            fs.revive()
            after = new_log(fs)
            tried += 1
            got = _orphans(after)
            assert got in (old, new), (name, cut, got, old, new)
            if done:
                assert got == new, (name, cut)
            assert committed(after) == records, (name, cut)
            # the device goes on: the write again, then the session's record
            if kind == "ck":
                after.checkpoint(seq, *ck_fields(charge, delivered))
                assert _orphans(new_log(fs))[seq] == (charge, delivered)
    print("checkpoint writes, tear=%s: %d cut points, the previous checkpoint or the new "
          "one after every cut, every record intact" % (tear, tried))
    assert tried > 4 * tl.SIZE


def test_slots_never_overwrite_the_newest_checkpoint_of_a_session_not_logged():
    fs = FakeFs()
    log = new_log(fs)
    a = log.reserve()
    for k in range(5):
        log.checkpoint(a, *ck_fields(100 + k, k))
    b = log.reserve()                       # a's record not logged: its newest stays
    for k in range(9):
        log.checkpoint(b, *ck_fields(200 + k, k))
        assert _orphans(new_log(fs)) == {a: (104, 4), b: (200 + k, k)}
    log.append(dict(new_log(fs).orphans[0], end=sm.END_COMPLETED))   # a logged
    assert _orphans(new_log(fs)) == {b: (208, 8)}


def test_a_voided_number_is_reused_and_never_logged():
    fs = FakeFs()
    log = new_log(fs)
    s = log.reserve()
    log.checkpoint(s, *ck_fields(30, 1))
    log.void(s)
    again = new_log(fs)
    assert again.orphans == [] and again.reserved == 0
    assert log.reserve() == s               # the number goes to the next session


# ---- the app: a reset in the middle of a session -----------------------------------------

def rebooted(rig):
    """The same flash after a reset: a fresh device, whose first polls log the orphans."""
    fs = rig.fs
    fs.revive()
    new = Rig(fs=fs, skin_ohm=800.0)
    new.step(4)
    return new


def test_a_reset_mid_session_leaves_it_on_record_as_interrupted():
    rig = Rig(skin_ohm=800.0)
    rig.ok("time_set", epoch=T0)
    rig.ok("start", target_ua=10000, duration_s=600)
    assert rig.until(sm.TREAT, 60)
    rig.seconds(100)                                   # ~130 s into the session
    truth = rig.ctrl.session.charge_uamin
    elapsed = rig.ctrl.session.elapsed_ms // 1000
    assert rig.app.recorder.checkpoints >= 3           # at 25 µA·min, then every 60 s
    after = rebooted(rig)
    r = after.store.log.read(1)
    assert r is not None and r["end"] == sm.END_INTERRUPTED
    assert after.ok("log_read")["records"][0]["end"] == "interrupted"
    assert truth - 10000 <= r["charge_uamin"] <= truth, (r["charge_uamin"], truth)
    assert elapsed - 61 <= r["delivered_s"] <= elapsed
    assert r["epoch"] and T0 <= r["start"] <= T0 + 2 and r["target_ua"] == 10000
    # and the next session is number 2
    after.ok("start", target_ua=10000, duration_s=300)
    assert after.until(sm.TREAT, 60)
    assert after.app.recorder.seq == 2


def test_checkpoints_are_written_from_the_poll_every_minute_at_most_apart():
    rig = Rig(skin_ohm=800.0)
    times = []
    log = rig.store.log
    write = log.checkpoint

    def watched(*a):
        c = rig.app.clock
        times.append((c.uptime_s * 1000 + c._ms, rig.ctrl.session.charge_uamin))
        return write(*a)
    log.checkpoint = watched
    rig.ok("start", target_ua=15000, duration_s=300)
    assert rig.until(sm.DONE, 400)
    rig.step(2)
    assert times and tl.RECORD_UAMIN <= times[0][1] < tl.RECORD_UAMIN + 1
    gaps = [b[0] - a[0] for a, b in zip(times, times[1:])]
    assert all(g <= tl.CHECKPOINT_MS + 5 for g in gaps), gaps
    assert len(times) >= 5, times              # ~320 s of session: at 25 µA·min, then 5
    r = log.read(1)
    assert r["end"] == sm.END_COMPLETED and r["charge_uamin"] == rig.ctrl.session.charge_uamin


def test_a_board_whose_flash_stalls_writes_nothing_while_the_output_is_enabled():
    """boards/pico.py, esp32.py: a flash write stalls the CPU, so the checkpoints of a
    session wait for the output to be off (a pause, the end); the log is the same."""
    rig = Rig(skin_ohm=800.0, flash_stalls=True)
    log = rig.store.log
    seen = []
    for name in ("checkpoint", "append", "void"):
        def watched(*a, _w=getattr(log, name), _n=name):
            seen.append((_n, rig.ctrl.hal.enabled, rig.ctrl.session.state))
            return _w(*a)
        setattr(log, name, watched)
    rig.ok("start", target_ua=15000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.seconds(150)                            # 2.5 checkpoint intervals of current
    assert seen == [] and rig.app.recorder.seq == 1
    rig.ok("pause")
    assert rig.until(sm.PAUSED, 30)
    rig.step(2)
    assert [n for n, _, _ in seen] == ["checkpoint"]      # at once, with the output off
    rig.ok("resume")
    assert rig.until(sm.DONE, 400)
    rig.step(2)
    assert [n for n, _, _ in seen] == ["checkpoint", "append"]
    assert not any(enabled for _, enabled, _ in seen), seen
    r = log.read(1)
    assert r["end"] == sm.END_COMPLETED and r["charge_uamin"] == rig.ctrl.session.charge_uamin
    assert rig.app.checkpoint_errors == 0 and rig.app.log_errors == 0


def test_attempts_with_the_hands_out_write_nothing():
    rig = Rig(skin_ohm=800.0)
    rig.bench.plant.contact = False
    rig.ok("start", target_ua=15000, duration_s=300)     # the first session of a boot
    rig.step(3)                                          # creates the checkpoint file
    rig.ok("stop")
    rig.step(2)
    g = rig.fs.gen
    for _ in range(20):
        rig.ok("start", target_ua=15000, duration_s=300)
        rig.step(3)
        rig.ok("stop")
        rig.step(2)
    assert rig.fs.gen == g and rig.app.recorder.attempts == 21


# ---- random power cuts ---------------------------------------------------------------------

class Device:
    """The sim board on one fake flash, rebooted at every cut; the truth kept by seq."""

    def __init__(self):
        self.fs = FakeFs()
        self.truth = {}            # seq -> (true charge at its end or at the cut, target)
        self.kept = {}             # committed records, as read after a boot
        self.cuts = {"step": 0, "checkpoint": 0, "void": 0, "append": 0, "prepare": 0}
        self.writing = None
        self.boots = 0
        self.checked = 0
        self.boot()

    def boot(self):
        self.fs.revive()
        self.rig = Rig(fs=self.fs, skin_ohm=800.0)
        self.boots += 1
        log = self.rig.store.log
        for name in ("checkpoint", "void", "append", "prepare"):
            self._watch(log, name)
        # every record committed before is still there, byte for byte
        for seq, r in self.kept.items():
            if seq > log.last - tl.KEEP:
                assert log.read(seq) == r, (seq, r, log.read(seq))
        self.checked += len(self.kept)

    def _watch(self, log, name):
        fn = getattr(log, name)

        def watched(*a):
            outer = self.writing
            self.writing = outer or name       # void() writes through checkpoint()
            if name == "append" and a[0]["end"] != sm.END_INTERRUPTED:
                r = a[0]                       # a session's own end: the exact truth
                self.truth[r["seq"]] = (r["charge_uamin"], r["target_ua"])
            try:
                got = fn(*a)
            finally:
                if not self.fs.dead:
                    self.writing = outer
            if name == "append":               # committed: it must survive every cut
                self.kept[got] = log.read(got)
            return got
        setattr(log, name, watched)

    def note(self):
        """The running session's truth under its number; an ended one's from its record
        (the orphans of a boot are the log's view, not the truth: never taken)."""
        rec = self.rig.app.recorder
        ses = self.rig.ctrl.session
        if rec.seq:
            self.truth[rec.seq] = (ses.charge_uamin, ses.target_ua)
        for p in rec.pending:
            if p["end"] != sm.END_INTERRUPTED:
                self.truth[p["seq"]] = (p["charge_uamin"], p["target_ua"])

    def step(self):
        """One period; False when the power went (during a write)."""
        self.rig.step()
        self.note()
        if self.fs.dead:
            self.cuts[self.writing] += 1
            return False
        return True

    def cut(self):
        self.cuts["step"] += 1
        self.reboot()

    def reboot(self):
        self.writing = None
        self.boot()
        self.rig.step(4)                    # the orphans are logged (kept by the watch)


def run_until(dev, seconds, arm_at=None, budget=0):
    """Step for `seconds`; at step `arm_at` the flash gets `budget` more units. True when
    the power went."""
    n = int(seconds * 200)
    for k in range(n):
        if arm_at == k:
            dev.fs.budget = budget
        if not dev.step():
            return True
    return False


def one_session(dev, rnd, check_interval_ms):
    """A random session with a random cut (at a step, or inside the next flash write)."""
    rig = dev.rig
    st = rig.ctrl.session.state
    if st == sm.DONE or st == sm.FAULT:
        rig.ok("reset")
    kind = rnd.random()
    hands_in = kind > 0.12
    rig.bench.plant.contact = hands_in
    target = rnd.choice((6000, 10000, 15000))
    rig.ok("start", target_ua=target, duration_s=300)
    span = rnd.uniform(0.5, 3 * check_interval_ms / 1000.0 + 30)
    if kind < 0.5:                        # stopped early: an attempt or a short session
        # (0.4-0.5: around the 25-50 uA*min of an attempt on record, which is voided;
        # a write cut then lands in the next write after the stop: the void, mostly)
        span = rnd.uniform(0.2, 40) if kind < 0.4 else rnd.uniform(2.0, 5.0)
        if run_until(dev, span):
            dev.reboot()
            return
        rig.ok("stop")
        span = rnd.uniform(0, 20)
        if kind >= 0.4:
            span = 0.0
    mode = rnd.random()
    if mode < 0.5:                        # a cut at a random step
        if run_until(dev, span):
            dev.reboot()
            return
        dev.cut()
    else:                                 # a cut inside a flash write soon after
        arm = int(rnd.uniform(0, span) * 200)
        if not run_until(dev, span + check_interval_ms / 1000.0 + 5, arm_at=arm,
                         budget=rnd.randrange(0, 60)):
            dev.fs.budget = -1
            dev.cut()
            return
        dev.reboot()


@pytest.mark.parametrize("interval_ms,cuts", [(5000, 200), (tl.CHECKPOINT_MS, 20)])
def test_random_power_cuts_keep_every_session_with_its_charge(monkeypatch, interval_ms, cuts):
    monkeypatch.setattr(app_module, "CHECKPOINT_MS", interval_ms)
    rnd = random.Random(1500 + interval_ms)
    dev = Device()
    dev.rig.ok("time_set", epoch=T0)
    n = 0
    while n < cuts:
        one_session(dev, rnd, interval_ms)
        n = dev.boots - 1
    # one complete session at the end, logged normally
    rig = dev.rig
    if rig.ctrl.session.state in (sm.DONE, sm.FAULT):
        rig.ok("reset")
    rig.bench.plant.contact = True
    rig.ok("start", target_ua=10000, duration_s=300)
    for _ in range(400 * 200):
        assert dev.step()
        if rig.ctrl.session.state == sm.DONE:
            break
    for _ in range(4):
        assert dev.step()
    assert rig.store.log.read(rig.store.log.last)["end"] == sm.END_COMPLETED
    log = rig.store.log
    worst = 0
    missing = []
    for seq, (charge, target) in sorted(dev.truth.items()):
        r = log.read(seq)
        if charge < tl.ATTEMPT_UAMIN:
            continue                      # an attempt: a record of it is allowed, not required
        if r is None:
            missing.append((seq, charge))
            continue
        tol = target * (interval_ms + 1000) // 60000 + 1
        assert charge - tol <= r["charge_uamin"] <= charge, (seq, r, charge, tol)
        worst = max(worst, charge - r["charge_uamin"])
    assert not missing, missing
    for seq in range(log.first, log.last + 1):          # no record without a session
        r = log.read(seq)
        assert r is None or seq in dev.truth, (seq, r)
        if r is not None:
            assert r["charge_uamin"] <= dev.truth[seq][0]
    treated = sum(1 for c, _ in dev.truth.values() if c >= tl.ATTEMPT_UAMIN)
    print("%d power cuts (%s) with a %d s checkpoint interval: %d sessions delivered charge, "
          "all %d in the log, the worst %.0f uA*min (%.1f s at 15 mA) below the truth; "
          "%d record checks after the boots, all intact"
          % (dev.boots - 1, ", ".join("%s %d" % kv for kv in sorted(dev.cuts.items())),
             interval_ms // 1000, treated, treated, worst, worst * 60.0 / 15000, dev.checked))
    if cuts >= 200:
        assert dev.cuts["checkpoint"] >= 10 and dev.cuts["step"] >= 50, dev.cuts


# ---- dose mode: a partial dose counts against the next start -------------------------------

def dose_rig():
    rig = Rig(skin_ohm=800.0)
    rig.ok("rx_write", drug_max_ua=4000)
    return rig


def test_a_partial_dose_counts_against_the_next_start():
    rig = dose_rig()
    r = rig.ok("start", profile="drug", dose_uamin=10000)
    assert r["dose_uamin"] == 10000 and r["dose_carried_uamin"] == 0
    assert rig.until(sm.TREAT, 60)
    rig.seconds(40)
    rig.ok("stop")
    assert rig.until(sm.DONE, 30)
    rig.step(2)
    part = rig.store.log.read(1)["charge_uamin"]
    assert 2000 < part < 6000 and rig.store.log.read(1)["end"] == sm.END_STOPPED
    rig.ok("reset")
    r = rig.ok("start", profile="drug", dose_uamin=10000)
    assert r["dose_carried_uamin"] == part and r["dose_uamin"] == 10000 - part
    # this one is cut by a reset: its checkpoint carries too, on top of the first part
    assert rig.until(sm.TREAT, 60)
    rig.seconds(5)
    cut = rig.app.recorder
    assert cut.checkpoints >= 1
    after = rebooted(rig)
    second = after.store.log.read(2)
    assert second["end"] == sm.END_INTERRUPTED and second["charge_uamin"] >= tl.RECORD_UAMIN
    r = after.ok("start", profile="drug", dose_uamin=10000)
    left = 10000 - part - second["charge_uamin"]
    assert r["dose_carried_uamin"] == part + second["charge_uamin"] and r["dose_uamin"] == left
    assert after.until(sm.DONE, 400)
    after.step(2)
    third = after.store.log.read(3)
    assert third["end"] == sm.END_DOSE and abs(third["charge_uamin"] - left) <= 0.02 * left
    after.ok("reset")
    r = after.ok("start", profile="drug", dose_uamin=10000)     # a whole dose again
    assert r["dose_carried_uamin"] == 0 and r["dose_uamin"] == 10000


def test_dose_carry_rules():
    from recorder import dose_carry
    fs = FakeFs()
    log = new_log(fs)

    def add(charge, end=sm.END_STOPPED, profile=5):
        log.append({"start": T0, "epoch": True, "target_ua": 4000, "duration_s": 1200,
                    "ramp_up_s": 30, "ramp_down_s": 15, "reverse": False,
                    "delivered_s": 60, "charge_uamin": charge, "i_min_ua": 0,
                    "i_mean_ua": 0, "i_max_ua": 0, "load_ohm": 0, "pauses": 0,
                    "paused_s": 0, "end": end, "fault": 0, "profile": profile})
    assert dose_carry(log, [], 5, 40000) == 0
    add(40000, end=sm.END_DOSE)
    assert dose_carry(log, [], 5, 40000) == 0
    add(10000)
    add(5000, end=sm.END_INTERRUPTED)
    assert dose_carry(log, [], 5, 40000) == 15000
    assert dose_carry(log, [], 4, 40000) == 0                 # another profile's
    pending = [{"charge_uamin": 24500, "end": sm.END_STOPPED, "profile": 5}]
    assert dose_carry(log, pending, 5, 40000) == 0            # 39,500: a whole dose
    add(39500)
    add(7000, end=sm.END_FAULT)
    assert dose_carry(log, [], 5, 40000) == 7000              # 10+5+39.5 > 39: one dose
    add(1000, profile=1)                                      # a hands session between
    assert dose_carry(log, [], 5, 40000) == 0
