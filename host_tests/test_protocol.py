"""The host protocol (firmware/protocol.py, commands.py, app.py) on the sim board.

Framing, every error code, every command (success and refusal), and that a refused
command changes nothing. The device runs in virtual time (protorig.Rig: scenario.Bench
plus a fake flash); `rig.step()` is one control period followed by the app's poll.
"""

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

import jsonstrict  # noqa: E402
import scenario  # noqa: E402
import safety  # noqa: E402
import session as sm  # noqa: E402
import storage  # noqa: E402
from commands import Commands  # noqa: E402
from protocol import Protocol  # noqa: E402
from protorig import CAL, Rig  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RX = {"profile": "hands", "target_ua": 10000, "min_duration_s": 300, "max_duration_s": 900,
      "duration_s": 600, "ramp_up_s": 10, "ramp_down_s": 10, "reverse_allowed": False,
      "dose_uamin": 40000, "hands_max_ua": 12000, "feet_max_ua": 12000, "child_max_ua": 8000,
      "underarm_max_ua": 0, "drug_max_ua": 0, "induction_sessions": 3, "induction_per_week": 3,
      "maintenance_per_week": 1}


def refused(rig, line, code):
    """Send `line`; exactly one error reply with `code`, and nothing changed."""
    before = rig.snapshot()
    got = rig.send_line(line if isinstance(line, bytes) else json.dumps(line).encode())
    assert len(got) == 1, got
    assert got[0]["ok"] is False and got[0]["error"]["code"] == code, got
    assert isinstance(got[0]["error"]["msg"], str) and got[0]["error"]["msg"]
    assert rig.snapshot() == before
    return got[0]


# ---- framing ----------------------------------------------------------------------------

def test_any_chunking_one_reply_per_line_in_order():
    rig = Rig()
    data = b'{"id":1,"cmd":"status"}\n{"id":2,"cmd":"identify"}\r\n\n{"id":3,"cmd":"nope"}\n'
    rig.out[:] = []
    for k in range(len(data)):
        rig.app.feed(data[k:k + 1])
    got = rig.take()
    assert [r["id"] for r in got] == [1, 2, None, 3]
    assert [r["ok"] for r in got] == [True, True, False, False]
    assert got[2]["error"]["code"] == "E_JSON" and got[3]["error"]["code"] == "E_UNKNOWN_CMD"
    rig.app.feed(data)
    assert [r["id"] for r in rig.take()] == [1, 2, None, 3]
    # a partial line waits for its end
    rig.app.feed(b'{"id":9,"cmd":"sta')
    assert rig.take() == []
    rig.app.feed(b'tus"}\n')
    assert [r["id"] for r in rig.take()] == [9]


def test_line_length_bound():
    rig = Rig()
    pad = lambda n: b'{"cmd":"status","id":1' + b" " * (n - 23) + b"}"  # noqa: E731
    assert len(pad(256)) == 256
    assert rig.send_line(pad(256))[0]["ok"] is True
    assert rig.send_line(pad(256) + b"\r")[0]["ok"] is True
    refused(rig, pad(257), "E_TOO_LONG")
    refused(rig, b"x" * 100000, "E_TOO_LONG")
    # an over-long line arriving in pieces: one reply at its end, then normal again
    rig.out[:] = []
    for _ in range(100):
        rig.app.feed(b"y" * 50)
    assert rig.out == []
    rig.app.feed(b'\n{"id":5,"cmd":"status"}\n')
    got = rig.take()
    assert [g["error"]["code"] if not g["ok"] else g["id"] for g in got] == ["E_TOO_LONG", 5]


@pytest.mark.parametrize("line", [b"\xff", b"\x80", b'{"cmd":"\xc0\x80"}', b"\xed\xa0\x80",
                                  b"\xf4\x90\x80\x80", b"\xe2\x82", b'{"cmd":"status"}\xc3',
                                  b"\xf0\x8f\xbf\xbf", b"\xe0\x9f\xbf"])
def test_invalid_utf8(line):
    refused(Rig(), line, "E_UTF8")


