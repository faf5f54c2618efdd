"""Simulator CLI: run the firmware's own control core against the plant in virtual time.

    python -m tools.simulate SCENARIO.json [--trace trace.csv] [--every N]
                             [--summary summary.json] [--plot plot.png] [--seed N] [--quiet]

The scenario (docs/simulator.md) is validated by `simulation/scenario.py` first: an
unreadable file, a JSON syntax error, an unknown key, a wrong type or an impossible
value is refused with a message naming the file or the key and exit status 2, before
anything is simulated or written. A run that completes exits 0 whatever the session's
outcome (a FAULT is a result, not an error); the outcome is in the summary.
"""

import argparse
import array
import json
import os
import sys
import time

from tools import paths  # noqa: F401  (firmware/, boards/, simulation/ on sys.path)

import limits  # noqa: E402
import profiles  # noqa: E402
import safety  # noqa: E402
import scenario  # noqa: E402
import session as sm  # noqa: E402
from tools import summary as summ_mod  # noqa: E402

EXIT_OK = 0
EXIT_RUN_ERROR = 1
EXIT_BAD_INPUT = 2

# printf formats per trace column; a column added later falls back to a generic one
FORMATS = {
    "t_s": "%.3f", "state": "%s", "target_ua": "%d", "measured_ua": "%d", "true_ua": "%.1f",
    "enabled": "%d", "peak_ua": "%.1f", "electrode_mv": "%d", "true_load_ohm": "%.1f",
    "ref_code": "%d", "polarity": "%d", "limited": "%d", "density_ratio": "%.3f",
}


class InputError(Exception):
    """Bad command-line input: print the message, exit 2, write nothing."""


