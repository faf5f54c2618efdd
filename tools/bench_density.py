"""Current-density guard tables (issue 13): the detection grid and the false-pause list.

    python -m tools.bench_density [--full] [--jobs J] [--json out.json]

Detection grid: one hand (or foot) lifted during TREAT, over LIFT_S seconds, to a final
wetted area of 1/2 .. 1/10, on skin 0.5-6 kΩ, body 640-770 Ω, water 10-500 Ω, hands
(15 mA, 2.4 µF: 0.03 µF/cm² x 160 cm² per hand, two in series) and feet (20 mA, 3.75 µF:
250 cm² per foot, estimate), rail 60 V (devices on the market: 58-60 V). Each cell is judged
on the plant's TRUE density ratio (current on the least-wetted skin per area, relative to
full immersion at the target): seconds above 2x (goal: at most 1 s) and above 1.5x (at
most 5 s). Without --full a subset (the corners: the fastest and slowest lifts, the
extreme skins and waters) runs; --full runs every cell.

False-pause list: benign events (skin -50 % over 2 min, salt -30 % in 30 and in 60 s,
polarity reversal (+20 % R), rail sag 60 -> 45 V, hands shifting ±10 % of their area,
compliance limiting with drift) on several loads; a pause with cause `lift` is a false
pause (goal: none).

Virtual time only; the same cell gives the same numbers on every run.
"""

import argparse
import itertools
import json
import sys
import time

from tools import paths  # noqa: F401  (firmware/, boards/, simulation/ on sys.path)

import limits  # noqa: E402
import scenario  # noqa: E402
import session as sm  # noqa: E402

LIFT_S = (0.5, 1, 2, 3, 5, 10, 30)
AREAS = (0.5, 1 / 3.0, 0.25, 0.2, 0.125, 0.1)
SKINS = (500, 1500, 3000, 6000)
BODIES = (640, 770)
WATERS = (10, 100, 500)
LIMBS = {"hands": {"target_ma": 15, "skin_uf": 2.4}, "feet": {"target_ma": 20, "skin_uf": 3.75}}

SUB_LIFT_S = (0.5, 2, 10, 30)
SUB_AREAS = (0.5, 0.25, 0.1)
SUB_SKINS = (500, 6000)
SUB_BODIES = (770,)
SUB_WATERS = (10, 500)

RAIL_V = 60
LIFT_AT_S = 60.0          # 30 s ramp, then 30 s of TREAT before the lift
AFTER_S = 15.0            # judged until this long after the lift ended
GOAL_2X_S = 1.0
GOAL_15X_S = 5.0


def _plant(limb, skin, body, water, **extra):
    p = {"compliance_v": RAIL_V, "water_ohm": water, "body_ohm": body, "skin_ohm": skin,
         "skin_uf": LIMBS[limb]["skin_uf"], "adc_noise_lsb": 1, "source_gain_error": 0.03,
         "source_offset_ua": 50}
    p.update(extra)
    return p


def _profile(limb, **extra):
    p = {"target_ma": LIMBS[limb]["target_ma"], "duration_s": 600, "ramp_up_s": 30,
         "ramp_down_s": 15}
    p.update(extra)
    return p


def grid_cell(limb, lift_s, area, skin, body, water, seed=1):
    """The scenario of one cell: hands in at 0, the lift at LIFT_AT_S, held."""
    return {"profile": _profile(limb), "plant": _plant(limb, skin, body, water),
            "events": [{"t_s": 0, "contact": True},
                       {"t_s": LIFT_AT_S, "lift_area": area, "over_s": lift_s}],
            "end_s": LIFT_AT_S + lift_s + AFTER_S, "seed": seed}


