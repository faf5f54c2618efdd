"""Every reply is ASCII JSON, whatever characters a request holds (issue 15, item 4).

A request's strings may hold any character: raw UTF-8, \\uXXXX escapes, lone surrogates
(`"\\ud800"`, valid JSON text that no UTF-8 encoder accepts), control characters. Replies
echo some of them (an unknown command or field name, a refused profile), and
MicroPython's json.dumps writes a str's characters raw: a lone surrogate came out as the
bytes ED A0 80, which the host client refused as "garbage from the device".

Hypothesis builds request lines with such strings in every field (cmd, id, field names,
string values of known and unknown fields), each character written raw, as a \\uXXXX
escape (either hex case) or a short escape, and now and then a raw control character or
an invalid byte. Each line goes through the firmware's protocol on CPython in several
device states, twice: with CPython's json (ASCII already) and with a json.dumps that
writes strings as MicroPython's does (raw UTF-8, surrogates in their 3-byte form), so
the test fails on CPython when the firmware relies on the interpreter's json to escape.
Every reply must be one line of ASCII bytes that decodes as strict UTF-8 and parses as
JSON with "id" and "ok". The same lines on the real MicroPython ports:
host_tests/mp/test_protocol_mp.py (test_replies_are_ascii).
"""

import copy
import json
import os
import sys

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

import protocol  # noqa: E402
import session as sm  # noqa: E402
from fuzz_lines import COMMANDS, FIELDS, RX  # noqa: E402
from protorig import Rig  # noqa: E402

EXAMPLES = 400          # x ~20 lines, per json mode


class _MpText(str):
    """A str whose encode() keeps lone surrogates as their 3-byte form (as a
    MicroPython str holds them)."""

    def encode(self, encoding="utf-8", errors="strict"):
        return str.encode(self, "utf-8", "surrogatepass")


class MicroPythonJson:
    """json.dumps as MicroPython writes it: characters >= U+0080 raw, not escaped."""

    @staticmethod
    def dumps(obj):
        return _MpText(json.dumps(obj, ensure_ascii=False))


# characters that break naive encoders: surrogates (lone, high and low), controls, quotes,
# backslash, DEL, line separators, BOM, U+FFFD, the ends of the planes
SPECIAL = ["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00", "\x00", "\x01", "\x1f",
           "\n", "\r", "\t", '"', "\\", "/", "\x7f", "\x80", "\u00e9", "\u2028", "\u2029",
           "\ufeff", "\ufffd", "\uffff", "\U00010000", "\U0001f600", "\U0010ffff", "'"]
chars = st.one_of(st.sampled_from(SPECIAL), st.characters(min_codepoint=0, max_codepoint=0x7f),
                  st.integers(0xD800, 0xDFFF).map(chr),
                  st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF))
texts = st.lists(chars, max_size=10).map("".join)
SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
         "\r": "\\r", "\t": "\\t"}


def _utf16(c):
    cp = ord(c)
    if cp < 0x10000:
        return [cp]
    cp -= 0x10000
    return [0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)]


def encode_string(s, how):
    """`s` as a JSON string literal (bytes), each character written the way `how` (a
    list of small ints, reused cyclically) picks: raw, \\uXXXX, \\uXXXX upper-case hex, a
    short escape; a raw surrogate, a raw control character and a raw quote or backslash
    cannot be written raw and are escaped (unless `how` asks for a raw control: invalid
    JSON, refused as E_JSON)."""
    out = bytearray(b'"')
    for k, c in enumerate(s):
        m = how[k % len(how)] if how else 0
        cp = ord(c)
        if m == 4 and cp < 0x20:
            out += c.encode()                   # raw control character: invalid JSON
            continue
        if m == 3 and c in SHORT:
            out += SHORT[c].encode()
            continue
        raw_ok = cp >= 0x20 and c not in '"\\' and not 0xD800 <= cp <= 0xDFFF
        if m == 0 and raw_ok:
            out += c.encode("utf-8")
            continue
        fmt = "\\u%04X" if m == 2 else "\\u%04x"
        for u in _utf16(c):
            out += (fmt % u).encode()
    return bytes(out + b'"')


hows = st.lists(st.integers(0, 4), max_size=6)
id_values = st.one_of(st.integers(0, 2 ** 31 - 1), st.integers(0, 99), st.integers(-5, 2 ** 32), texts, st.none(), st.booleans(),
                      st.sampled_from([1.5, [], {}]))
field_names = st.one_of(st.sampled_from(FIELDS), texts)
field_values = st.one_of(texts, st.integers(-1, 30000), st.booleans(), st.none(),
                         st.sampled_from(["hands", "2025-01-31", "T01", "000000"]))


def _value(v, how):
    if isinstance(v, str):
        return encode_string(v, how)
    return json.dumps(v).encode()


@st.composite
def request_lines(draw):
    """One request line (bytes, no LF) with odd characters in every place."""
    members = []
    if draw(st.booleans()):
        members.append((b'"id"', _value(draw(id_values), draw(hows))))
    cmd = draw(st.one_of(st.sampled_from(COMMANDS), texts))
    members.append((b'"cmd"', _value(cmd, draw(hows))))
    for _ in range(draw(st.integers(0, 3))):
        members.append((encode_string(draw(field_names), draw(hows)),
                        _value(draw(field_values), draw(hows))))
    order = draw(st.permutations(range(len(members))))
    line = b"{" + b",".join(members[k][0] + b":" + members[k][1] for k in order) + b"}"
    if draw(st.integers(0, 15)) == 0:       # now and then an invalid byte: E_UTF8
        p = draw(st.integers(0, len(line)))
        line = line[:p] + draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc0\x80",
                                                b"\x80", b"\xf4\x90\x80\x80"])) + line[p:]
    return line.replace(b"\n", b" ")


