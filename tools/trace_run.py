"""Run a scenario and keep its per-step trace with the truth the invariants judge.

`run(scn)` validates and plays a scenario (simulation/scenario.py) and returns a `Trace`:
the rows in scenario.TRACE_COLUMNS order, addressable by column name, plus per step the
plant's contact (hands in, no short), what its rail allows at the present load (µA,
tools/invariants.allowed_ua), the session's target (µA) and the source's on-phase
current (µA). Used by the host tests (host_tests/harness.py) and the soak runner.
"""

import scenario
import session as sm
from tools import invariants

COL = dict((name, n) for n, name in enumerate(scenario.TRACE_COLUMNS))
DT_S = invariants.DT_S


class Trace:
    def __init__(self, rows, bench, scn):
        self.rows = rows
        self.bench = bench
        self.scn = scn

    def col(self, name):
        n = COL[name]
        return [r[n] for r in self.rows]

    def states(self):
        """[(t_s, state)] at each change of state."""
        out = []
        last = None
        for r in self.rows:
            if r[1] != last:
                out.append((r[0], r[1]))
                last = r[1]
        return out

    def first(self, state, after_s=0.0):
        for r in self.rows:
            if r[0] >= after_s and r[1] == state:
                return r[0]
        return None

    def at(self, t_s):
        return self.rows[int(round(t_s / DT_S))]


def run(scn):
    """Validate and run `scn`; the Trace also records, per step, the plant's contact,
    what its rail allows, the session's target and the on-phase current."""
    scn = scenario.validate(scn)
    rows = []
    pulse_peaks = []
    areas = []
    truth = invariants.Truth()
    bench = scenario.Bench(seed=scn.get("seed", 1), clock_start_us=scn.get("clock_start_us", 0),
                           **scn.get("plant", {}))
    causes = {}
    ses = bench.ctrl.session

    def on_row(r):
        if ses.state == sm.PAUSED and (not rows or rows[-1][1] != "PAUSED"):
            causes[len(rows)] = sm.PAUSE_NAMES[ses.pause_cause]
        rows.append(r)
        truth.add(bench)
        pulse_peaks.append(bench.plant.pulse_peak_ua)
        areas.append(bench.plant.least_area())

    scenario.run(scn, on_row, bench=bench)
    t = Trace(rows, bench, scn)
    t.contact = truth.contact       # hands in, no short
    t.allowed = truth.allowed       # µA the rail allows at the present load
    t.goal = truth.goal             # the session's target
    t.pulse_peak = pulse_peaks      # on-phase source current (no re-contact spike)
    t.causes = causes               # step -> pause cause, at each entry into PAUSED
    t.area = areas                  # the least-wetted hand's area (1 = fully in)
    return t
