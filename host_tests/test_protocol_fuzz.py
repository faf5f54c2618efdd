"""Fuzz the protocol with >= 100,000 hypothesis-generated lines (fuzz_lines.py).

Each example is a batch of lines sent to a copy of a device in one of several states
(idle, treating, user-paused, done, faulted, a tight prescription, no calibration,
service mode off), fed in
pieces, with a few control periods between lines. Hypothesis draws ~20 lines per batch
from the strategies in fuzz_lines.py and a seeded Random that derives 8 cheap variants
of each (byte edits, JSON tokens, edge values, splices), so 100,000 lines fit in the
time budget. For every line:
  * no exception escapes the protocol, and no reply is E_INTERNAL;
  * exactly one reply comes back, carrying the line's id when it had a valid one; during
    a session a line that is not flat (flatreq.py) gets E_BUSY with id null instead, and
    a flat line reads as jsonstrict reads it;
  * a refused line changes nothing: session, safety monitor, output, calibration in use,
    stored records (compared as data and as a write counter), telemetry, clock; except a
    wrong service code (E_AUTH), which only adds to the stored failure counter.
Batches also go through as one stream cut at random places: one reply per line, in order.
"""

import copy
import json
import os
import sys
import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

import jsonstrict  # noqa: E402
from flatreq import FlatReq  # noqa: E402
import session as sm  # noqa: E402
from fuzz_lines import RX, derive, lines  # noqa: E402
from protorig import Rig  # noqa: E402

TARGET_LINES = 100000
EXAMPLES = 600
STATS = {"lines": 0, "stream": 0, "ok": 0, "codes": {}, "states": {}, "flat": 0,
         "flat_only_busy": 0}
FLAT = FlatReq(())


def _base_rigs():
    rigs = {}
    r = Rig(skin_ohm=1000.0)
    r.write_rx(RX)
    rigs["idle"] = r
    t = _clone(r)
    t.ok("start", target_ua=9000, duration_s=900, ramp_up_s=10)
    assert t.until(sm.TREAT, 60)
    rigs["treat"] = t
    p = _clone(t)
    p.ok("pause")
    assert p.until(sm.PAUSED, 30)
    rigs["paused"] = p
    d = _clone(t)
    d.ok("stop")
    assert d.until(sm.DONE, 30)
    d.step(2)
    rigs["done"] = d
    f = _clone(t)
    f.bench.plant.faults["source_runaway"] = True
    assert f.until(sm.FAULT, 1)
    f.bench.plant.faults["source_runaway"] = False
    f.step(2)
    rigs["fault"] = f
    strict = Rig(skin_ohm=1000.0)           # a tight prescription: start meets its limits
    strict.write_rx(dict(RX, hands_max_ua=9000, feet_max_ua=9000, target_ua=8000,
                         max_duration_s=900, duration_s=600, ramp_up_s=40,
                         reverse_allowed=False))
    rigs["tight prescription"] = strict
    rigs["no calibration"] = Rig(cal=False)
    rigs["user (no service)"] = Rig(service=False)
    return rigs


def _clone(rig):
    memo = {id(m): m for m in list(sys.modules.values())}
    return copy.deepcopy(rig, memo)


BASES = _base_rigs()
BASE_NAMES = sorted(BASES)


