"""Treatment log (firmware/treatment_log.py, recorder.py): records, the ring, power cuts.

The power-cut sweep cuts an append at every unit (each byte written; creating the
segment file counts too) on a fake filesystem, in both tear modes, for each kind of
append (middle of a segment, first slot of a new segment, first slot of a segment that
a ring turn re-uses, after a clear), and checks after the reboot that every committed
record in the ring's guaranteed window is still there, byte for byte.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

import safety  # noqa: E402
import session as sm  # noqa: E402
import treatment_log as tl  # noqa: E402
from fakefs import FakeFs, PowerCut  # noqa: E402
from protorig import Rig  # noqa: E402


def rec(k, **kw):
    r = {"start": 1700000000 + k * 86400, "epoch": True, "target_ua": 15000, "duration_s": 600,
         "ramp_up_s": 30, "ramp_down_s": 15, "reverse": k % 2 == 1, "delivered_s": 600,
         "charge_uamin": 150000 + k, "i_min_ua": 14900, "i_mean_ua": 15000, "i_max_ua": 15100,
         "load_ohm": 2500 + k, "pauses": k % 3, "paused_s": k % 7, "end": 1, "fault": 0}
    r.update(kw)
    return r


def new_log(fs):
    return tl.TreatmentLog(fs, "data/log")


def filled(n):
    fs = FakeFs()
    log = new_log(fs)
    for k in range(1, n + 1):
        assert log.append(rec(k)) == k
    return fs, log


def test_record_round_trip_clamps_and_crc():
    r = rec(3, charge_uamin=2 ** 40, i_max_ua=70000, pauses=-1)
    data = tl.encode(42, r)
    assert len(data) == tl.SIZE == 48
    d = tl.decode(data)
    assert d["seq"] == 42 and d["charge_uamin"] == 0xFFFFFFFF and d["i_max_ua"] == 0xFFFF
    assert d["pauses"] == 0 and d["reverse"] is True and d["epoch"] is True
    for k in range(tl.SIZE):
        bad = bytearray(data)
        bad[k] ^= 0x10
        assert tl.decode(bytes(bad)) is None, k
    assert tl.decode(data[:-1]) is None


def _encode_v05(seq, r):
    """A record exactly as firmware 0.5 wrote it (its encoder, kept here)."""
    import struct
    flags = (tl.F_EPOCH if r["epoch"] else 0) | (tl.F_REVERSE if r["reverse"] else 0)
    body = struct.pack(
        tl.FMT, tl.MAGIC, 1, flags, seq, r["start"], r["charge_uamin"], r["load_ohm"],
        r["target_ua"], r["duration_s"], r["delivered_s"], r["paused_s"], r["i_min_ua"],
        r["i_mean_ua"], r["i_max_ua"], r["pauses"], r["end"], r["fault"], r["ramp_up_s"],
        r["ramp_down_s"], r.get("profile", 0), 0)
    return body[:44] + struct.pack("<I", tl.crc(body[:44]))


def _decode_v05(buf):
    """Firmware 0.5's reading of a record (profile: the low byte of its word)."""
    import struct
    t = struct.unpack_from(tl.FMT, buf, 0)
    if t[0] != tl.MAGIC or t[1] != 1 or t[20] != tl.crc(bytes(buf[:44])):
        return None
    return {"seq": t[3], "charge_uamin": t[5], "end": t[15], "profile": t[19] & 0xFF}


def test_records_of_firmware_05_read_and_0_5_reads_the_new_ones():
    old = _encode_v05(7, rec(7, profile=2))
    d = tl.decode(old)
    assert d["seq"] == 7 and d["profile"] == 2 and d["attempts"] == 0
    assert tl.encode(7, dict(rec(7, profile=2), attempts=0)) == old      # same bytes
    new = tl.encode(8, dict(rec(8, profile=2), attempts=513, end=tl.END_INTERRUPTED))
    assert tl.decode(new)["attempts"] == 513
    assert _decode_v05(new) == {"seq": 8, "charge_uamin": 150008, "end": 8, "profile": 2}


