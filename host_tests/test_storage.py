"""Stored records (firmware/storage.py, records.py): CRC, corruption, and power cuts.

The power-cut sweep cuts a calibration save at every unit (each byte written, each
create/remove/rename step) on a fake filesystem, in both tear modes, from every starting
state a save can meet, and checks that the next boot loads the old or the new record,
never anything else, and that after save() returned only the new one.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

import records  # noqa: E402
import storage  # noqa: E402
from fakefs import FakeFs, PowerCut  # noqa: E402
from protorig import CAL, Rig  # noqa: E402

OLD = dict(CAL)
NEW = dict(CAL, i_gain=17000, v_offset=-12, date="2025-06-30", tech="T02", meter="KEYSIGHT-34461A")
RESULTS = {}


def cal_record(fs):
    return records.Store(fs).cal


def loaded(fs):
    fs.revive()
    r = cal_record(fs)
    r.load()
    return r


def test_round_trip_and_header():
    fs = FakeFs()
    r = cal_record(fs)
    assert r.load() is None and r.status == storage.MISSING
    r.save(dict(OLD))
    data = bytes(fs.files["data/cal.rec"])
    assert data[:4] == b"IONR" and data[5] == storage.KIND_CAL
    assert len(data) == storage.HEADER + int.from_bytes(data[6:8], "little")
    r2 = loaded(fs)
    assert r2.data == OLD and r2.status == storage.OK


def test_invalid_record_is_refused_and_nothing_written():
    fs = FakeFs()
    r = cal_record(fs)
    r.save(dict(OLD))
    before = fs.snapshot()
    for bad in (dict(OLD, i_gain=30000), dict(OLD, date="2025-02-30"), dict(OLD, tech=""),
                dict(OLD, extra=1), {k: v for k, v in OLD.items() if k != "meter"},
                dict(OLD, i_offset=True), dict(OLD, tech="a\nb")):
        with pytest.raises(ValueError):
            r.save(bad)
        assert fs.snapshot() == before and r.data == OLD


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend", "kind", "version", "json",
                                    "invalid_field"])
def test_any_damage_is_detected_and_the_backup_used(damage):
    fs = FakeFs()
    r = cal_record(fs)
    r.save(dict(OLD))
    r.save(dict(NEW))                       # OLD is now the .bak
    f = fs.files["data/cal.rec"]
    if damage == "flip":
        f[20] ^= 0x01
    elif damage == "truncate":
        del f[-1]
    elif damage == "extend":
        f.extend(b" ")
    elif damage == "kind":
        fs.files["data/cal.rec"] = bytearray(storage.encode(storage.KIND_RX, NEW))
    elif damage == "version":
        f[4] = 2
    elif damage == "json":                  # valid CRC over a payload that is not JSON
        fs.files["data/cal.rec"] = bytearray(_raw(storage.KIND_CAL, b"{not json"))
    elif damage == "invalid_field":         # valid CRC and JSON, a value out of range
        fs.files["data/cal.rec"] = bytearray(storage.encode(storage.KIND_CAL,
                                                            dict(NEW, r_gain=99999)))
    r2 = loaded(fs)
    assert r2.data == OLD and r2.status == storage.RECOVERED
    # all copies bad: reported corrupt, nothing used
    fs.files["data/cal.rec.bak"][-2] ^= 0xFF
    r3 = loaded(fs)
    assert r3.data is None and r3.status == storage.CORRUPT


def _raw(kind, payload):
    import struct
    head = storage.MAGIC + struct.pack("<BBH", storage.VERSION, kind, len(payload))
    return head + struct.pack("<I", storage.crc(payload, storage.crc(head))) + payload


def test_save_never_renames_onto_an_existing_file():
    # the fake refuses a rename onto an existing name (EEXIST), as FAT's would be unsafe
    fs = FakeFs()
    r = cal_record(fs)
    for k in range(5):
        r.save(dict(OLD, i_offset=k))
    assert sorted(fs.files) == ["data/cal.rec", "data/cal.rec.bak"]
    assert loaded(fs).data["i_offset"] == 4


def _start_states():
    """Filesystems a save can meet: fresh, one copy, two copies, and each state a cut
    can leave behind (main missing with .new valid, main damaged with .bak valid...)."""
    states = {}
    fs = FakeFs()
    cal_record(fs).save(dict(OLD))
    states["main only"] = fs.snapshot()
    fs = FakeFs()
    r = cal_record(fs)
    r.save(dict(CAL, i_offset=7))
    r.save(dict(OLD))
    states["main + bak"] = fs.snapshot()
    s = dict(states["main + bak"])
    s["data/cal.rec.new"] = s.pop("data/cal.rec")           # cut between the renames
    states["new + bak (cut between renames)"] = s
    s = dict(states["main + bak"])
    s["data/cal.rec"] = s["data/cal.rec"][:-3]              # damaged main
    s["data/cal.rec.bak"] = storage.encode(storage.KIND_CAL, OLD)
    states["damaged main + bak"] = s
    s = dict(states["main only"])
    s["data/cal.rec.new"] = b"IONR\x01"                      # torn .new left over
    states["main + torn new"] = s
    return states


@pytest.mark.parametrize("tear", ["drop", "garbage"])
def test_power_cut_at_every_unit_of_a_calibration_save(tear):
    tried = 0
    outcomes = {"old": 0, "new": 0}
    for name, files in _start_states().items():
        before = loaded(FakeFs(files)).data
        assert before == OLD, name
        probe = FakeFs(files)
        cal_record(probe).save(dict(NEW))
        total = probe.used
        assert total > len(storage.encode(storage.KIND_CAL, NEW)), total   # each byte a unit
        for cut in range(total + 1):
            fs = FakeFs(files, budget=cut, tear=tear)
            r = cal_record(fs)
            r.load()
            try:
                r.save(dict(NEW))
                finished = True
            except PowerCut:
                finished = False
            got = loaded(fs)
            tried += 1
            assert got.data in (OLD, NEW), (name, cut, got.status, fs.files.keys())
            assert got.status in (storage.OK, storage.RECOVERED)
            if finished:
                assert got.data == NEW, (name, cut)
            outcomes["new" if got.data == NEW else "old"] += 1
            # and the device is not wedged: the next save (after the reboot) works
            fs.revive()
            r = cal_record(fs)
            r.load()
            r.save(dict(NEW, i_offset=1))
            assert loaded(fs).data == dict(NEW, i_offset=1)
            # a load never returns an older record than the one it returned before
            if got.data == NEW:
                assert loaded(fs).data != OLD
    RESULTS["cal_" + tear] = (tried, outcomes)
    print("calibration save, tear=%s: %d cut points tried, loaded old %d / new %d, never other"
          % (tear, tried, outcomes["old"], outcomes["new"]))
    assert outcomes["old"] and outcomes["new"]


def test_a_loaded_copy_is_never_regressed_by_an_interrupted_save():
    # boot 1: a cut left main missing and .new valid; load uses .new (NEW)
    files = _start_states()["new + bak (cut between renames)"]
    files = dict(files)
    files["data/cal.rec.new"] = storage.encode(storage.KIND_CAL, NEW)
    assert loaded(FakeFs(files)).data == NEW
    probe = FakeFs(files)
    cal_record(probe).save(dict(NEW, i_offset=3))
    for cut in range(probe.used + 1):
        fs = FakeFs(files, budget=cut)
        try:
            cal_record(fs).save(dict(NEW, i_offset=3))
        except PowerCut:
            pass
        assert loaded(fs).data in (NEW, dict(NEW, i_offset=3)), cut


def test_storage_error_leaves_the_record_and_the_device_unchanged():
    rig = Rig()
    rig.fs.fail_after(40)                                 # EIO while writing .new
    before = rig.store.cal.data
    assert rig.err("cal_write", **NEW) == "E_STORAGE"
    assert rig.store.cal.data == before and rig.app.cal_in_use.i_gain == before["i_gain"]
    assert loaded(rig.fs).data == before
    assert rig.ok("cal_write", **NEW)["status"] == "ok"
    assert loaded(rig.fs).data == NEW and rig.app.cal_in_use.i_gain == NEW["i_gain"]


def test_real_filesystem(tmp_path):
    d = str(tmp_path / "data")
    store = records.Store(storage.Fs(), d).load()
    assert store.cal.status == storage.MISSING
    store.cal.save(dict(OLD))
    store.cal.save(dict(NEW))
    assert sorted(os.listdir(d)) == ["cal.rec", "cal.rec.bak"]
    s2 = records.Store(storage.Fs(), d).load()
    assert s2.cal.data == NEW and s2.cal.status == storage.OK
    with open(os.path.join(d, "cal.rec"), "r+b") as f:
        f.seek(30)
        f.write(b"X")
    s3 = records.Store(storage.Fs(), d).load()
    assert s3.cal.data == OLD and s3.cal.status == storage.RECOVERED


def test_crc_fallback_matches_binascii():
    import binascii
    src = open(storage.__file__).read()
    ns = {}
    start = src.index("    def crc32(data, crc=0):")
    body = "\n".join(line[4:] for line in src[start:].splitlines()[:8])
    exec(body, ns)
    for data in (b"", b"123456789", bytes(range(256)), b"IONR" * 50):
        assert ns["crc32"](data) == binascii.crc32(data)
        assert ns["crc32"](data[3:], ns["crc32"](data[:3])) == binascii.crc32(data)