def check_line(rig, line, cuts):
    before = rig.snapshot()
    before_core = rig.snapshot(auth=False)
    flat_only = rig.app.proto.flat_only
    rig.out[:] = []
    data = line + b"\n"
    prev = 0
    for c in sorted(set(k % len(data) for k in cuts)) + [len(data)]:
        if c > prev:
            rig.app.feed(data[prev:c])
            prev = c
    replies = [json.loads(x) for x in rig.out]
    assert len(replies) == 1, (line, replies)
    r = replies[0]
    assert "id" in r and r["ok"] in (True, False)
    if r["ok"] is False:
        code = r["error"]["code"]
        assert code != "E_INTERNAL", (line, r)
        if code == "E_AUTH":
            # a wrong code is counted on flash (auth.py): only that may change
            assert rig.snapshot(auth=False) == before_core, (line, r)
        else:
            assert rig.snapshot() == before, (line, r)
        STATS["codes"][code] = STATS["codes"].get(code, 0) + 1
    else:
        STATS["ok"] += 1
    try:
        body = line[:-1] if line.endswith(b"\r") else line    # the device drops one CR
        # strict JSON as the device reads it (its agreement with CPython's json is
        # test_protocol_json.py's job); decode() is strict UTF-8, json.loads(bytes) is not
        req = jsonstrict.loads(body.decode("utf-8")) if len(body) <= 256 else None
    except ValueError:      # UnicodeDecodeError too
        req = None
    flat = len(body) <= 256 and FLAT.scan(bytearray(body) + b"\0", len(body))
    if flat:
        STATS["flat"] += 1
        assert FLAT.as_dict() == req, (line, FLAT.as_dict(), req)
    if flat_only and not flat and len(body) <= 256:
        assert r["error"]["code"] == "E_BUSY" and r["id"] is None, (line, r)
        STATS["flat_only_busy"] += 1
        STATS["lines"] += 1
        return r
    rid = req.get("id") if isinstance(req, dict) else None
    if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid < 2 ** 31:
        assert r["id"] == rid, (line, r)
    STATS["lines"] += 1
    return r


VARIANTS = 8


# no shrinking (it would take minutes): every assertion names the offending line itself
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(drawn=st.lists(lines, min_size=16, max_size=24), rnd=st.randoms(use_true_random=True),
       steps=st.integers(0, 3), stream_cuts=st.lists(st.integers(1, 64), min_size=1, max_size=8))
def _fuzz(drawn, rnd, steps, stream_cuts):
    base = BASE_NAMES[rnd.randrange(len(BASE_NAMES))]
    batch = []
    for line in drawn:
        batch.append(line)
        for _ in range(VARIANTS):
            batch.append(derive(line, rnd, drawn))
    rig = _clone(BASES[base])
    STATS["states"][base] = STATS["states"].get(base, 0) + 1
    for k, line in enumerate(batch):
        check_line(rig, line, (rnd.randrange(400), rnd.randrange(400)) if k % 3 == 0 else ())
        if steps and k % 8 == 7:
            rig.step(steps)            # the loop runs on: telemetry, log writes, state changes
            rig.out[:] = []
    # part of the batch again as one stream, cut anywhere: one reply per line, in order
    rig = _clone(BASES[base])
    part = batch[:40]
    data = b"".join(line + b"\n" for line in part)
    rig.out[:] = []
    pos = 0
    k = 0
    while pos < len(data):
        n = stream_cuts[k % len(stream_cuts)] * 7
        rig.app.feed(data[pos:pos + n])
        pos += n
        k += 1
    replies = [json.loads(x) for x in rig.out]
    assert len(replies) == len(part)
    assert all(r.get("error", {}).get("code") != "E_INTERNAL" for r in replies)
    STATS["stream"] += len(part)


def test_fuzz_100k_lines():
    t0 = time.monotonic()
    _fuzz()
    dt = time.monotonic() - t0
    print("protocol fuzz: %d generated lines one by one (+ %d again as cut streams) in %.1f s, "
          "%d accepted, %d flat, %d not read in a session; refusals %s; base states %s" % (
              STATS["lines"], STATS["stream"], dt, STATS["ok"], STATS["flat"],
              STATS["flat_only_busy"], dict(sorted(STATS["codes"].items())),
              STATS["states"]))
    assert STATS["lines"] >= TARGET_LINES
    # the generator reaches every refusal the protocol has (except storage/internal)
    for code in ("E_JSON", "E_UTF8", "E_TOO_LONG", "E_UNKNOWN_CMD", "E_UNKNOWN_FIELD",
                 "E_MISSING", "E_TYPE", "E_RANGE", "E_STATE", "E_DENIED"):
        assert STATS["codes"].get(code, 0) > 20, code
    assert STATS["ok"] > 1000
    assert STATS["flat"] > 10000 and STATS["flat_only_busy"] > 1000
