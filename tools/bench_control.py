"""Control-quality benchmark: the regulator and session judged on the plant's truth.

`python -m tools.bench_control` (part of `make bench`) runs fixed, seeded scenarios in
virtual time and prints one table: overshoot and settling at the end of the first ramp,
at a 2x load step and at compliance recovery; steady-state error after a load change;
the largest one-step rise of the true current; the wall time of a 20-minute session.
A second table: dose mode, the delivered charge (integrated from the plant's TRUE current)
against the dose across loads, with the skin non-linearity, a 40 % drift and pauses; and
pulsed mode, the highest on-phase (peak) current against the 25 mA ceiling.
"""

import argparse
import sys
import time

import tools.paths  # noqa: F401  (firmware on sys.path)
import limits
import scenario
import session as sm

DT = 0.005
TARGET = 15000
BASE = {"water_ohm": 100, "body_ohm": 700, "skin_ohm": 1200, "skin_uf": 0.5, "adc_noise_lsb": 1,
        "source_gain_error": 0.03, "source_offset_ua": 50}


def _run(plant, events, end_s, profile=None):
    prof = {"target_ma": TARGET / 1000, "duration_s": 1200, "ramp_up_s": 30, "ramp_down_s": 15}
    prof.update(profile or {})
    scn = scenario.validate({"profile": prof, "plant": dict(BASE, **plant),
                             "events": [{"t_s": 0, "contact": True}] + events, "end_s": end_s})
    rows = []
    scenario.run(scn, lambda r: rows.append((r[0], r[1], r[3], r[4])))
    return rows


def _settle(rows, k0, band_pct=1.0):
    """Seconds from row k0 until the true current stays within band of the target."""
    band = TARGET * band_pct / 100
    last_out = k0
    for k in range(k0, len(rows)):
        if abs(rows[k][3] - TARGET) > band:
            last_out = k
    return (last_out - k0 + 1) * DT


def _window(rows, t0, t1):
    return [r for r in rows if t0 <= r[0] < t1]


def _sse(rows, t0, t1):
    w = _window(rows, t0, t1)
    true = sum(abs(r[3] - TARGET) for r in w) / len(w) / TARGET * 100
    meas = sum(abs(r[2] - TARGET) for r in w) / len(w) / TARGET * 100
    return meas, true


def _max_rise(rows, k0, k1):
    return max(rows[k][3] - rows[k - 1][3] for k in range(max(k0, 1), k1))


def measure():
    res = []
    # 1. start: end of the first ramp
    rows = _run({}, [], 60)
    k_treat = next(k for k, r in enumerate(rows) if r[1] == "TREAT")
    peak = max(r[3] for r in rows[k_treat:k_treat + 1000])
    res.append(("first ramp end: overshoot", "%.2f %%" % ((peak / TARGET - 1) * 100)))
    res.append(("first ramp end: settling to ±1 %", "%.3f s" % _settle(rows, k_treat)))
    m, t = _sse(rows, 40, 60)
    res.append(("steady state at target: |error| measured / true", "%.3f %% / %.3f %%" % (m, t)))

    # 2. 2x load step in TREAT (1.8 -> 3.6 kΩ, within 60 V compliance at 15 mA)
    rows = _run({"compliance_v": 60, "skin_ohm": 1000}, [{"t_s": 60, "skin_ohm": 2800}], 100)
    k = int(60 / DT)
    dev = max(abs(r[3] - TARGET) for r in rows[k:k + 2000])
    res.append(("2x load step: largest deviation", "%.2f %%" % (dev / TARGET * 100)))
    res.append(("2x load step: settling to ±1 %", "%.3f s" % _settle(rows, k)))
    m, t = _sse(rows, 70, 100)
    res.append(("after load change (10-40 s): |error| measured / true", "%.3f %% / %.3f %%" % (m, t)))

    # 3. compliance recovery: limited on dry skin, then the skin resistance drops
    rows = _run({"skin_ohm": 6000, "skin_uf": 0.2}, [{"t_s": 60, "skin_ohm": 1200}], 120)
    k = int(60 / DT)
    before = rows[k - 1][3]
    rise = _max_rise(rows, k, k + 4000)
    peak = max(r[3] for r in rows[k:])
    k_back = next(j for j in range(k, len(rows)) if rows[j][3] >= TARGET * 0.99)
    res.append(("compliance recovery: current before the drop", "%.2f mA" % (before / 1000)))
    res.append(("compliance recovery: largest one-step rise", "%.0f µA" % rise))
    res.append(("compliance recovery: overshoot", "%.2f %%" % ((peak / TARGET - 1) * 100)))
    res.append(("compliance recovery: back to 99 % of target", "%.1f s (ramp slope)" % ((k_back - k) * DT)))

    # 4. wall time of a 20-minute session (ramps + 1200 s + ramp down)
    t0 = time.perf_counter()
    rows = _run({}, [], 1260, {"duration_s": 1200})
    wall = time.perf_counter() - t0
    res.append(("20-min session: wall time (%d steps)" % len(rows), "%.2f s" % wall))
    res.append(("20-min session: final state", rows[-1][1]))
    return res