def _base_rigs():
    idle = Rig(skin_ohm=1000.0)             # service mode on: every command reads its fields
    idle.write_rx(RX)
    treat = _clone(idle)
    treat.ok("start", target_ua=9000, duration_s=900, ramp_up_s=10)
    assert treat.until(sm.TREAT, 60)
    return {"idle": idle, "treat": treat, "user (no service)": Rig(service=False)}


def _clone(rig):
    memo = {id(m): m for m in list(sys.modules.values())}
    return copy.deepcopy(rig, memo)


BASES = _base_rigs()
NAMES = sorted(BASES)


def reply_problem(line, out):
    """None when `out` (the bytes written for one request line) is one valid reply line,
    else what is wrong with it."""
    if len(out) != 1:
        return "%d replies" % len(out)
    data = out[0]
    if not data.endswith(b"\n") or b"\n" in data[:-1]:
        return "not one line"
    if max(data) >= 0x80:
        return "non-ASCII bytes"
    try:
        r = json.loads(data.decode("utf-8"))
    except ValueError as e:
        return "not JSON: %s" % e
    if not isinstance(r, dict) or "id" not in r or r.get("ok") not in (True, False):
        return "not a reply"
    if r["ok"] is False and r["error"]["code"] == "E_INTERNAL":
        return "E_INTERNAL"
    return None


def run_lines(rig, lines, stats):
    for line in lines:
        rig.out[:] = []
        rig.app.feed(line + b"\n")
        problem = reply_problem(line, rig.out)
        stats["lines"] += 1
        if problem is not None:
            stats["failed"] += 1
            if len(stats["examples"]) < 5:
                stats["examples"].append((line, problem, list(rig.out)))
        else:
            r = json.loads(rig.out[0])
            if r["ok"] is False:
                c = r["error"]["code"]
                stats["codes"][c] = stats["codes"].get(c, 0) + 1
            if any(ord(ch) >= 0x80 for ch in json.dumps(r, ensure_ascii=False)):
                stats["echoed"] += 1        # a reply that carried a non-ASCII character


def _fuzz(stats):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(lines=st.lists(request_lines(), min_size=16, max_size=24),
           base=st.sampled_from(NAMES))
    def run(lines, base):
        stats["states"][base] = stats["states"].get(base, 0) + 1
        run_lines(_clone(BASES[base]), lines, stats)
    run()


@pytest.fixture(params=["cpython_json", "micropython_json"])
def json_mode(request, monkeypatch):
    if request.param == "micropython_json":
        monkeypatch.setattr(protocol, "json", MicroPythonJson)
    return request.param


def test_the_issue_line_gets_an_ascii_reply(json_mode):
    rig = Rig()
    for line in (b'{"id":1,"cmd":"\\ud800"}', b'{"id":1,"cmd":"caf\xc3\xa9"}',
                 b'{"id":1,"cmd":"status","\\udfff":1}', b'{"id":1,"cmd":"\\ud83d\\ude00"}',
                 b'{"id":1,"cmd":"start","profile":"\\udbff\\u0001"}'):
        rig.out[:] = []
        rig.app.feed(line + b"\n")
        assert reply_problem(line, rig.out) is None, (line, rig.out)
    r = json.loads(rig.out[0])
    assert r["id"] == 1 and r["error"]["code"] == "E_RANGE"
    assert "'\udbff\x01'" in r["error"]["msg"]        # the echo says what was sent


def test_ascii_escape_round_trips():
    """jsonstrict.ascii_escape on MicroPython-style bytes gives back the same JSON."""
    import jsonstrict
    for s in ["", "abc", "\u00e9", "\ud800", "x\udfffy", "\U0001f600", "\U0010ffff",
              "\u2028\x7f", "\\\u00e9\"", "\ud83d\ude00"]:
        raw = json.dumps({"k": s}, ensure_ascii=False).encode("utf-8", "surrogatepass")
        got = jsonstrict.ascii_escape(raw)
        assert max(got + b" ") < 0x80, (s, got)
        assert json.loads(got.decode("ascii")) == json.loads(json.dumps({"k": s})), (s, got)
    assert jsonstrict.ascii_escape(b'{"a": 1}') == b'{"a": 1}'
    assert jsonstrict.ascii_escape(b'"\x80\xff\xe2\x82"') == b'"\\ufffd\\ufffd\\ufffd"'


def test_fuzzed_replies_are_ascii_json(json_mode):
    stats = {"lines": 0, "failed": 0, "examples": [], "codes": {}, "states": {}, "echoed": 0}
    _fuzz(stats)
    print("reply fuzz (%s): %d lines, %d replies not ASCII JSON, %d replies echoing a "
          "non-ASCII character (escaped), refusals %s, base states %s" % (
              json_mode, stats["lines"], stats["failed"], stats["echoed"],
              dict(sorted(stats["codes"].items())), stats["states"]))
    assert stats["failed"] == 0, stats["examples"]
    assert stats["lines"] >= EXAMPLES * 16
    # the generator reaches the echoing refusals and the envelope's
    for code in ("E_UNKNOWN_CMD", "E_UNKNOWN_FIELD", "E_JSON", "E_UTF8", "E_TYPE", "E_BUSY"):
        assert stats["codes"].get(code, 0) > 10, (code, stats["codes"])
    assert stats["echoed"] > 100
