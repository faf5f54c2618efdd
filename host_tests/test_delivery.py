"""Issue 12 regression: the current is delivered (no collapse at the rail) and a benign
load drop while compliance limited neither trips nor jolts. Judged on the plant's truth.

The scenarios are the files in scenarios/ (tools.simulate replays them):
- collapse_load_rise_at_rail: the skin steps 1.7 -> 5 kΩ at 60 s while the source (+8 %
  gain, +50 µA offset) runs at a 45 V rail; before the fix the true current fell to the
  source offset (50 µA) within a second and stayed there in TREAT;
- collapse_slow_load_rise_at_rail: the same rise spread over 30 s (before: 13.6 mA at
  66 s, 50 µA from ~95 s);
  Both rises pause with cause `lift` since issue 13 (a lift and a skin rise look alike to
  V and I); the test judges the regulator with the guard's pause out of reach;
- envelope_load_drop_while_limited: the skin steps 4.1 -> 1.4 kΩ at 60.1 s while the
  source is limited after a gain drift; before the fix: FAULT envelope at 60.12 s.
"""

import json
import os

import pytest

from harness import DT_S, check_all, check_off_after_trip, profile_of, run
from tools import invariants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name, **over):
    with open(os.path.join(ROOT, "scenarios", name + ".json")) as f:
        s = json.load(f)
    s.update(over)
    return s


def _mean(xs):
    return sum(xs) / len(xs)


@pytest.mark.parametrize("name", ["collapse_load_rise_at_rail", "collapse_slow_load_rise_at_rail"])
def test_load_rise_at_the_rail_keeps_delivering_what_the_rail_allows(name, monkeypatch):
    # the regulator alone: a skin rise x2.9 is, to V and I, a lift (issue 13's density
    # guard pauses it, cause `lift`: docs/design.md, its limit (a)); this test is about
    # the regulation at the rail, so the guard's pause level is set out of reach here
    import lift
    monkeypatch.setattr(lift, "LIFT_DENSITY_PM", 10 ** 8)
    s = _load(name)
    tr = run(s)
    prof = profile_of(s)
    true = tr.col("true_ua")
    allowed = tr.allowed
    states = tr.col("state")
    # from 61 s to the end, in TREAT, at >= 97 % of min(target, what the rail allows),
    # which ends at about 7.4 mA (45 V less the polarization over ~5.8 kΩ)
    k0 = int(61 / DT_S)
    assert all(st == "TREAT" for st in states[k0:])
    low = min(true[k] / min(allowed[k], prof.target_ua) for k in range(k0, len(true)))
    assert low >= 0.97, "true current down to %.1f %% of what the rail allows" % (low * 100)
    k1 = int(100 / DT_S)
    assert 7000 < _mean(true[k1:]) < 7800, _mean(true[k1:])
    invariants.check_delivery(tr, prof)
    invariants.check_jolt(tr)
    invariants.check_no_fault(tr)
    check_all(tr, prof)


def test_load_drop_while_limited_rises_at_the_comfort_slope_without_a_trip():
    s = _load("envelope_load_drop_while_limited")
    tr = run(s)
    prof = profile_of(s)
    invariants.check_no_fault(tr)
    invariants.check_delivery(tr, prof)
    invariants.check_jolt(tr)
    check_all(tr, prof)
    true = tr.col("true_ua")
    # from the drop (60.1 s) the current climbs at the ramp slope (17.638 mA / 29 s)
    # to the target, and no faster
    slope = prof.target_ua / prof.ramp_up_s
    k = int(60.113 / DT_S)
    before = true[k - 1]
    for j in range(k, int(100 / DT_S)):
        assert true[j] <= before + slope * (j - k + 1) * DT_S + 400, (j * DT_S, true[j])
    reached = next(j for j in range(k, len(true)) if true[j] >= prof.target_ua * 0.99) * DT_S
    ideal = 60.113 + (prof.target_ua * 0.99 - before) / slope
    assert reached <= ideal + 1.0, (reached, ideal)


def test_load_drop_while_limited_session_ends_done():
    s = _load("envelope_load_drop_while_limited", end_s=340)
    tr = run(s)
    import session as sm
    ses = tr.bench.ctrl.session
    assert ses.state == sm.DONE and sm.END_NAMES[ses.end_reason] == "completed", (
        sm.NAMES[ses.state], sm.END_NAMES[ses.end_reason])
    check_off_after_trip(tr, profile_of(s))