DOSE_LOADS = (1000, 2500, 5000, 8000)


def dose_error(skin_ohm, dose_uamin=20000, ramp_down_s=15, pause=True):
    """Dose mode at 4 mA: (true µA·min delivered, error %, firmware's µA·min, end reason)."""
    ev = [{"t_s": 0, "contact": True}, {"t_s": 0, "skin_ohm": skin_ohm * 0.6, "over_s": 300}]
    if pause:
        ev += [{"t_s": 120, "command": "pause"}, {"t_s": 150, "command": "resume"},
               {"t_s": 200, "contact": False}, {"t_s": 203, "contact": True}]
    scn = scenario.validate({
        "profile": {"target_ma": 4, "duration_s": 900, "ramp_up_s": 30, "ramp_down_s": ramp_down_s,
                    "mode": "dose", "dose_uamin": dose_uamin},
        "plant": dict(BASE, skin_ohm=skin_ohm, compliance_v=40), "events": ev, "end_s": 600})
    total = [0.0]

    def row(r):
        total[0] += r[4]
    b = scenario.run(scn, row)
    true = total[0] * DT / 60
    ses = b.ctrl.session
    return true, (true / dose_uamin - 1) * 100, ses.charge_uamin, sm.END_NAMES[ses.end_reason]


def pulsed_peak(duty, gain):
    """Pulsed at the ceiling (peak = 25 mA asked): the highest true on-phase current."""
    scn = scenario.validate({
        "profile": {"target_ma": 25 * duty / 100, "duration_s": 300, "ramp_up_s": 30,
                    "ramp_down_s": 15, "mode": "pulsed", "pulse_hz": 4300, "duty_pct": duty},
        "plant": dict(BASE, skin_ohm=500, compliance_v=60, source_gain_error=gain,
                      adc_noise_lsb=3),
        "events": [{"t_s": 0, "contact": True}, {"t_s": 80, "contact": False},
                   {"t_s": 81, "contact": True}], "end_s": 150})
    b = scenario.Bench(seed=1, **scn["plant"])
    worst = [0.0]

    def row(r):
        if b.plant.pulse_peak_ua > worst[0]:
            worst[0] = b.plant.pulse_peak_ua
    scenario.run(scn, row, bench=b)
    return worst[0]


def measure_modes():
    res = []
    for r in DOSE_LOADS:
        true, err, fw, end = dose_error(r)
        res.append(("dose 20 mA·min @ 4 mA, skin %d Ω (drift, pause, contact loss)" % r,
                    "%.0f µA·min true, error %+.2f %% (firmware %d, end %s)" % (true, err, fw, end)))
    true, err, fw, end = dose_error(2500, dose_uamin=5000, ramp_down_s=60, pause=False)
    res.append(("dose 5 mA·min @ 4 mA, 60 s ramp down, skin 2500 Ω",
                "%.0f µA·min true, error %+.2f %% (firmware %d, end %s)" % (true, err, fw, end)))
    worst = 0.0
    for duty in (20, 50, 80):
        for gain in (-0.08, 0.0, 0.08):
            worst = max(worst, pulsed_peak(duty, gain))
    res.append(("pulsed at a 25 mA peak, duty 20/50/80 %, source gain ±8 %: highest peak",
                "%.0f µA (ceiling %d)" % (worst, limits.CEILING_UA)))
    return res


def _table(title, res):
    w = max(len(k) for k, _ in res)
    print(title)
    print("-" * (w + 20))
    for k, v in res:
        print("%-*s  %s" % (w, k, v))


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    _table("Control quality (CPython, sim board, seed 1; judged on the plant's true current)",
           measure())
    print()
    _table("Modes (dose: charge from the plant's TRUE current; pulsed: true on-phase current)",
           measure_modes())
    return 0


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