def judge(scn):
    """Run `scn`; seconds of true density above 2x and 1.5x, its maximum, the lift
    pauses [(t_s, true density then)] and every pause cause."""
    scn = scenario.validate(scn)
    bench = scenario.Bench(seed=scn.get("seed", 1), **scn.get("plant", {}))
    ses = bench.ctrl.session
    p = bench.plant
    acc = {"s2": 0, "s15": 0, "max": 0.0, "lift": [], "causes": [], "prev": None, "est": 0}

    def on_row(row):
        d = p.density_ratio
        if d > 1.5:
            acc["s15"] += 1
            if d > 2.0:
                acc["s2"] += 1
        if d > acc["max"]:
            acc["max"] = d
        if ses.density_pm > acc["est"]:
            acc["est"] = ses.density_pm
        st = ses.state
        if st == sm.PAUSED and acc["prev"] != sm.PAUSED:
            acc["causes"].append(sm.PAUSE_NAMES[ses.pause_cause])
            if ses.pause_cause == sm.PAUSE_LIFT:
                acc["lift"].append((round(row[0], 3), round(acc["last_d"], 3)))
        acc["prev"] = st
        acc["last_d"] = d

    acc["last_d"] = 0.0
    scenario.run(scn, on_row, bench=bench)
    dt = bench.dt_s
    return {"above_2x_s": round(acc["s2"] * dt, 3), "above_15x_s": round(acc["s15"] * dt, 3),
            "max_density": round(acc["max"], 3), "max_estimate": acc["est"] / 1000.0,
            "lift_pauses": acc["lift"],
            "pauses": acc["causes"], "final_state": sm.NAMES[ses.state]}


def grid(full):
    if full:
        axes = (tuple(LIMBS), LIFT_S, AREAS, SKINS, BODIES, WATERS)
    else:
        axes = (tuple(LIMBS), SUB_LIFT_S, SUB_AREAS, SUB_SKINS, SUB_BODIES, SUB_WATERS)
    return list(itertools.product(*axes))


def _grid_job(cell):
    limb, lift_s, area, skin, body, water = cell
    return cell, judge(grid_cell(limb, lift_s, area, skin, body, water))


# ---- benign events: no lift pause ----------------------------------------------------------
BENIGN_LOADS = ((500, 10), (1500, 100), (3000, 10), (3000, 500), (6000, 10))  # (skin, water)


def _ev(t, **kw):
    d = {"t_s": t}
    d.update(kw)
    return d


def benign_cases():
    """[(name, scenario)]: every benign event on every load of BENIGN_LOADS (hands)."""
    out = []
    for skin, water in BENIGN_LOADS:
        load = "skin %d, water %d" % (skin, water)
        base = _plant("hands", skin, 700, water)
        prof = _profile("hands")
        cases = [
            ("skin -50 % over 2 min", base, prof,
             [_ev(60, skin_ohm=skin * 0.5, over_s=120)], 240),
            ("salt -30 % in 30 s", base, prof,
             [_ev(60, skin_ohm=skin * 0.7, over_s=30), _ev(60, water_ohm=water * 0.7, over_s=30)],
             130),
            ("salt -30 % in 60 s", base, prof,
             [_ev(60, skin_ohm=skin * 0.7, over_s=60), _ev(60, water_ohm=water * 0.7, over_s=60)],
             160),
            ("polarity reversal (+20 % R)", base, _profile("hands", duration_s=300,
                                                             reverse_polarity=True), [], 230),
            ("rail sag 60 -> 45 V and back", base, prof,
             [_ev(60, compliance_v=45, over_s=2), _ev(90, compliance_v=60, over_s=2)], 130),
            ("hands shifting ±10 % area", base, prof,
             [_ev(60, lift_area=0.9, over_s=3), _ev(70, lift_area=1.1, over_s=5),
              _ev(85, lift_area=0.9, over_s=5), _ev(100, lift_area=1.05, over_s=3),
              _ev(110, lift_area=0.92, over_s=2), _ev(120, lift_area=1.0, over_s=3)], 150),
            ("compliance limiting (40 V, skin -30 % in 2 min)",
             dict(base, compliance_v=40), prof,
             [_ev(60, skin_ohm=skin * 0.7, over_s=120)], 200),
        ]
        for name, plant, profile, events, end in cases:
            out.append(("%s | %s" % (name, load), {
                "profile": profile, "plant": plant, "end_s": end, "seed": 1,
                "events": [_ev(0, contact=True)] + events}))
    return out


