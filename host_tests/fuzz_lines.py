"""Hypothesis strategies for protocol input lines (a helper module, not a test file).

A line (bytes, no LF) is one of: a request built from the protocol's own commands and
field names with values of every JSON type (in range, at the edges, far out, wrong
type); a well-formed command that moves the device (start, pause, telemetry, writes);
a byte-level mutation of a request; random bytes; random text; an over-long line.
"""

import json

from hypothesis import strategies as st

import records
from commands import Commands

COMMANDS = sorted(Commands(None).table) + ["", "STATUS", "status ", "hack", "start\u00e9"]
FIELDS = sorted({f[0] for spec in (records.CAL_SPEC, records.RX_SPEC) for f in spec} | {
    "target_ua", "duration_s", "ramp_up_s", "ramp_down_s", "reverse", "on", "hz", "epoch",
    "from", "n", "induction_done", "log_seq", "target_ma", "id", "cmd", "", "profile",
    "dose_uamin", "code", "max_target_ua"})
EDGES = [0, 1, -1, 4, 5, 9, 10, 50, 51, 60, 61, 100, 101, 120, 121, 299, 300, 600, 1000, 1799,
         1800, 1801, 4096, 4097, 12287, 12288, 16384, 20480, 20481, 25000, 25001, 30000,
         1577836800, 4102444800, 2 ** 30, 2 ** 31 - 1, 2 ** 31, 2 ** 63, -2 ** 63]

scalars = st.one_of(
    st.sampled_from(EDGES), st.integers(), st.booleans(), st.none(),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["2025-01-31", "2024-02-29", "2025-02-29", "T01", "x" * 40, "\u00e9", ""]))
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.text(max_size=3), scalars, max_size=2))

requests = st.builds(
    lambda cmd, rid, fields, sep: json.dumps(
        dict(fields, **({} if cmd is None else {"cmd": cmd}), **({} if rid is None else {"id": rid})),
        separators=sep).encode(),
    st.one_of(st.none(), st.sampled_from(COMMANDS), values),
    st.one_of(st.none(), st.integers(-5, 2 ** 32), values),
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=4),
    st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :\t")]))

CAL = {"i_gain": 16384, "i_offset": 0, "v_gain": 16384, "v_offset": 0, "r_gain": 16384,
       "r_offset": 0, "date": "2025-01-31", "tech": "T01", "meter": "M1"}
RX = dict(records.RX_FACTORY, ramp_up_s=10, drug_max_ua=4000)
PROFILES = ("hands", "feet", "child", "underarm", "drug")


def _valid(cmd, a, b):
    if cmd == "start":
        req = {"cmd": cmd, "target_ua": 1000 + a % 14000, "duration_s": 300 + b % 900,
               "ramp_up_s": 30 + a % 50, "reverse": b % 3 == 0}
        if b % 5 == 1:
            req["profile"] = PROFILES[a % 5]
            if a % 5 == 4:
                req["dose_uamin"] = 1000 + b % 60000
        for k in ("target_ua", "duration_s", "ramp_up_s", "reverse"):
            if (a >> len(k)) % 4 == 0:
                del req[k]                # the prescription's default
        return req
    if cmd == "adjust":
        return {"cmd": cmd, "target_ua": 1000 + a % 26000}
    if cmd == "service_enter":
        return {"cmd": cmd, "code": "000000" if a % 3 else "%06d" % (b % 1000000)}
    if cmd == "service_code":
        return {"cmd": cmd, "code": "%06d" % (b % 1000000) if a % 4 else "x"}
    if cmd == "telemetry":
        return {"cmd": cmd, "on": bool(a % 2), "hz": 1 + b % 50}
    if cmd == "time_set":
        return {"cmd": cmd, "epoch": 1700000000 + a}
    if cmd == "log_read":
        return {"cmd": cmd, "from": a % 5, "n": 1 + b % 8}
    if cmd == "settings_write":
        return {"cmd": cmd, "induction_done": bool(a % 2)}
    if cmd == "cal_write":
        return dict(CAL, cmd=cmd, i_offset=a % 100 - 50)
    if cmd == "rx_write":
        return {"cmd": cmd, "target_ua": 5000 + a % 10000, "profile": PROFILES[b % 5]}
    return {"cmd": cmd}


valid = st.builds(lambda cmd, a, b, rid: json.dumps(dict(_valid(cmd, a, b), id=rid)).encode(),
                  st.sampled_from(["start", "stop", "pause", "resume", "reset", "status",
                                   "telemetry", "time_set", "log_read", "settings_write",
                                   "cal_write", "rx_write", "schedule", "selftest", "identify",
                                   "adjust", "service_enter", "service_exit", "service_code"]),
                  st.integers(0, 10 ** 6), st.integers(0, 10 ** 6), st.integers(0, 1000))