def test_ring_keeps_at_least_500_sessions():
    fs, log = filled(1234)
    assert tl.KEEP == 500
    assert tl.KEEP <= log.count <= tl.SEGMENTS * tl.SEG_RECORDS
    assert log.first == log.last - log.count + 1 and log.last == 1234
    assert len(fs.files) == tl.SEGMENTS
    assert all(len(f) <= tl.SEG_RECORDS * tl.SIZE for f in fs.files.values())
    for seq in range(1234 - 499, 1235):
        assert log.read(seq)["charge_uamin"] == 150000 + seq
    assert log.read(log.first - 1) is None
    log2 = new_log(fs)
    log2.load()
    assert (log2.first, log2.last, log2.count, log2.counted) == (log.first, log.last, log.count,
                                                                 log.counted)


def _committed(log):
    return {s: log.read(s) for s in range(log.first, log.last + 1)}


CASES = {
    "middle of a segment": 37,          # append #38: slot 37 of segment 0
    "new segment": 100,                 # append #101: slot 0 of segment 2 (created)
    "ring turn": 550,                   # append #551: re-uses segment 0 (truncated)
    "ring turn, later slot": 577,
}


@pytest.mark.parametrize("tear", ["drop", "garbage"])
def test_power_cut_at_every_byte_of_an_append(tear):
    tried = 0
    survived = 0
    report = []
    for name, n in CASES.items():
        base_fs, base = filled(n)
        files = base_fs.snapshot()
        before = _committed(base)
        probe = FakeFs(files)
        pl = new_log(probe)
        pl.load()
        pl.append(rec(n + 1))
        total = probe.used
        assert total >= tl.SIZE
        # after this append the ring guarantees the newest KEEP sessions
        keep = [s for s in before if s > n + 1 - tl.KEEP]
        case_tried = case_survived = 0
        for cut in range(total + 1):
            fs = FakeFs(files, budget=cut, tear=tear)
            log = new_log(fs)
            log.load()
            try:
                log.append(rec(n + 1))
                done = True
            except PowerCut:
                done = False
            fs.revive()
            after = new_log(fs)
            after.load()
            case_tried += 1
            for s in keep:
                assert after.read(s) == before[s], (name, cut, s)
                case_survived += 1
            torn = after.read(n + 1)
            assert torn is None or torn == dict(tl.decode(tl.encode(n + 1, rec(n + 1)))), (name, cut)
            assert after.last in (n, n + 1)
            if done:
                assert torn is not None and after.last == n + 1
            else:
                assert cut < total
            # the next append takes the torn slot's seq and everything reads back
            seq = after.append(rec(n + 1, charge_uamin=7))
            assert seq == (n + 2 if torn is not None else n + 1)
            again = new_log(fs)
            again.load()
            assert again.read(seq)["charge_uamin"] == 7
            for s in keep:
                assert again.read(s) == before[s]
        tried += case_tried
        survived += case_survived
        report.append("%s: %d offsets, %d/%d committed records survived every cut" % (
            name, case_tried, case_survived, case_tried * len(keep)))
    print("log append, tear=%s: %d offsets tried; %s" % (tear, tried, "; ".join(report)))
    assert tried >= 4 * tl.SIZE


def test_torn_last_record_is_dropped_and_rewritten():
    fs, log = filled(10)
    fs.files["data/log00.bin"] = fs.files["data/log00.bin"][:-20]     # record 10 torn
    log2 = new_log(fs)
    assert log2.load() == 9 and log2.last == 9 and log2.dropped == 1
    assert log2.append(rec(10, charge_uamin=5)) == 10
    log3 = new_log(fs)
    log3.load()
    assert log3.count == 10 and log3.read(10)["charge_uamin"] == 5 and log3.dropped == 0


def test_a_damaged_middle_record_costs_only_itself():
    fs, log = filled(20)
    fs.files["data/log00.bin"][5 * tl.SIZE + 9] ^= 0xFF                 # record 6
    log2 = new_log(fs)
    assert log2.load() == 19 and log2.read(6) is None and log2.read(7)["seq"] == 7
    recs, nxt = log2.page(1, 8)
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5, 7, 8, 9] and nxt == 10


def test_clear_keeps_the_session_counter():
    fs, log = filled(30)
    log.clear()
    assert log.count == 0 and log.last == 30 and not fs.files
    assert log.append(rec(31)) == 31
    assert len(fs.files["data/log00.bin"]) == 31 * tl.SIZE       # slots 0..29 zero-filled
    log2 = new_log(fs)
    log2.load()
    assert log2.count == 1 and log2.first == 31