def _benign_job(case):
    name, scn = case
    return name, judge(scn)


def _map(fn, items, jobs):
    if jobs <= 1:
        return [fn(x) for x in items]
    import multiprocessing
    with multiprocessing.Pool(jobs) as pool:
        return pool.map(fn, items, chunksize=max(1, len(items) // (jobs * 8)))


def grid_table(results):
    """Rows per (limb, lift time, final area): the worst cell over skin, body, water."""
    worst = {}
    for cell, r in results:
        limb, lift_s, area, skin, body, water = cell
        key = (limb, lift_s, area)
        w = worst.get(key)
        if w is None or (r["above_2x_s"], r["above_15x_s"]) > (w[0], w[1]):
            w = (r["above_2x_s"], r["above_15x_s"], r["max_density"], (skin, body, water))
        worst[key] = w if w[2] >= r["max_density"] else (w[0], w[1], r["max_density"], w[3])
    lines = ["| limb | lift (s) | final area | worst s > 2x | worst s > 1.5x | max density | at (skin, body, water) |",
             "|---|---|---|---|---|---|---|"]
    for (limb, lift_s, area), (s2, s15, mx, at) in sorted(worst.items()):
        flag = "" if s2 <= GOAL_2X_S and s15 <= GOAL_15X_S else "  **MISSED**"
        lines.append("| %s | %g | 1/%g | %.2f | %.2f | %.2fx | %s |%s" % (
            limb, lift_s, round(1 / area, 1), s2, s15, mx, at, flag))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.bench_density", description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="every cell of the grid (default: the corners)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--json", help="write every cell's result here")
    ap.add_argument("--no-grid", action="store_true", help="only the false-pause list")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = {}
    bad = 0
    if not a.no_grid:
        cells = grid(a.full)
        results = _map(_grid_job, cells, a.jobs)
        missed = [(c, r) for c, r in results
                  if r["above_2x_s"] > GOAL_2X_S or r["above_15x_s"] > GOAL_15X_S]
        print("Detection grid (%s, %d cells): true density, seconds above 2x / 1.5x "
              "(goals: <= %g s / <= %g s)" % ("full" if a.full else "corners", len(cells),
                                             GOAL_2X_S, GOAL_15X_S))
        print(grid_table(results))
        print("cells missing a goal: %d of %d" % (len(missed), len(cells)))
        for c, r in missed[:20]:
            print("  missed:", c, r)
        bad += len(missed)
        out["grid"] = [[list(c), r] for c, r in results]
    cases = benign_cases()
    bres = _map(_benign_job, cases, a.jobs)
    print()
    print("False pauses on benign events (hands, body 700 Ω, rail 60 V; goal: no `lift` pause)")
    print("| event | load | lift pauses | max true density | max estimate (pause at %.2f) "
          "| other pauses | final state |" % (limits.LIFT_DENSITY_PM / 1000.0))
    print("|---|---|---|---|---|---|---|")
    fp = 0
    for name, r in bres:
        ev, load = name.split(" | ")
        n = len(r["lift_pauses"])
        fp += n
        other = [c for c in r["pauses"] if c != "lift"]
        print("| %s | %s | %d%s | %.2fx | %.2fx | %s | %s |" % (
            ev, load, n, "  **FALSE**" if n else "", r["max_density"], r["max_estimate"],
            ",".join(other) or "-", r["final_state"]))
    print("false pauses: %d in %d sessions" % (fp, len(bres)))
    bad += fp
    out["benign"] = bres
    print("wall time %.1f s" % (time.perf_counter() - t0))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