@pytest.mark.parametrize("line", [
    b"", b" ", b"{", b"}", b'{"cmd":"status",}', b'{"cmd" "status"}', b'{"cmd":"status" "id":1}',
    b"{,}", b'{"cmd":"status","id":01}', b'{"cmd":"status","id":1.}', b'{"id":NaN,"cmd":"status"}',
    b'{"cmd":"status"} x', b'{"cmd":"status"}{}', b"{'cmd':'status'}", b'{"cmd":"sta\ttus"}',
    b'{"cmd":"status","x":[1,]}', b'{"cmd":"\\x41"}', b'{"cmd":tru}', b"\x00", b"\x03\x04",
    b'{"cmd":"status","id":-}', b'{"a":' * 9 + b"1" + b"}" * 9,
])
def test_invalid_json(line):
    refused(Rig(), line, "E_JSON")


@pytest.mark.parametrize("line", [b"[]", b"1", b'"status"', b"null", b"true"])
def test_request_must_be_an_object(line):
    assert "object" in refused(Rig(), line, "E_JSON")["error"]["msg"]


def test_envelope_errors():
    rig = Rig()
    for bad_id in ("7", 1.5, True, -1, 2 ** 31, None, [1]):
        r = refused(rig, {"id": bad_id, "cmd": "status"}, "E_TYPE")
        assert r["id"] is None
    assert refused(rig, {"id": 4}, "E_MISSING")["id"] == 4
    assert refused(rig, {"id": 4, "cmd": 3}, "E_TYPE")["id"] == 4
    r = refused(rig, {"id": 5, "cmd": "fly" * 40}, "E_UNKNOWN_CMD")
    assert r["id"] == 5 and len(r["error"]["msg"]) < 60
    refused(rig, {"cmd": "status", "verbose": True}, "E_UNKNOWN_FIELD")
    r = refused(rig, {"cmd": "start", "zz": 1, "aa": 2, "target_ua": "x"}, "E_UNKNOWN_FIELD")
    assert "'aa'" in r["error"]["msg"]               # the same key on every interpreter
    assert rig.ask("status")["id"] == 1
    assert rig.send_line(b'{"cmd":"status"}')[0]["id"] is None     # id is optional
    assert rig.send_line(b'{"cmd":"status","id":2147483647}')[0]["id"] == 2 ** 31 - 1


def test_a_handler_bug_is_answered_and_counted():
    out = []

    def handler(cmd, req):
        raise KeyError("bug")
    p = Protocol(handler, lambda b: out.append(bytes(b)))   # lines reuse a buffer
    p.feed(b'{"id":3,"cmd":"x"}\n{"cmd":"y"}\n')
    got = [json.loads(x) for x in out]
    assert [g["error"]["code"] for g in got] == ["E_INTERNAL", "E_INTERNAL"]
    assert got[0]["id"] == 3 and p.internal == 2


def test_a_heap_exhausted_while_answering_is_left_to_busy():
    """MemoryError is not a bug to answer (answering would allocate): it goes to the
    caller, whose busy() writes the constant E_BUSY line and drops the line's rest."""
    out = []

    def handler(cmd, req):
        raise MemoryError
    p = Protocol(handler, lambda b: out.append(bytes(b)))   # lines reuse a buffer
    with pytest.raises(MemoryError):
        p.feed(b'{"id":3,"cmd":"status"}\n')
    p.busy()
    p.feed(b'{"cmd":"y"\n')        # the next line is read afresh
    got = [json.loads(x) for x in out]
    assert got[0] == {"id": None, "ok": False, "error": {
        "code": "E_BUSY", "msg": "no memory for requests until the session ends; "
                                 "telemetry goes on"}}
    assert got[1]["error"]["code"] == "E_JSON" and p.busy_lines == 1 and p.internal == 0


def test_write_errors_do_not_escape():
    def write(b):
        raise OSError(5)
    p = Protocol(lambda c, r: {}, write)
    p.feed(b'{"cmd":"x"}\n\n')
    assert p.write_errors == 2 and p.lines == 2


@pytest.mark.parametrize("text", [
    '{"a":1}', ' { "a" : [1, -2.5e3, true, false, null, "x\\u00e9\\n", {}] } ', '"\\ud83d\\ude00"',
    '"\\ud800"', '"\\ud800\\u0041"', "-0", "0.0e+0", '{"a":1,"a":2}', '[[[[[[[[1]]]]]]]]', "1E400",
])
def test_strict_json_agrees_with_cpython(text):
    assert jsonstrict.loads(text) == json.loads(text) or text == "1E400"