@st.composite
def mutated(draw):
    data = bytearray(draw(st.one_of(requests, valid)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.integers(0, 3))
        k = draw(st.integers(0, max(0, len(data) - 1)))
        if op == 0 and data:
            del data[k]
        elif op == 1:
            data.insert(k, draw(st.integers(0, 255)))
        elif op == 2 and data:
            data[k] = draw(st.integers(0, 255))
        else:
            del data[k:]
    return bytes(data)


over_long = st.builds(lambda req, n, c: req + c * n, st.one_of(requests, valid),
                      st.integers(256, 700), st.sampled_from([b" ", b"x", b"\xff", b"\r"]))

lines = st.one_of(
    requests, requests, valid, valid, mutated(),
    st.binary(max_size=60), st.text(max_size=40).map(lambda s: s.encode("utf-8")),
    over_long, st.just(b""), st.just(b"\r"),
).map(lambda b: b.replace(b"\n", b" "))


# ---- cheap variants of drawn lines ----------------------------------------------------------
# Hypothesis draws a few dozen lines per example (its generation costs ~1 ms a line); each
# is then varied cheaply with a hypothesis-seeded Random, so a test can afford 100,000 lines.
TOKENS = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\\u", b"-", b"0", b"01", b"1e9",
          b"true", b"null", b"NaN", b" ", b"\t", b"\r", b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80",
          b'"cmd"', b'"id"', b'"start"', b'"status"', b'"target_ua"', b"25001", b"-1", b"1.5",
          b'"x"', b"{}", b"[]", b"99999999999999999999"]
VALUE_EDGES = [str(v).encode() for v in EDGES] + [b"true", b"false", b"null", b'""', b"1.0",
                                                   b"[]", b"{}", b'"15000"']


VALID_CMDS = ["start", "stop", "pause", "resume", "reset", "status", "telemetry", "time_set",
              "log_read", "settings_write", "cal_write", "rx_write", "schedule", "selftest",
              "identify", "log_clear", "cal_read", "rx_read", "settings_read", "adjust",
              "service_enter", "service_exit", "service_code"]


def structured(rnd):
    """A well-formed JSON request with fields and values picked from the edges."""
    req = {"cmd": rnd.choice(COMMANDS)}
    if rnd.randrange(3):
        req["id"] = rnd.choice((rnd.randrange(1000), -1, 2 ** 31, "1", None, 1.0))
    for _ in range(rnd.randrange(4)):
        req[rnd.choice(FIELDS)] = rnd.choice((rnd.choice(EDGES), rnd.randrange(-10, 30000),
                                              True, False, None, "x", 1.5, [], {}))
    return json.dumps(req).encode()


def derive(line, rnd, pool):
    """A variant of `line` (bytes): a byte edit, a token, a value swap, a splice; or a fresh
    valid command (moves the device between states) or structured request."""
    op = rnd.randrange(12)
    if op >= 9:
        return json.dumps(dict(_valid(rnd.choice(VALID_CMDS), rnd.randrange(10 ** 6),
                                      rnd.randrange(10 ** 6)), id=rnd.randrange(100))).encode()
    if op >= 7:
        return structured(rnd)
    data = bytearray(line)
    k = rnd.randrange(len(data) + 1)
    if op == 0 and data:                              # delete a run
        del data[k:k + rnd.randrange(1, 4)]
    elif op == 1:                                     # insert a JSON-significant token
        data[k:k] = rnd.choice(TOKENS)
    elif op == 2 and data:                            # flip a bit
        data[min(k, len(data) - 1)] ^= 1 << rnd.randrange(8)
    elif op == 3:                                     # truncate
        del data[k:]
    elif op == 4:                                     # replace a value after a colon
        c = data.find(b":", k)
        if c < 0:
            c = data.find(b":")
        if c >= 0:
            end = c + 1
            while end < len(data) and data[end:end + 1] not in (b",", b"}"):
                end += 1
            data[c + 1:end] = rnd.choice(VALUE_EDGES)
    elif op == 5:                                     # splice with another line
        other = rnd.choice(pool)
        data = data[:k] + other[rnd.randrange(len(other) + 1):]
    else:                                             # swap a field name
        q = data.find(b'"', k)
        if q >= 0:
            e = data.find(b'"', q + 1)
            if e > q:
                data[q + 1:e] = rnd.choice(FIELDS + COMMANDS).encode("utf-8")
    return bytes(data).replace(b"\n", b" ")
