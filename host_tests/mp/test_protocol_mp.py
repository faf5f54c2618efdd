"""The protocol on MicroPython (unix and WebAssembly ports): framing, strict UTF-8/JSON
where MicroPython's own decoder and json are lenient, ASCII replies where its json.dumps
writes characters raw, commands, a fuzz sample, and the
bounded work per poll under an input flood (timed by flood.main, see test_protocol_on_vms).

MicroPython-compatible: run by mptest through host_tests/test_protocol_on_vms.py.
"""

import json
import sys

import session as sm
from flood import POLLS_PER_LINE_MAX, FloodReader, measure
from protorig import CAL, Rig

RX = {"profile": "hands", "target_ua": 10000, "min_duration_s": 300, "max_duration_s": 1800,
      "duration_s": 300, "ramp_up_s": 10, "ramp_down_s": 5, "reverse_allowed": True,
      "dose_uamin": 40000, "hands_max_ua": 25000, "feet_max_ua": 25000, "child_max_ua": 8000,
      "underarm_max_ua": 12500, "drug_max_ua": 4000, "induction_sessions": 12,
      "induction_per_week": 3, "maintenance_per_week": 1}

# lines MicroPython's decoder / json.loads would accept, and the protocol must not
BAD_UTF8 = (b"\xff", b"\x80", b'{"cmd":"\xc0\x80"}', b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
            b"\xe2\x82", b"\xf0\x8f\xbf\xbf", b"\xe0\x9f\xbf")
BAD_JSON = (b"", b'{"cmd":"status",}', b'{"cmd" "status"}', b'{"cmd":"status" "id":1}', b"{,}",
            b'{"cmd":"status","id":01}', b'{"cmd":"status","id":1.}', b'{"cmd":"sta\ttus"}',
            b'{"cmd":"status","x":[1,]}', b'{"cmd":"\\x41"}', b'{"cmd":"status","a":1,,"b":2}')


def refused(rig, line, code):
    before = rig.snapshot()
    got = rig.send_line(line)
    assert len(got) == 1, got
    assert got[0]["ok"] is False and got[0]["error"]["code"] == code, (line, got)
    assert rig.snapshot() == before, line


def test_framing_any_chunking():
    rig = Rig()
    data = b'{"id":1,"cmd":"status"}\n{"id":2,"cmd":"identify"}\r\n\n' + b"x" * 300 + b"\n"
    rig.out[:] = []
    for k in range(len(data)):
        rig.app.feed(data[k:k + 1])
    got = rig.take()
    assert [r["id"] for r in got] == [1, 2, None, None], got
    assert got[2]["error"]["code"] == "E_JSON" and got[3]["error"]["code"] == "E_TOO_LONG"


def test_strict_utf8_and_json():
    rig = Rig()
    for line in BAD_UTF8:
        refused(rig, line, "E_UTF8")
    for line in BAD_JSON:
        refused(rig, line, "E_JSON")
    assert rig.send_line(b'{"cmd":"status","id":7,"x":"\\u00e9\\ud83d\\ude00"}')[0]["error"][
        "code"] == "E_UNKNOWN_FIELD"


# odd characters in every echoed place: cmd, field names, choices, ids (issue 15)
ODD_LINES = (b'{"id":1,"cmd":"\\ud800"}', b'{"id":2,"cmd":"caf\xc3\xa9"}',
             b'{"id":3,"cmd":"status","\\udfff":1}', b'{"id":4,"cmd":"\\ud83d\\ude00x"}',
             b'{"id":5,"cmd":"start","profile":"\\udbff\\u0001\xe2\x80\xa8"}',
             b'{"id":"\\ud800","cmd":"status"}', b'{"id":6,"cmd":"\\u0000\\u001f\\"\\\\"}',
             b'{"id":7,"cmd":"status","\xf4\x8f\xbf\xbf\\uDC00":"\\uD800"}')


def test_replies_are_ascii():
    rig = Rig()
    for line in ODD_LINES:
        rig.out[:] = []
        rig.app.feed(line + b"\n")
        assert len(rig.out) == 1, (line, rig.out)
        data = rig.out[0]
        for b in data:
            assert b < 0x80, (line, data)
        r = json.loads(data.decode())
        assert r["ok"] is False and r["error"]["code"] != "E_INTERNAL", (line, r)
    rig.out[:] = []
    rig.app.feed(ODD_LINES[0] + b"\n")
    r = json.loads(rig.out[0])
    assert r["id"] == 1 and r["error"]["code"] == "E_UNKNOWN_CMD", r
    assert b"unknown command '\\ud800'" in rig.out[0], rig.out     # the echo, escaped


