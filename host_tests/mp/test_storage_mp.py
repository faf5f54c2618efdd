"""Storage and the treatment log on MicroPython: CRC, power cut at every unit of a
calibration save and of a log append (fake flash), and the real filesystem (os).

MicroPython-compatible: run by mptest through host_tests/test_protocol_on_vms.py.
"""

import sys

import records
import storage
import treatment_log as tl
from fakefs import FakeFs, PowerCut
from protorig import CAL

NEW = {"i_gain": 17000, "i_offset": 3, "v_gain": 16000, "v_offset": -12, "r_gain": 16384,
       "r_offset": 9, "date": "2025-06-30", "tech": "T02", "meter": "KEYSIGHT-34461A"}


def test_crc32():
    assert storage.crc(b"123456789") == 0xCBF43926
    assert storage.crc(b"6789", storage.crc(b"12345")) == 0xCBF43926


def test_calibration_save_survives_a_cut_anywhere():
    base = FakeFs()
    records.Store(base).cal.save(dict(CAL))
    files = base.snapshot()
    probe = FakeFs(files)
    records.Store(probe).cal.save(dict(NEW))
    tried = 0
    for tear in ("drop", "garbage"):
        for cut in range(probe.used + 1):
            fs = FakeFs(files, budget=cut, tear=tear)
            done = True
            try:
                records.Store(fs).cal.save(dict(NEW))
            except PowerCut:
                done = False
            fs.revive()
            r = records.Store(fs).cal
            got = r.load()
            assert got == CAL or got == NEW, (tear, cut, r.status)
            if done:
                assert got == NEW
            tried += 1
    print("CALCUT tried=%d" % tried)


def _rec(k):
    return {"start": 1000 + k, "epoch": False, "target_ua": 15000, "duration_s": 600,
            "ramp_up_s": 30, "ramp_down_s": 15, "reverse": False, "delivered_s": 600,
            "charge_uamin": k, "i_min_ua": 1, "i_mean_ua": 2, "i_max_ua": 3, "load_ohm": 4,
            "pauses": 0, "paused_s": 0, "end": 1, "fault": 0}


def test_log_append_survives_a_cut_anywhere():
    for n in (37, 550):
        fs0 = FakeFs()
        log = tl.TreatmentLog(fs0, "data/log")
        for k in range(1, n + 1):
            log.append(_rec(k))
        files = fs0.snapshot()
        probe = FakeFs(files)
        pl = tl.TreatmentLog(probe, "data/log")
        pl.load()
        pl.append(_rec(n + 1))
        keep = range(max(1, n + 2 - tl.KEEP), n + 1)
        for tear in ("drop", "garbage"):
            for cut in range(probe.used + 1):
                fs = FakeFs(files, budget=cut, tear=tear)
                lg = tl.TreatmentLog(fs, "data/log")
                lg.load()
                try:
                    lg.append(_rec(n + 1))
                except PowerCut:
                    pass
                fs.revive()
                after = tl.TreatmentLog(fs, "data/log")
                after.load()
                for s in keep:
                    r = after.read(s)
                    assert r is not None and r["charge_uamin"] == s, (n, tear, cut, s)


def test_real_filesystem():
    import os
    base = "/tmp" if sys.platform != "webassembly" else ""
    d = base + "/ionto_storage_test_%d" % (id(base) % 100000)
    fs = storage.Fs()
    store = records.Store(fs, d).load()
    try:
        store.cal.save(dict(CAL))
        store.cal.save(dict(NEW))
        store.log.append(_rec(1))
        store.log.append(_rec(2))
        again = records.Store(fs, d).load()
        assert again.cal.data == NEW and again.cal.status == storage.OK
        assert again.log.count == 2 and again.log.read(2)["charge_uamin"] == 2
    finally:
        for name in os.listdir(d):
            os.remove(d + "/" + name)
        os.rmdir(d)


def _ck(charge):
    return (False, False, 1000, charge, 4, 15000, 600, charge // 100, 0, 1, 2, 3, 0,
            tl.END_INTERRUPTED, 0, 30, 15, 1, 0)


def test_checkpoint_survives_a_cut_anywhere():
    fs0 = FakeFs()
    log = tl.TreatmentLog(fs0, "data/log")
    log.load()
    seq = log.reserve()
    log.checkpoint(seq, *_ck(100))
    files = fs0.snapshot()
    probe = FakeFs(files)
    pl = tl.TreatmentLog(probe, "data/log")
    pl.load()
    pl.checkpoint(seq, *_ck(200))
    for tear in ("drop", "garbage"):
        for cut in range(probe.used + 1):
            fs = FakeFs(files, budget=cut, tear=tear)
            lg = tl.TreatmentLog(fs, "data/log")
            lg.load()
            try:
                lg.checkpoint(seq, *_ck(200))
            except PowerCut:
                pass
            fs.revive()
            after = tl.TreatmentLog(fs, "data/log")
            after.load()
            got = [r["charge_uamin"] for r in after.orphans]
            assert got == [100] or got == [200], (tear, cut, got)
            assert after.orphans[0]["end"] == tl.END_INTERRUPTED
    # a void: no orphan, and the number goes back
    log.void(seq)
    again = tl.TreatmentLog(fs0, "data/log")
    again.load()
    assert again.orphans == [] and again.reserve() == seq
