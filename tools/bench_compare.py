"""Ours against the peers' algorithms (tools/baselines.py), on the same plant and scenarios.

`python -m tools.bench_compare` (part of `make bench`, after tools.bench_control) prints,
per scenario and side by side, judged on the plant's TRUE current:

- steady-state error: mean |true - target| / target over the scenario's steady window;
- overshoot: highest true current above the target, % of the target;
- worst jolt: the largest change within 100 ms that the rail did not force (µA,
  tools/invariants.worst_change);
- seconds above target + 3 %;
- recovery: seconds from the disturbance until the true current is within ±3 % of
  min(target, what the rail allows) and stays there ("-" when it never is).

Every scenario: 15 mA, 30 s ramps (the PI+FF peer uses its own 30 s / 5 s), the bench
plant of tools.bench_control (source +3 % gain, +50 µA offset, ADC noise 1 LSB).
"""

import argparse
import sys

import tools.paths  # noqa: F401  (firmware on sys.path)
import scenario
from tools import baselines, invariants, trace_run

DT = invariants.DT_S
TARGET = 15000
BASE = {"water_ohm": 100, "body_ohm": 700, "skin_ohm": 1200, "skin_uf": 0.5, "adc_noise_lsb": 1,
        "source_gain_error": 0.03, "source_offset_ua": 50}

# (name, plant changes, events after contact at 0 s, end_s, disturbance t_s, steady window)
SCENARIOS = (
    ("start, 15 mA on 2 kΩ", {}, [], 70, None, (45, 70)),
    ("2x load step in TREAT", {"compliance_v": 60, "skin_ohm": 1000},
     [{"t_s": 60, "skin_ohm": 2800}], 100, 60, (70, 100)),
    ("compliance recovery (dry skin, then wet)", {"skin_ohm": 6000, "skin_uf": 0.2},
     [{"t_s": 60, "skin_ohm": 1200}], 120, 60, (100, 120)),
    ("hands out 5 s, back in", {}, [{"t_s": 60, "contact": False}, {"t_s": 65, "contact": True}],
     130, 65, (110, 130)),
    ("gain drift +8 % while limited, then wet", {"skin_ohm": 3500, "source_gain_error": -0.05},
     [{"t_s": 40, "source_gain_error": 0.05, "over_s": 3}, {"t_s": 60, "skin_ohm": 1200}],
     120, 60, (100, 120)),
)


def _scn(plant, events, end_s):
    return scenario.validate({
        "profile": {"target_ma": TARGET / 1000, "duration_s": 1200, "ramp_up_s": 30,
                    "ramp_down_s": 15},
        "plant": dict(BASE, **plant), "events": [{"t_s": 0, "contact": True}] + events,
        "end_s": end_s})


def metrics(tr, t_ev, window):
    true = tr.col("true_ua")
    en = tr.col("enabled")
    k0, k1 = int(window[0] / DT), int(window[1] / DT)
    sse = sum(abs(true[k] - TARGET) for k in range(k0, k1)) / (k1 - k0) / TARGET * 100
    peak = max(true[k] for k in range(len(true)) if en[k])
    over = max(0.0, (peak / TARGET - 1) * 100)
    jolt, _ = invariants.worst_change(tr)
    above = sum(1 for i in true if i > TARGET * 1.03) * DT
    rec = None
    if t_ev is not None:
        ke = int(t_ev / DT)
        last_out = None
        for k in range(ke, len(true)):
            goal = min(TARGET, tr.allowed[k])
            if abs(true[k] - goal) > goal * 0.03:
                last_out = k
        if last_out is None:
            rec = 0.0
        elif last_out < len(true) - 1:
            rec = (last_out + 1 - ke) * DT
    return sse, over, jolt, above, rec


def measure():
    """[(scenario, [(algorithm, metrics)])], ours first."""
    out = []
    for name, plant, events, end_s, t_ev, window in SCENARIOS:
        scn = _scn(plant, events, end_s)
        rows = [("ours", metrics(trace_run.run(scn), t_ev, window))]
        for cls in baselines.ALGORITHMS:
            rows.append((cls.name, metrics(baselines.run(cls, scn), t_ev, window)))
        out.append((name, rows))
    return out


def table(res, out=sys.stdout):
    print("Ours against the peers (same plant; judged on the true current)", file=out)
    head = "%-16s %12s %10s %12s %12s %12s" % ("algorithm", "ss error %", "overshoot %",
                                               "worst jolt µA", "s > +3 %", "recovery s")
    for name, rows in res:
        print("", file=out)
        print(name, file=out)
        print(head, file=out)
        for alg, (sse, over, jolt, above, rec) in rows:
            print("%-16s %12.3f %10.2f %12.0f %12.2f %12s" % (
                alg, sse, over, jolt, above, "-" if rec is None else "%.2f" % rec), file=out)


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    table(measure())
    return 0


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