def test_commands():
    rig = Rig(skin_ohm=1000.0)
    ident = rig.ok("identify")
    assert ident["python"].split()[0] == sys.implementation.name
    rig.write_rx(RX)
    refused(rig, b'{"cmd":"start","target_ua":30000}', "E_RANGE")
    refused(rig, b'{"cmd":"start","target_ua":true}', "E_TYPE")
    refused(rig, b'{"cmd":"pause"}', "E_STATE")
    refused(rig, b'{"cmd":"cal_write","i_gain":1}', "E_UNKNOWN_FIELD" if False else "E_RANGE")
    rig.ok("time_set", epoch=1750000000)
    rig.ok("start", target_ua=10000, duration_s=300)
    assert rig.until(sm.TREAT, 30)
    refused(rig, b'{"cmd":"selftest"}', "E_STATE")
    s = rig.ok("status")
    assert s["state"] == "TREAT" and abs(s["i_ua"] - 10000) < 150, s
    rig.ok("stop")
    assert rig.until(sm.DONE, 30)
    rig.step(2)
    page = rig.ok("log_read")
    r = page["records"][0]
    assert r["end"] == "stopped" and r["epoch"] is True and r["target_ua"] == 10000
    assert rig.ok("selftest")["pass"] is True
    assert rig.ask("cal_write", **CAL)["error"]["code"] == "E_DENIED"    # the session ended it
    rig.ok("service_enter", code="000000")
    assert rig.ok("cal_write", **CAL)["status"] == "ok"
    assert rig.ok("schedule")["phase"] == "induction"


class Lcg:
    def __init__(self, seed):
        self.x = seed

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


TEMPLATES = (b'{"id":1,"cmd":"status"}', b'{"id":2,"cmd":"start","target_ua":9000,"duration_s":300}',
             b'{"id":3,"cmd":"pause"}', b'{"id":4,"cmd":"resume"}', b'{"id":5,"cmd":"stop"}',
             b'{"id":6,"cmd":"reset"}', b'{"id":7,"cmd":"telemetry","on":true,"hz":25}',
             b'{"id":8,"cmd":"log_read","n":3}', b'{"id":9,"cmd":"settings_write","induction_done":true}',
             b'{"id":10,"cmd":"time_set","epoch":1750000000}', b'{"id":11,"cmd":"schedule"}')
TOKENS = (b"{", b"}", b'"', b",", b":", b"\\", b"\xff", b"\xc3", b"\x00", b"1e9", b"-", b"null")


def test_fuzz_sample():
    n_lines = 1500 if sys.platform != "webassembly" else 600
    rig = Rig(skin_ohm=1000.0)
    rig.write_rx(RX)
    rnd = Lcg(12345)
    seen = {}
    for k in range(n_lines):
        line = TEMPLATES[rnd.next(len(TEMPLATES))]
        for _ in range(rnd.next(3)):
            p = rnd.next(len(line) + 1)
            op = rnd.next(3)
            if op == 0:
                line = line[:p] + TOKENS[rnd.next(len(TOKENS))] + line[p:]
            elif op == 1:
                line = line[:p] + line[p + 1 + rnd.next(3):]
            else:
                line = line[:p] + bytes((rnd.next(256),)) + line[p:]
        line = line.replace(b"\n", b" ")
        before = rig.snapshot()
        rig.out[:] = []
        rig.app.feed(line + b"\n")
        got = [json.loads(x) for x in rig.out]
        assert len(got) == 1, (line, got)
        r = got[0]
        if not r["ok"]:
            code = r["error"]["code"]
            assert code != "E_INTERNAL", (line, r)
            assert rig.snapshot() == before, (line, r)
            seen[code] = seen.get(code, 0) + 1
        if k % 5 == 4:
            rig.step(20)
    assert len(seen) >= 5, seen


def test_flood_is_answered_one_line_at_a_time():
    import time
    rig = Rig(skin_ohm=1000.0)
    rig.write_rx(RX)
    rig.ok("start", target_ua=10000, duration_s=600)
    assert rig.until(sm.TREAT, 30)
    rig.app._reader = FloodReader()
    m = measure(rig, 1000 if sys.platform != "webassembly" else 300, time.ticks_us,
                time.ticks_diff)
    assert m["most_lines_per_poll"] == 1 and m["lines"] > m["polls"] // POLLS_PER_LINE_MAX, m
    assert rig.ctrl.session.state == sm.TREAT and rig.ctrl.safety.fault == 0