# ---- the recorder and the app, on the sim board ------------------------------------------

def run_session(rig, **start):
    args = {"target_ua": 10000, "duration_s": 300}
    args.update(start)
    rig.ok("start", **args)
    assert rig.until(sm.TREAT, 60)
    assert rig.until(sm.DONE, 400)
    rig.step(2)


def stopped_with_the_log_write_failing():
    """A session stopped in TREAT whose log write fails (once): its record is pending."""
    rig = Rig(skin_ohm=800.0)
    rig.ok("start", target_ua=8000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.fs.fail_after(0)
    rig.ok("stop")
    assert rig.until(sm.DONE, 30)
    rig.step(2)
    return rig


def test_a_completed_session_is_logged_from_the_poll_with_the_output_off():
    rig = Rig(skin_ohm=800.0)
    rig.ok("time_set", epoch=1750000000)
    writes = []
    log = rig.store.log
    append = log.append

    def watched(r):        # the record itself (checkpoints: test_log_checkpoints.py)
        writes.append((en0[0], rig.ctrl.hal.enabled, rig.ctrl.session.state))
        return append(r)
    log.append = watched
    en0 = [False]
    poll = rig.app.poll

    def watched_poll():
        en0[0] = rig.ctrl.hal.enabled
        poll()
    rig.app.poll = watched_poll
    run_session(rig)
    assert writes and all(not a and not b for a, b, _ in writes), writes
    assert all(s in (sm.DONE, sm.FAULT, sm.IDLE) for _, _, s in writes)
    r = rig.store.log.read(1)
    assert r["end"] == sm.END_COMPLETED and r["fault"] == 0
    assert r["delivered_s"] == 300 and r["duration_s"] == 300 and r["target_ua"] == 10000
    assert r["epoch"] and 1750000000 <= r["start"] < 1750000000 + 5
    assert abs(r["i_mean_ua"] - 10000) < 30 and 9800 < r["i_min_ua"] <= r["i_max_ua"] < 10200
    ses = rig.ctrl.session
    assert r["charge_uamin"] == ses.charge_uamin
    # the timer runs from the ramp's start: 30 s ramp up + 270 s at 10 mA + 15 s ramp down
    expected = 10000 * (270 + 30 / 2 + 15 / 2) / 60
    assert abs(r["charge_uamin"] - expected) < 0.01 * expected, (r["charge_uamin"], expected)
    load = rig.bench.plant
    assert 0.7 * (load.skin_ohm * 2 + load.body_ohm) < r["load_ohm"] < 3 * (load.skin_ohm * 2 + 2000)
    assert tl.counts(r)
    assert rig.ok("status")["log_last"] == 1


def test_stopped_and_faulted_sessions_are_logged():
    rig = Rig(skin_ohm=800.0)
    rig.ok("start", target_ua=8000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.seconds(10)
    rig.ok("pause")
    assert rig.until(sm.PAUSED, 30)
    rig.ok("resume")
    assert rig.until(sm.TREAT, 60)
    rig.ok("stop")
    assert rig.until(sm.DONE, 30)
    rig.step(2)
    r = rig.store.log.read(1)
    assert r["end"] == sm.END_STOPPED and r["pauses"] == 1 and not tl.counts(r)
    rig.ok("reset")
    rig.ok("start", target_ua=8000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.bench.plant.faults["source_runaway"] = True
    assert rig.until(sm.FAULT, 1)
    rig.step(2)
    r = rig.store.log.read(2)
    assert r["end"] == sm.END_FAULT and r["fault"] == safety.F_OVERCURRENT
    page = rig.ok("log_read")
    assert [x["end"] for x in page["records"]] == ["stopped", "fault"]
    assert page["records"][1]["fault"] == "overcurrent"


def test_log_write_failure_is_retried_and_nothing_is_lost():
    rig = stopped_with_the_log_write_failing()
    assert rig.app.log_errors == 1 and rig.ok("status")["log_pending"] == 1
    rig.seconds(1.1)
    assert rig.ok("status")["log_pending"] == 0 and rig.store.log.read(1)["end"] == sm.END_STOPPED


def test_crash_in_the_loop_records_the_session():
    import main
    rig = Rig(skin_ohm=800.0)
    rig.ok("start", target_ua=8000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    b = rig.bench

    def sleep(us):
        b.plant.step(us / 1e6)
        b.now_us += us

    def poll():
        rig.app.poll()
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        main.run(rig.ctrl, rig.ticks, sleep, poll=poll, max_steps=3)
    assert not rig.ctrl.hal.enabled
    rig.app.crashed()
    r = rig.store.log.read(1)
    assert r["end"] == sm.END_FAULT and r["fault"] == safety.F_EXCEPTION


def test_log_read_pages_and_clear_is_service_only():
    rig = Rig()
    for k in range(1, 21):
        rig.store.log.append(rec(k))
    got = []
    start = None
    while True:
        page = rig.ok("log_read", **({} if start is None else {"from": start}))
        assert len(page["records"]) <= 8
        got += page["records"]
        assert page["first"] == 1 and page["last"] == 20 and page["count"] == 20
        start = page["next"]
        if start is None:
            break
    assert [r["seq"] for r in got] == list(range(1, 21))
    assert got[0]["end"] == "completed" and got[0]["fault"] == "ok"
    assert rig.ok("log_read", **{"from": 18, "n": 1})["records"][0]["seq"] == 18
    assert rig.err("log_read", n=9) == "E_RANGE"
    user = Rig(service=False, fs=rig.fs)
    assert user.err("log_clear") == "E_DENIED"
    assert user.store.log.count == 20
    assert rig.ok("log_clear")["next_seq"] == 21
    assert rig.ok("log_read")["records"] == []
    rebooted = Rig(fs=rig.fs)
    assert rebooted.store.log.last == 20 and rebooted.store.log.count == 0


def test_a_record_in_the_wrong_slot_is_not_trusted():
    # a valid record (CRC fine) where its seq does not live, e.g. a cross-linked FAT cluster
    fs, log = filled(5)
    seg0 = fs.files["data/log00.bin"]
    seg0[4 * tl.SIZE:5 * tl.SIZE] = seg0[0:tl.SIZE]           # record 1 copied into slot 4
    log2 = new_log(fs)
    log2.load()
    assert log2.count == 4 and log2.read(5) is None and log2.read(1)["seq"] == 1
    assert log2.dropped == 1


def test_a_pending_record_waits_while_the_next_session_carries_current():
    rig = stopped_with_the_log_write_failing()
    assert rig.ok("status")["log_pending"] == 1
    rig.ok("start", target_ua=8000, duration_s=300)        # at once: the write is still due
    writes = []
    log = rig.store.log
    append = log.append

    def watched(r):        # appends only: the session's checkpoints go on meanwhile
        writes.append(rig.ctrl.hal.enabled)
        return append(r)
    log.append = watched
    assert rig.until(sm.TREAT, 60)
    rig.seconds(5)
    assert writes == [] and rig.ok("status")["log_pending"] == 1
    rig.ok("stop")
    assert rig.until(sm.DONE, 30)
    rig.step(2)
    assert len(writes) == 2 and not any(writes)              # one record per poll
    assert rig.store.log.read(1)["end"] == sm.END_STOPPED
    assert rig.ok("status")["log_pending"] == 0 and rig.store.log.read(2)["seq"] == 2


# ---- attempts cannot evict treatments (issue 15) ------------------------------------------

def _treat_briefly(rig, seconds=5):
    """A short real session (stopped in TREAT): a treatment in the log's sense."""
    rig.bench.plant.contact = True
    rig.ok("start", target_ua=8000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.seconds(seconds)
    rig.ok("stop")
    assert rig.until(sm.DONE, 30)
    rig.step(2)


def test_a_wipe_attempt_of_10000_start_stop_pairs_keeps_every_treatment():
    rig = Rig(skin_ohm=800.0)
    log = rig.store.log
    for k in range(1, 35):
        log.append(rec(k))
    _treat_briefly(rig)
    assert log.last == 35 and log.read(35)["end"] == sm.END_STOPPED
    before = {s: log.read(s) for s in range(1, 36)}
    rig.bench.plant.contact = False                 # the hands out of the water
    g = rig.fs.gen
    for _ in range(10000):
        rig.ok("start")
        rig.step()
        rig.ok("stop")
        rig.step()
    assert rig.fs.gen == g, "an attempt wrote flash"
    assert log.last == 35 and log.count == 35
    assert {s: log.read(s) for s in range(1, 36)} == before
    assert rig.ok("log_read", **{"from": 35})["records"][0]["charge_uamin"] > 0
    _treat_briefly(rig)                             # the next treatment counts them
    r = rig.ok("log_read", **{"from": 36})["records"][0]
    assert r["seq"] == 36 and r["attempts"] == 10000 and r["end"] == "stopped"
    after = Rig(fs=rig.fs)                          # and after a reboot
    assert {s: after.store.log.read(s) for s in range(1, 36)} == before


def test_short_attempts_with_the_hands_in_leave_no_record_and_no_gap():
    """Starts stopped within ~4 s (the contact probe, the first mA of the ramp): those
    under 50 µA·min are attempts, including those on record (25 µA·min) that void their
    checkpoint and give their number back; the records that remain are numbered without
    a gap and each delivered 50 µA·min or more."""
    import random
    rnd = random.Random(15)
    rig = Rig(skin_ohm=800.0)
    log = rig.store.log
    _treat_briefly(rig)
    voids = []
    void = log.void

    def watched(seq):
        voids.append(seq)
        return void(seq)
    log.void = watched
    attempts = 0
    for _ in range(150):
        rig.ok("start", target_ua=15000, duration_s=300)
        rig.seconds(rnd.uniform(0.3, 4.5))
        rig.ok("stop")
        assert rig.until(sm.DONE, 30)
        rig.step(2)
        if rig.ctrl.session.charge_uamin < tl.ATTEMPT_UAMIN:
            attempts += 1
    voided = len(voids)
    assert voided >= 5 and attempts >= 30, (voided, attempts)
    recs = [log.read(s) for s in range(1, log.last + 1)]
    assert all(r is not None and r["charge_uamin"] >= tl.ATTEMPT_UAMIN for r in recs)
    assert rig.app.recorder.attempts + sum(r["attempts"] for r in recs) == attempts
    again = Rig(fs=rig.fs)
    assert again.store.log.orphans == [] and again.app.recorder.pending == []


# ---- the clock cannot rewrite history (issue 15) ------------------------------------------

def test_time_set_outside_service_mode_cannot_back_date_or_jump():
    t0 = 1750000000
    rig = Rig(skin_ohm=800.0)
    for k in range(3):
        rig.store.log.append(rec(k, start=t0 - (3 - k) * 86400, delivered_s=600, paused_s=7))
    floor = t0 - 86400 + 607
    patient = Rig(service=False, fs=rig.fs)            # a fresh boot, no service mode
    assert patient.store.log.time_floor == floor
    assert patient.err("time_set", epoch=floor - 1) == "E_DENIED"
    assert patient.err("time_set", epoch=4102444000) == "E_DENIED"   # the 2099
    assert patient.ok("status")["time"] is None                      # nothing changed
    assert patient.ok("time_set", epoch=t0)["time"] == t0
    assert patient.err("time_set", epoch=t0 + 301) == "E_DENIED"
    assert patient.err("time_set", epoch=t0 - 301) == "E_DENIED"
    assert patient.ok("time_set", epoch=t0 + 300)["time"] == t0 + 300
    assert patient.ok("time_set", epoch=t0 - 2)["time"] == t0 - 2
    # many small sets do not add up: the bound is around the first set of the boot
    assert patient.ok("time_set", epoch=t0 - 300)["time"] == t0 - 300
    assert patient.err("time_set", epoch=t0 - 590) == "E_DENIED"      # 290 from now
    patient.seconds(2)
    assert patient.ok("status")["time"] == t0 - 298
    assert rig.ok("time_set", epoch=floor - 10 * 86400)["time"] == floor - 10 * 86400
    assert rig.ok("time_set", epoch=4102444000)["time"] == 4102444000      # service
    # a new record's start is then never before a recorded one (seq gives the order)
    patient.bench.plant.contact = True
    patient.ok("start", target_ua=8000, duration_s=300)
    assert patient.until(sm.TREAT, 60)
    patient.ok("stop")
    assert patient.until(sm.DONE, 30)
    patient.step(2)
    r = patient.ok("log_read", **{"from": 4})["records"][0]
    assert r["seq"] == 4 and r["start"] >= floor
