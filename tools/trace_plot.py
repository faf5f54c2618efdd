"""Plot a simulated session: currents, electrode voltage and the state over time.

`plot(data, path, ...)` takes columns (name -> sequence, as in the trace CSV) and writes
a PNG with matplotlib's Agg backend (no display needed). Also usable on a trace CSV:

    python -m tools.trace_plot trace.csv -o plot.png [--title NAME] [--compliance-v 40]

(a trace thinned with --every loses the short spikes between kept rows).
"""

import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# top to bottom on the state axis
STATES = ("FAULT", "PAUSED", "DONE", "RAMP_DOWN", "REVERSE", "TREAT", "RAMP_UP",
          "WAIT_CONTACT", "IDLE")
COLOURS = {
    "IDLE": "#b0b0b0", "WAIT_CONTACT": "#8ecae6", "RAMP_UP": "#90be6d", "TREAT": "#2a9d4a",
    "REVERSE": "#9b5de5", "RAMP_DOWN": "#c9b037", "DONE": "#606060", "PAUSED": "#f4a261",
    "FAULT": "#d62828",
}
CARRYING = ("RAMP_UP", "TREAT", "REVERSE", "RAMP_DOWN")   # states driving treatment current
MAX_POINTS = 12000       # above this, lines are drawn from a min/max envelope per bucket