def _no_dup_keys(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise InputError("duplicate key %r" % k)
        d[k] = v
    return d


def _bad_constant(name):
    raise InputError("%s is not a valid JSON number" % name)


def load_scenario(path):
    """Parse the scenario file; InputError (message with the file name) on any failure."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise InputError("%s: cannot read: %s" % (path, e.strerror or e))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError("%s: not UTF-8 text: %s" % (path, e))
    try:
        return json.loads(text, object_pairs_hook=_no_dup_keys, parse_constant=_bad_constant)
    except json.JSONDecodeError as e:
        raise InputError("%s: invalid JSON at line %d column %d: %s" % (
            path, e.lineno, e.colno, e.msg))
    except InputError as e:
        raise InputError("%s: %s" % (path, e))
    except RecursionError:
        raise InputError("%s: JSON nested too deeply" % path)


def _check_out(path, what):
    """Fail before simulating when an output can never be written."""
    if path is None:
        return
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise InputError("%s %s: directory %s does not exist" % (what, path, d))
    if os.path.isdir(path):
        raise InputError("%s %s: is a directory" % (what, path))


def _profile_dict(p):
    d = {"target_ma": p.target_ua / 1000.0, "duration_s": p.duration_s,
         "ramp_up_s": p.ramp_up_s, "ramp_down_s": p.ramp_down_s,
         "reverse_polarity": bool(p.reverse)}
    if p.mode == profiles.MODE_PULSED:
        d.update(mode="pulsed", pulse_hz=p.pulse_hz, duty_pct=p.duty_pct)
    elif p.mode == profiles.MODE_DOSE:
        d.update(mode="dose", dose_uamin=p.dose_uamin)
    return d


def _warnings(scn, end_s):
    out = []
    for n, ev in enumerate(scn.get("_raw_events", [])):
        if ev["t_s"] >= end_s:
            out.append("events[%d] at t=%g s is at or after end_s=%g s and is never played"
                       % (n, ev["t_s"], end_s))
    if scn.get("start_s", 0) >= end_s:
        out.append("start_s=%g s is at or after end_s=%g s: the session is never started"
                   % (scn["start_s"], end_s))
    return out


class Progress:
    """A percent line on stderr, rewritten in place; only on a TTY and not --quiet."""

    def __init__(self, total, enabled, stream=None):
        self.stream = stream or sys.stderr
        self.total = max(total, 1)
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.next_k = 0
        self.shown = False
        self.every = max(self.total // 100, 1)

    def update(self, k):
        if not self.enabled or k < self.next_k:
            return
        self.next_k = k + self.every
        el = time.monotonic() - self.t0
        if el < 0.3:        # short runs stay silent
            return
        self.stream.write("\rsimulating %3d%%  (%.0f s wall)" % (100 * k // self.total, el))
        self.stream.flush()
        self.shown = True

    def done(self):
        if self.shown:
            self.stream.write("\r" + " " * 40 + "\r")
            self.stream.flush()


def build_parser():
    ap = argparse.ArgumentParser(
        prog="python -m tools.simulate",
        description="Run the firmware's control core against the plant model in virtual time.",
        epilog="Exit status: 0 run completed (whatever the session outcome), "
               "1 the simulation itself crashed, 2 bad scenario or arguments. "
               "Schema: docs/simulator.md")
    ap.add_argument("scenario", help="scenario JSON file")
    ap.add_argument("--trace", metavar="CSV", help="write the per-step trace CSV here")
    ap.add_argument("--every", metavar="N", type=int, default=1,
                    help="keep every Nth trace row (plus every change of state and the last row)")
    ap.add_argument("--summary", metavar="JSON", help="write the summary JSON here")
    ap.add_argument("--plot", metavar="PNG", help="write a plot of the run here")
    ap.add_argument("--seed", type=int, help="override the scenario's seed (noise, 0..2^30)")
    ap.add_argument("--quiet", "-q", action="store_true",
                    help="no progress and no summary on the terminal (errors still shown)")
    return ap


def main(argv=None, stdout=None, stderr=None):
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    ap = build_parser()
    try:
        a = ap.parse_args(argv)
    except SystemExit as e:          # argparse: usage errors are status 2, --help 0
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    try:
        if a.every < 1:
            raise InputError("--every: must be 1 or more")
        raw = load_scenario(a.scenario)
        if a.seed is not None:
            if not isinstance(raw, dict):
                raise scenario.ScenarioError("scenario", "must be a JSON object")
            raw = dict(raw)
            raw["seed"] = a.seed
        scn = scenario.validate(raw)
        for path, what in ((a.trace, "--trace"), (a.summary, "--summary"), (a.plot, "--plot")):
            _check_out(path, what)
    except scenario.ScenarioError as e:
        print("error: %s" % e, file=stderr)
        return EXIT_BAD_INPUT
    except InputError as e:
        print("error: %s" % e, file=stderr)
        return EXIT_BAD_INPUT

    profile = scenario.profile_from(scn.get("profile", {}))
    period_us = scenario.board.CONTROL_PERIOD_US
    dt_s = period_us / 1000000.0
    per_s = 1000000 // period_us
    end_s = scn["end_s"]
    total = int(end_s * per_s + 0.5)
    seed = scn.get("seed", 1)
    name = os.path.splitext(os.path.basename(a.scenario))[0]
    # warnings are printed even with --quiet (it silences progress and the summary)
    raw_events = raw.get("events", []) if isinstance(raw, dict) else []
    for w in _warnings(dict(scn, _raw_events=raw_events), end_s):
        print("warning: " + w, file=stderr)

    columns = scenario.TRACE_COLUMNS
    acc = summ_mod.Summary(columns, dt_s, profile.target_ua)
    prog = Progress(total, not a.quiet and hasattr(stderr, "isatty") and stderr.isatty(), stderr)

    trace_f = None
    tmp_trace = None
    if a.trace:
        tmp_trace = a.trace + ".part"
        trace_f = open(tmp_trace, "w", newline="")
        trace_f.write(",".join(columns) + "\n")
    fmt = ",".join(FORMATS.get(c, "%s") for c in columns) + "\n"
    every = a.every
    i_state = columns.index("state")

    want_plot = a.plot is not None
    if want_plot:
        ix = {c: n for n, c in enumerate(columns)}
        pcols = tuple(c for c in ("t_s", "target_ua", "measured_ua", "true_ua", "electrode_mv",
                                  "limited", "peak_ua", "density_ratio") if c in ix)
        parr = {c: array.array("d") for c in pcols}
        pidx = [(parr[c].append, ix[c]) for c in pcols]
        pstate = array.array("B")
        snames = list(sm.NAMES)
        sindex = {s: n for n, s in enumerate(snames)}

    st = {"k": 0, "prev": None, "pending": None}

    def on_row(row):
        k = st["k"]
        st["k"] = k + 1
        acc.add(row)
        if trace_f is not None:
            s = row[i_state]
            line = fmt % row
            if k % every == 0 or s != st["prev"]:
                trace_f.write(line)
                st["pending"] = None
            else:
                st["pending"] = line
            st["prev"] = s
        if want_plot:
            for app, n in pidx:
                app(row[n])
            s = row[i_state]
            if s not in sindex:
                sindex[s] = len(snames)
                snames.append(s)
            pstate.append(sindex[s])
        if k % 1000 == 0:
            prog.update(k)

    t0 = time.perf_counter()
    try:
        bench = scenario.run(scn, on_row)
    except BaseException:
        prog.done()
        if trace_f is not None:
            trace_f.close()
            os.remove(tmp_trace)
        if sys.exc_info()[0] is KeyboardInterrupt:
            print("interrupted at step %d" % st["k"], file=stderr)
            return 130
        import traceback
        traceback.print_exc(file=stderr)
        print("error: the simulation crashed at step %d (t=%.3f s)" % (st["k"], st["k"] * dt_s),
              file=stderr)
        return EXIT_RUN_ERROR
    wall = time.perf_counter() - t0
    prog.done()
    if trace_f is not None:
        if st["pending"] is not None:
            trace_f.write(st["pending"])        # always keep the last row
        trace_f.close()
        os.replace(tmp_trace, a.trace)

    ctrl = bench.ctrl
    fault_code = ctrl.safety.fault or (ctrl.session.fault_code
                                       if ctrl.session.state == sm.FAULT else 0)
    result = acc.result(
        fault=safety.NAMES[fault_code] if fault_code else None,
        end_reason=sm.END_NAMES[ctrl.session.end_reason] or None,
        wall_time_s=wall, seed=seed, profile=_profile_dict(profile), scenario=name)
    result["scenario_file"] = a.scenario
    result["end_s"] = end_s
    result["start_s"] = scn.get("start_s", 0)

    if a.summary:
        with open(a.summary, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    if want_plot:
        from tools import trace_plot
        compliance = scn.get("plant", {}).get("compliance_v",
                                              scenario.board.COMPLIANCE_MV / 1000.0)
        open_v = scenario.board.COMPLIANCE_MV * limits.OPEN_V_PCT / 100 / 1000.0
        data = {c: parr[c] for c in pcols}
        data["state"] = [snames[n] for n in pstate]
        sub = "%g mA, %d s, ramps %d/%d s%s | outcome: %s%s | seed %d" % (
            profile.target_ua / 1000.0, profile.duration_s, profile.ramp_up_s,
            profile.ramp_down_s, (", polarity reversal" if profile.reverse else "") + (
                ", pulsed %d Hz %d %%" % (profile.pulse_hz, profile.duty_pct)
                if profile.mode == profiles.MODE_PULSED else ", dose %d uA*min" % profile.dose_uamin
                if profile.mode == profiles.MODE_DOSE else ""),
            result["final_state"], " (%s)" % result["fault"] if result["fault"] else "", seed)
        trace_plot.plot(data, a.plot, title="Scenario: %s" % name, compliance_v=compliance,
                        open_v=open_v, target_ua=profile.target_ua, events=scn["events"],
                        fault=result["fault"], subtitle=sub,
                        peak=profile.mode == profiles.MODE_PULSED)
    if not a.quiet:
        print(summ_mod.format_text(result), file=stdout)
    return EXIT_OK


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