def test_strict_json_refuses_what_cpython_accepts_only_as_extensions():
    for text in ("NaN", "Infinity", "-Infinity", "[" * 9 + "]" * 9):
        json.loads(text)
        with pytest.raises(ValueError):
            jsonstrict.loads(text)


# ---- commands ---------------------------------------------------------------------------

def test_identify():
    r = Rig().ok("identify")
    assert r["fw"] and r["proto"] == 2 and r["board"] == "sim" and r["uid"] == "sim-rig"
    assert re.match(r"^cpython \d+\.\d+\.\d+$", r["python"]) and r["line_max"] == 256


def test_status_while_treating():
    rig = Rig(skin_ohm=1500.0)
    s = rig.ok("status")
    assert s["state"] == "IDLE" and s["fault"] == "ok" and s["cal"] == "ok" and s["rx"] == "missing"
    assert s["load_ohm"] is None and s["flow_pct"] is None and s["time"] is None
    assert s["density_pm"] is None
    rig.ok("start", target_ua=12000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.seconds(20)
    s = rig.ok("status")
    p = rig.bench.plant
    assert s["state"] == "TREAT" and s["target_ua"] == 12000 and abs(s["i_ua"] - 12000) < 100
    assert 98 <= s["flow_pct"] <= 101 and s["limited"] is False
    # V/I as the device sees it: the load plus the electrodes' polarization offset
    apparent = p.v_load / (p.true_ua / 1e6)
    assert abs(s["load_ohm"] - apparent) < 0.03 * apparent, (s["load_ohm"], apparent)
    assert s["load_ohm"] > scenario._load_ohm(p)
    assert s["v_mv"] > 0 and s["sp_ua"] > 0
    assert 250 <= s["elapsed_s"] + s["remaining_s"] <= 300 and s["elapsed_s"] >= 49
    assert s["charge_uamin"] > 12000 * 20 // 60
    # the density guard's estimate: full immersion at the target (issue 13)
    assert 950 <= s["density_pm"] <= 1050, s["density_pm"]
    p.lift_area = 0.7
    rig.seconds(1)
    s = rig.ok("status")
    assert s["state"] == "TREAT" and 1200 <= s["density_pm"] < 1500, s["density_pm"]


def test_status_shows_compliance_limiting():
    rig = Rig(skin_ohm=9000.0, compliance_v=30.0)      # 25 mA would need ~200 V
    rig.ok("start", target_ua=20000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.seconds(5)
    s = rig.ok("status")
    assert s["limited"] is True and s["flow_pct"] < 50


def test_start_defaults_come_from_the_prescription():
    rig = Rig()
    rig.write_rx(RX)
    r = rig.ok("start")
    assert (r["target_ua"], r["duration_s"], r["ramp_up_s"], r["ramp_down_s"], r["reverse"]) == (
        10000, 600, 10, 10, False)
    assert r["state"] == "WAIT_CONTACT" and rig.ctrl.safety.trip_ua == 11000


def test_start_refusals():
    rig = Rig()
    rig.write_rx(RX)
    refused(rig, {"cmd": "start", "target_ua": 13000}, "E_RANGE")          # above prescription
    refused(rig, {"cmd": "start", "target_ua": 30000}, "E_RANGE")          # above the ceiling
    refused(rig, {"cmd": "start", "target_ua": 999}, "E_RANGE")
    refused(rig, {"cmd": "start", "duration_s": 901}, "E_RANGE")
    refused(rig, {"cmd": "start", "duration_s": 10}, "E_RANGE")
    refused(rig, {"cmd": "start", "ramp_up_s": 9}, "E_RANGE")
    refused(rig, {"cmd": "start", "ramp_down_s": 61}, "E_RANGE")
    refused(rig, {"cmd": "start", "reverse": True}, "E_DENIED")
    refused(rig, {"cmd": "start", "target_ua": 10000.0}, "E_TYPE")
    refused(rig, {"cmd": "start", "target_ua": True}, "E_TYPE")
    refused(rig, {"cmd": "start", "target_ua": "10000"}, "E_TYPE")
    refused(rig, {"cmd": "start", "reverse": 1}, "E_TYPE")
    refused(rig, {"cmd": "start", "target_ma": 10}, "E_UNKNOWN_FIELD")
    rig.ok("start", target_ua=12000, duration_s=300)
    refused(rig, {"cmd": "start"}, "E_STATE")                              # already running
    rig.ok("stop")
    assert rig.until(sm.DONE, 60)
    rig.ok("start")                                                         # again from DONE
    rig.bench.plant.faults["source_runaway"] = True
    assert rig.until(sm.FAULT, 60)
    rig.bench.plant.faults["source_runaway"] = False
    assert "FAULT" in refused(rig, {"cmd": "start"}, "E_STATE")["error"]["msg"]


def test_no_treatment_without_a_valid_calibration():
    rig = Rig(cal=False)
    assert rig.ok("status")["cal"] == "missing"
    assert "calibration" in refused(rig, {"cmd": "start"}, "E_DENIED")["error"]["msg"]
    # a corrupt calibration: reported, never used, and no default stands in for it
    fs = rig.fs
    fs.files["data/cal.rec"] = bytearray(storage.encode(storage.KIND_CAL, CAL))
    fs.files["data/cal.rec"][-3] ^= 1
    from app import App
    bad = Rig(cal=False, fs=fs)
    assert bad.ok("status")["cal"] == "corrupt"
    refused(bad, {"cmd": "start"}, "E_DENIED")
    app = App(bad.ctrl, bad.store, bad.out.append, bad.ticks, default_cal=CAL)
    assert app.cal_status == "corrupt"
    # missing + a board default: treatment allowed, status says so
    empty = Rig(cal=False)
    app = App(empty.ctrl, empty.store, empty.out.append, empty.ticks, default_cal=CAL)
    assert app.cal_status == "default" and app.cal_usable()
    # writing a calibration enables treatment
    assert rig.ok("cal_write", **CAL)["status"] == "ok"
    rig.ok("start")


def test_no_treatment_with_a_corrupt_prescription():
    rig = Rig()
    rig.write_rx(RX)
    rig.fs.files["data/rx.rec"][-2] ^= 0x40
    rig.fs.files["data/rx.rec.bak"] = bytearray(b"IONR junk")
    r2 = Rig(fs=rig.fs)
    assert r2.ok("status")["rx"] == "corrupt"
    refused(r2, {"cmd": "start", "target_ua": 5000}, "E_DENIED")
    refused(r2, {"cmd": "schedule"}, "E_DENIED")
    r2.write_rx(RX)
    r2.ok("start")


def test_stop_pause_resume_reset():
    rig = Rig(skin_ohm=1000.0)
    assert rig.ok("stop")["state"] == "IDLE"            # stop is never refused
    refused(rig, {"cmd": "pause"}, "E_STATE")
    refused(rig, {"cmd": "resume"}, "E_STATE")
    refused(rig, {"cmd": "reset"}, "E_STATE")
    rig.ok("start", target_ua=8000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    refused(rig, {"cmd": "resume"}, "E_STATE")
    refused(rig, {"cmd": "reset"}, "E_STATE")
    assert rig.ok("pause")["state"] == "RAMP_DOWN"
    assert rig.until(sm.PAUSED, 30)
    assert rig.ok("status")["pause"] == "user"
    rig.ok("resume")
    assert rig.until(sm.TREAT, 60)
    assert rig.ok("stop")["state"] == "RAMP_DOWN"
    assert rig.until(sm.DONE, 30)
    assert rig.ok("status")["end"] == "stopped"
    assert rig.ok("reset")["state"] == "IDLE"
    # reset clears a latched fault
    rig.ok("start", target_ua=8000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.bench.plant.faults["source_runaway"] = True
    assert rig.until(sm.FAULT, 1)
    rig.bench.plant.faults["source_runaway"] = False
    assert rig.ok("status")["fault"] == "overcurrent"
    assert rig.ok("reset")["state"] == "IDLE" and rig.ctrl.safety.fault == safety.OK
    rig.step(5)
    assert rig.ok("status")["fault"] == "ok"


def test_telemetry_rate_and_shape():
    rig = Rig()
    refused(rig, {"cmd": "telemetry", "on": True, "hz": 0}, "E_RANGE")
    refused(rig, {"cmd": "telemetry", "on": True, "hz": 51}, "E_RANGE")
    refused(rig, {"cmd": "telemetry"}, "E_MISSING")
    refused(rig, {"cmd": "telemetry", "on": "yes"}, "E_TYPE")
    assert rig.ok("telemetry", on=True, hz=50) == {"on": True, "hz": 50}
    rig.ok("start", target_ua=8000, duration_s=300)
    rig.out[:] = []
    rig.seconds(2)
    tel = rig.take()
    assert 99 <= len(tel) <= 101
    assert all(t["t"] == "tel" and "id" not in t and "ok" not in t for t in tel)
    assert {"ms", "state", "sp_ua", "i_ua", "v_mv", "lim", "fault"} <= set(tel[-1])
    assert all(b["ms"] - a["ms"] == 20 for a, b in zip(tel[1:], tel[2:]))
    rig.ok("telemetry", on=True, hz=1)
    rig.seconds(3)
    assert 3 <= len(rig.take()) <= 4
    assert rig.ok("telemetry", on=False) == {"on": False, "hz": 0}
    rig.seconds(1)
    assert rig.take() == []


def test_telemetry_is_skipped_when_the_host_does_not_read():
    rig = Rig()
    blocked = [True]
    from app import App
    app = App(rig.ctrl, rig.store, rig.write, rig.ticks, writable=lambda: not blocked[0])
    app.set_telemetry(50)
    for _ in range(200):
        rig.bench.step()
        app.poll()
    assert not rig.out and 50 <= app.tel_dropped <= 51
    blocked[0] = False
    for _ in range(200):
        rig.bench.step()
        app.poll()
    assert len(rig.out) == 50 and app.tel_sent == 50


def test_time_set_and_schedule():
    rig = Rig()
    rig.write_rx(RX)
    refused(rig, {"cmd": "time_set", "epoch": 1000}, "E_RANGE")
    refused(rig, {"cmd": "time_set", "epoch": "now"}, "E_TYPE")
    s = rig.ok("schedule")
    assert s["phase"] == "induction" and s["due"] is True and s["next_due"] is None
    t0 = 1750000000
    assert rig.ok("time_set", epoch=t0)["time"] == t0
    rig.seconds(2)
    assert rig.ok("status")["time"] == t0 + 2
    from test_treatment_log import rec
    for k in range(3):
        rig.store.log.append(rec(k, start=t0 - (3 - k) * 86400, duration_s=600, delivered_s=590))
    s = rig.ok("schedule")
    assert s["phase"] == "maintenance" and s["counted"] == 3 and s["per_week"] == 1
    assert s["last"] == t0 - 86400 and s["next_due"] == t0 - 86400 + 7 * 86400 and s["due"] is False
    assert s["this_week"] == 3


def test_settings_mark_induction_done():
    rig = Rig()
    assert rig.ok("settings_read") == {"induction_done": False, "status": "missing"}
    refused(rig, {"cmd": "settings_write"}, "E_MISSING")
    refused(rig, {"cmd": "settings_write", "induction_done": 1}, "E_TYPE")
    refused(rig, {"cmd": "settings_write", "induction_done": True, "log_seq": 0}, "E_UNKNOWN_FIELD")
    rig.ok("settings_write", induction_done=True)
    assert rig.ok("schedule")["phase"] == "maintenance"
    assert Rig(fs=rig.fs).ok("settings_read") == {"induction_done": True, "status": "ok"}
    rig.ok("start")
    refused(rig, {"cmd": "settings_write", "induction_done": False}, "E_STATE")


def test_selftest():
    rig = Rig()
    r = rig.ok("selftest")
    assert r["pass"] is True and {c[0] for c in r["checks"]} >= {"output_off", "left_off"}
    assert not rig.ctrl.hal.enabled and rig.ctrl.hal.ref_code == 0
    rig.bench.plant.faults["adc_stuck_high"] = True        # one period: not yet latched
    rig.step()
    assert rig.ctrl.session.state == sm.IDLE and rig.ok("selftest")["pass"] is False
    rig.bench.plant.faults["adc_stuck_high"] = False
    passive = Rig(hw_selftest=False)
    r = passive.ok("selftest")
    assert r["pass"] is True and [c[0] for c in r["checks"]] == ["output_off", "adc"]
    rig.step(3)
    if rig.ctrl.session.state == sm.FAULT:
        rig.ok("reset")
    rig.ok("start")
    refused(rig, {"cmd": "selftest"}, "E_STATE")
    rig.bench.plant.faults["source_runaway"] = True
    assert rig.until(sm.FAULT, 60)
    assert "reset first" in refused(rig, {"cmd": "selftest"}, "E_STATE")["error"]["msg"]


@pytest.mark.parametrize("cmd,fields", [("cal_read", {}), ("cal_write", CAL), ("rx_read", {}),
                                        ("rx_write", {"target_ua": 9000}), ("log_clear", {})])
def test_service_commands_need_service_mode(cmd, fields):
    rig = Rig(service=False)
    req = {"cmd": cmd}
    req.update(fields)
    assert "service" in refused(rig, req, "E_DENIED")["error"]["msg"]


def test_cal_read_and_write_apply_to_the_hal():
    rig = Rig(skin_ohm=1000.0)
    r = rig.ok("cal_read")
    assert r["cal"] == CAL and r["status"] == "ok" and r["in_use"]["i_gain"] == 16384
    refused(rig, dict(CAL, cmd="cal_write", i_gain=20481), "E_RANGE")
    refused(rig, dict(CAL, cmd="cal_write", date="31.01.2025"), "E_RANGE")
    refused(rig, dict(CAL, cmd="cal_write", tech="x" * 17), "E_RANGE")
    refused(rig, dict(CAL, cmd="cal_write", meter=5), "E_TYPE")
    refused(rig, {"cmd": "cal_write", "i_gain": 16384}, "E_MISSING")
    new = dict(CAL, i_gain=18022, tech="T9")            # the current reads 10 % higher
    assert rig.ok("cal_write", **new)["status"] == "ok"
    assert rig.ok("cal_read")["cal"] == new and rig.app.cal_in_use.i_gain == 18022
    rig.ok("start", target_ua=10000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.seconds(5)
    assert abs(rig.ctrl.i_ua - 10000) < 100                        # regulated on the reading
    assert abs(rig.bench.plant.true_ua - 10000 / 1.1) < 200        # so the truth is 10 % lower
    refused(rig, dict(CAL, cmd="cal_write"), "E_DENIED")            # a session ended service mode
    assert Rig(fs=rig.fs).ok("cal_read")["cal"] == new


def test_rx_read_and_write():
    rig = Rig()
    r = rig.ok("rx_read")
    assert r["status"] == "missing" and r["rx"]["hands_max_ua"] == 25000 and r["v1"] is False
    refused(rig, {"cmd": "rx_write"}, "E_MISSING")
    refused(rig, {"cmd": "rx_write", "hands_max_ua": 12000}, "E_RANGE")   # below its target
    refused(rig, {"cmd": "rx_write", "max_duration_s": 500}, "E_RANGE")   # below duration_s
    refused(rig, {"cmd": "rx_write", "hands_max_ua": 26000}, "E_RANGE")
    refused(rig, {"cmd": "rx_write", "induction_per_week": 0}, "E_RANGE")
    refused(rig, {"cmd": "rx_write", "max_target_ua": 12000}, "E_UNKNOWN_FIELD")   # format 1
    assert rig.write_rx(RX)["status"] == "ok"
    r = rig.ok("rx_read")
    assert r == {"rx": RX, "status": "ok", "v1": False}
    refused(rig, {"cmd": "rx_write", "target_ua": 13000}, "E_RANGE")     # above its cap
    refused(rig, {"cmd": "rx_write", "duration_s": 1000}, "E_RANGE")     # above max
    got = rig.ok("rx_write", target_ua=9000)                             # a partial write
    assert got["rx"] == dict(RX, target_ua=9000) and got["status"] == "ok"
    rig.ok("start")
    refused(rig, {"cmd": "rx_write", "target_ua": 9000}, "E_DENIED")      # service ended
    assert Rig(fs=rig.fs).ok("rx_read")["rx"] == dict(RX, target_ua=9000)


def test_every_command_is_documented_and_tested():
    doc = open(os.path.join(ROOT, "docs", "protocol.md")).read()
    tests = ""
    for name in os.listdir(os.path.dirname(os.path.abspath(__file__))):
        if name.startswith("test_") and name.endswith(".py"):
            tests += open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name)).read()
    names = sorted(Commands(None).table)
    assert len(names) == 25
    for name in names:
        assert "### `%s`" % name in doc, name
        assert ('"%s"' % name) in tests, name
    for code in ("E_JSON", "E_UTF8", "E_TOO_LONG", "E_UNKNOWN_CMD", "E_UNKNOWN_FIELD",
                 "E_MISSING", "E_TYPE", "E_RANGE", "E_STATE", "E_DENIED", "E_STORAGE",
                 "E_INTERNAL", "E_AUTH", "E_LOCKED"):
        assert "`%s`" % code in doc, code