def save_png(fig, path, dpi=100):
    """Write `fig` to `path` as a PNG (creating its folder), close it; returns `path`."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path


def _envelope(t, y, max_points=MAX_POINTS):
    """Thin (t, y) for drawing while keeping every bucket's min and max (spikes stay)."""
    n = len(t)
    if n <= max_points:
        return t, y
    b = -(-n // (max_points // 2))
    m = n // b * b
    tb = t[:m].reshape(-1, b)
    yb = y[:m].reshape(-1, b)
    lo = yb.argmin(axis=1)
    hi = yb.argmax(axis=1)
    rows = np.arange(len(yb))
    first = np.minimum(lo, hi)
    second = np.maximum(lo, hi)
    tt = np.column_stack((tb[rows, first], tb[rows, second])).ravel()
    yy = np.column_stack((yb[rows, first], yb[rows, second])).ravel()
    if m < n:
        tt = np.concatenate((tt, t[m:]))
        yy = np.concatenate((yy, y[m:]))
    return tt, yy


def _segments(t, states):
    """[(state, t0, t1)] runs of equal state; t1 is the next run's start."""
    out = []
    if not len(t):
        return out
    dt = t[1] - t[0] if len(t) > 1 else 0.005
    start = 0
    for k in range(1, len(states) + 1):
        if k == len(states) or states[k] != states[start]:
            t1 = t[k] if k < len(states) else t[-1] + dt
            out.append((states[start], t[start], t1))
            start = k
    return out


def _event_label(ev):
    for k, v in ev.items():
        if k in ("t_s", "over_s"):
            continue
        over = " over %gs" % ev["over_s"] if ev.get("over_s") else ""
        if k == "contact":
            return ("contact on" if v else "contact off") + over
        if k == "short":
            return ("short" if v else "short removed") + over
        if k == "command":
            return "cmd " + v
        if k == "fault":
            return "fault " + v
        if k.endswith("_ohm"):
            return "%s %g Ω%s" % (k[:-4], v, over)
        return "%s %g%s" % (k, v, over)
    return "?"


def plot(data, path, title="", compliance_v=None, open_v=None, target_ua=None, events=(),
         fault=None, subtitle="", peak=False):
    """Write the three-panel PNG for columns `data` (t_s, state, target_ua, ...) to `path`.

    `peak`: also draw the plant's on-phase (peak) current (pulsed mode; `true` is the average).
    """
    t = np.asarray(data["t_s"], dtype=float)
    states = list(data["state"])
    target = np.asarray(data["target_ua"], dtype=float) / 1000.0
    meas = np.asarray(data["measured_ua"], dtype=float) / 1000.0
    true = np.asarray(data["true_ua"], dtype=float) / 1000.0
    volts = np.asarray(data["electrode_mv"], dtype=float) / 1000.0 \
        if "electrode_mv" in data else None
    segs = _segments(t, states)

    nrows = 3 if volts is not None else 2
    ratios = [3, 2, 1.6] if volts is not None else [3, 1.6]
    fig, axes = plt.subplots(nrows, 1, sharex=True, figsize=(12, 8.5),
                             gridspec_kw={"height_ratios": ratios, "hspace": 0.08})
    ax_i = axes[0]
    ax_v = axes[1] if volts is not None else None
    ax_s = axes[-1]

    # pauses shaded on every panel; faults as a red line
    for st, a, b in segs:
        if st == "PAUSED":
            for ax in axes:
                ax.axvspan(a, b, color=COLOURS["PAUSED"], alpha=0.18, lw=0)
    fault_t = [a for st, a, b in segs if st == "FAULT"]
    for ft in fault_t:
        for ax in axes:
            ax.axvline(ft, color=COLOURS["FAULT"], lw=1.2, ls="--")

    # currents: the true current is the judged one (drawn boldest, on top)
    ax_i.plot(*_envelope(t, target), color="#555555", lw=1.0, ls="--", label="target (setpoint)")
    ax_i.plot(*_envelope(t, meas), color="#7fb8e6", lw=2.6, label="measured (firmware)")
    ax_i.plot(*_envelope(t, true), color="#d62828", lw=1.2, label="true (plant): judged")
    pk = None
    if peak and "peak_ua" in data:
        pk = np.asarray(data["peak_ua"], dtype=float) / 1000.0
        ax_i.plot(*_envelope(t, pk), color="#f4a261", lw=0.8, label="true peak (pulsed)")
        ax_i.axhline(25.0, color="#f4a261", lw=0.7, ls=":", label="ceiling 25 mA (peak)")
    if target_ua:
        trip = min(target_ua * 1.1, 30000.0) / 1000.0
        ax_i.axhline(trip, color="#d62828", lw=0.7, ls=":", label="trip %.1f mA" % trip)
    ax_i.set_ylabel("current (mA)")
    top = max(float(np.max(true)) if len(true) else 0.0, float(np.max(target)) if len(t) else 0.0,
              (target_ua or 0) * 1.1 / 1000.0, 1.0,
              min(float(np.max(pk)), 30.0) if pk is not None and len(pk) else 0.0,
              25.0 if pk is not None else 0.0)      # the peak's ceiling stays in view
    ax_i.set_ylim(-0.03 * top, top * 1.22)
    ax_i.grid(True, alpha=0.3)
    if fault_t:
        ax_i.plot([], [], color=COLOURS["FAULT"], ls="--", lw=1.2,
                  label="FAULT" + (" (%s)" % fault if fault else ""))
    if any(st == "PAUSED" for st, a, b in segs):
        ax_i.fill_between([], [], color=COLOURS["PAUSED"], alpha=0.3, label="paused")
    ax_i.legend(loc="upper right", fontsize=8, ncol=3, framealpha=0.9)

    # current density on the least-wetted skin (issue 13), on its own axis at the right
    dens = data.get("density_ratio")
    if dens is not None and len(dens):
        dens = np.asarray(dens, dtype=float)
        ax_d = ax_i.twinx()
        ax_d.plot(*_envelope(t, dens), color="#2a9d8f", lw=0.9, label="density (true, x full)")
        for lvl, ls in ((1.5, ":"), (2.0, "--")):
            ax_d.axhline(lvl, color="#2a9d8f", lw=0.6, ls=ls)
        ax_d.set_ylabel("density (x full immersion)", color="#2a9d8f")
        ax_d.set_ylim(0.0, max(2.6, float(np.max(dens)) * 1.1))
        ax_d.legend(loc="upper left", fontsize=8, framealpha=0.9)

    # scenario events along the top of the current panel
    tmax = t[-1] if len(t) else 1.0
    for ev in events or ():
        et = ev.get("t_s", 0)
        if et > tmax:
            continue
        ax_i.axvline(et, color="#888888", lw=0.6, ls=":")
        ax_i.annotate(_event_label(ev), xy=(et, 1.0), xycoords=("data", "axes fraction"),
                      xytext=(2, -3), textcoords="offset points", rotation=90, fontsize=7,
                      va="top", ha="left", color="#444444",
                      bbox=dict(fc="white", ec="none", alpha=0.75, pad=0.6))

    if ax_v is not None:
        lim = data.get("limited")
        if lim is not None and len(lim):
            carrying = np.array([s in CARRYING for s in states], dtype=bool)
            lim = (np.asarray(lim, dtype=float) > 0) & carrying
            edges = np.flatnonzero(np.diff(np.concatenate(([0], lim.astype(int), [0]))))
            dt = t[1] - t[0] if len(t) > 1 else 0.005
            for a, b in zip(edges[0::2], edges[1::2]):
                ax_v.axvspan(t[a], t[b - 1] + dt, color="#6a4c93", alpha=0.12, lw=0)
            if len(edges):
                ax_v.fill_between([], [], color="#6a4c93", alpha=0.25, label="compliance limited")
        ax_v.plot(*_envelope(t, volts), color="#6a4c93", lw=1.0,
                  label="electrode voltage (measured)")
        if compliance_v is not None:
            ax_v.axhline(compliance_v, color="#000000", lw=0.9, ls="--",
                         label="source compliance %g V" % compliance_v)
        if open_v is not None:
            ax_v.axhline(open_v, color="#888888", lw=0.8, ls=":",
                         label="open circuit above %g V (no current)" % open_v)
        ax_v.set_ylabel("electrode (V)")
        vt = max(float(np.max(volts)) if len(volts) else 0.0, compliance_v or 0.0, 1.0)
        ax_v.set_ylim(-0.03 * vt, vt * 1.15)
        ax_v.grid(True, alpha=0.3)
        ax_v.legend(loc="upper right", fontsize=8, ncol=3, framealpha=0.9)

    # state: a coloured bar on each state's row, joined by a thin step line
    ypos = {s: n for n, s in enumerate(reversed(STATES))}
    extra = [s for s in dict.fromkeys(states) if s not in ypos]
    for s in extra:
        ypos[s] = len(ypos)
    if segs:
        xs, ys = [], []
        for st, a, b in segs:
            xs += [a, b]
            ys += [ypos[st], ypos[st]]
        ax_s.plot(xs, ys, color="#333333", lw=0.6)
        for st, a, b in segs:
            ax_s.broken_barh([(a, b - a)], (ypos[st] - 0.4, 0.8),
                             facecolors=COLOURS.get(st, "#999999"))
    names = sorted(ypos, key=ypos.get)
    ax_s.set_yticks([ypos[s] for s in names])
    ax_s.set_yticklabels(names, fontsize=7)
    for lab in ax_s.get_yticklabels():
        lab.set_color(COLOURS.get(lab.get_text(), "#000000"))
    ax_s.set_ylim(-0.7, len(names) - 0.3)
    ax_s.set_ylabel("state")
    ax_s.grid(True, axis="x", alpha=0.3)
    ax_s.set_xlabel("time (s)")
    if len(t):
        ax_s.set_xlim(t[0], t[-1] + (t[1] - t[0] if len(t) > 1 else 0))

    fig.suptitle(title, fontsize=12, y=0.975)
    if subtitle:
        fig.text(0.5, 0.935, subtitle, ha="center", fontsize=9, color="#444444")
    fig.subplots_adjust(left=0.1, right=0.98, top=0.915, bottom=0.06)
    return save_png(fig, path, dpi=110)


def read_csv(path):
    """Columns of a trace CSV as lists (numbers as floats, state as names)."""
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        cols = {h: [] for h in header}
        for row in r:
            for h, v in zip(header, row):
                cols[h].append(v)
    for h in cols:
        if h != "state":
            cols[h] = [float(v) for v in cols[h]]
    return cols


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.trace_plot",
                                 description="Plot a simulator trace CSV to a PNG.")
    ap.add_argument("trace")
    ap.add_argument("-o", "--output", help="PNG path (default: the trace name with .png)")
    ap.add_argument("--title")
    ap.add_argument("--compliance-v", type=float)
    a = ap.parse_args(argv)
    try:
        data = read_csv(a.trace)
    except (OSError, ValueError, StopIteration, KeyError) as e:
        print("error: %s: %s" % (a.trace, e), file=sys.stderr)
        return 2
    out = a.output or os.path.splitext(a.trace)[0] + ".png"
    plot(data, out, title=a.title or os.path.basename(a.trace), compliance_v=a.compliance_v)
    print(out)
    return 0


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
