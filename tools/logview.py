"""Download the device's treatment log: a table, the adherence summary, CSV and a plot.

    python -m tools.logview [--port PORT] [--csv FILE.csv] [--png FILE.png] [--since DATE]
    make log PORT=/dev/ttyACM0 [CSV=file.csv] [PNG=file.png]

Reads every record (`log_read`, page by page; progress on stderr), then prints one row per
session (number, start, duration delivered of prescribed, target and mean current,
charge, end reason, fault, pauses, attempts before it) and the adherence summary against
the plan (tools/log_report.py, the firmware's own counting rules), with the record
numbers missing from the log and the sessions dated earlier than one before them (a
moved clock). Records are listed in the order of their session number, never of their
dates. Records of firmware 0.5 and older (no `attempts`) read as 0 attempts. The plan comes from the prescription (`rx_read`, only
in service mode) or, without it, from `schedule` (this phase's aim and the number of
induction sessions; the other phase's aim is then the factory value, and the output says
so) and `settings_read` (induction marked done).

--csv writes every record (all protocol fields plus the start as text); --png draws the
sessions over time (charge per session as bars coloured by how they ended, faults in red,
target and mean current on a second axis) and, below, sessions per week against the aim.
--since DATE (YYYY-MM-DD, UTC) keeps the sessions started on or after DATE (sessions
without a wall-clock time cannot be placed and are left out); the whole log is still read.

The log cannot be read during a session (the device refuses with E_STATE): exit status 1
with a message. Exit status 2: no device on the port / not this firmware.
"""

import csv
import datetime
import os
import sys
import time

from tools import cli
from tools.client import DeviceError

EXAMPLES = """
  python -m tools.logview --port /dev/ttyACM0
  python -m tools.logview --port /dev/ttyACM0 --csv out/log.csv --png out/log.png
  python -m tools.logview --since 2026-01-01          # the running virtual board
  make log PORT=/dev/ttyACM0 CSV=out/log.csv PNG=out/log.png
"""

RECORD_FIELDS = ("seq", "start", "epoch", "target_ua", "duration_s", "ramp_up_s",
                 "ramp_down_s", "reverse", "delivered_s", "charge_uamin", "i_min_ua",
                 "i_mean_ua", "i_max_ua", "load_ohm", "pauses", "paused_s", "end", "fault",
                 "profile", "attempts")
END_COLOURS = {"completed": "#2a9d4a", "stopped": "#e9c46a", "no_contact": "#8ecae6",
               "pause_timeout": "#f4a261", "fault": "#d62828", "dose": "#1b7a3a",
               "dose_short": "#b5838d", "interrupted": "#6c757d"}


# ---- download ----------------------------------------------------------------------------------

def download(dev, progress=None):
    """Every record, oldest first; progress(done, total) after each page."""
    out = []
    nxt = None
    while True:
        page = dev.request("log_read", **({"from": nxt} if nxt else {}))
        out.extend(page["records"])
        if progress:
            progress(len(out), page.get("count") or len(out))
        nxt = page.get("next")
        if not nxt:
            return out


def plan(dev):
    """(rx dict for log_report.adherence, induction_done, notes[]) from the device."""
    import tools.paths  # noqa: F401  (firmware modules importable)
    from records import RX_FACTORY
    notes = []
    done = False
    try:
        done = bool(dev.request("settings_read").get("induction_done"))
    except DeviceError as e:
        notes.append("settings not readable (%s): induction assumed not marked done" % e.code)
    try:
        rx = dev.request("rx_read").get("rx")
        if rx:
            return dict(rx), done, notes
        notes.append("the prescription is corrupt on the device")
    except DeviceError as e:
        if e.code != "E_DENIED":
            notes.append("prescription not readable (%s)" % e.code)
    rx = dict(RX_FACTORY)
    try:
        sch = dev.request("schedule")
    except DeviceError as e:
        notes.append("no schedule (%s): the factory plan is used" % e.code)
        return rx, done, notes
    rx["induction_sessions"] = sch["induction_sessions"]
    if sch["phase"] == "induction":
        rx["induction_per_week"] = sch["per_week"]
        other = "maintenance"
    else:
        rx["maintenance_per_week"] = sch["per_week"]
        other = "induction"
    notes.append("plan from the device's schedule: %s %d a week, %d induction sessions; "
                 "the %s aim (%d a week) is the factory value (the prescription itself "
                 "needs service mode)" % (sch["phase"], sch["per_week"],
                                          sch["induction_sessions"], other,
                                          rx[other + "_per_week"]))
    return rx, done, notes


# ---- text ----------------------------------------------------------------------------------------

def start_text(r):
    if r.get("epoch"):
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["start"]))
    return "boot+%ds" % r["start"]


def _mmss(s):
    return "%d:%02d" % divmod(int(s), 60)


def table(records):
    head = ("seq", "start (UTC)", "profile", "delivered", "target", "mean", "charge", "end",
            "fault", "pauses", "attempts")
    units = ("", "", "", "of prescribed", "mA", "mA", "mA*min", "", "", "n / s", "before")
    rows = []
    for r in sorted(records, key=lambda r: r["seq"]):
        rows.append((str(r["seq"]), start_text(r), r.get("profile") or "-",
                     "%s / %s" % (_mmss(r["delivered_s"]), _mmss(r["duration_s"])),
                     "%.1f" % (r["target_ua"] / 1000.0), "%.2f" % (r["i_mean_ua"] / 1000.0),
                     "%.1f" % (r["charge_uamin"] / 1000.0), r["end"] or "-",
                     r["fault"] if r["fault"] not in ("ok", 0) else "-",
                     "%d / %d" % (r["pauses"], r["paused_s"]),
                     str(r.get("attempts") or 0)))
    widths = [max(len(x) for x in col) for col in zip(head, units, *rows)]
    right = (0, 3, 4, 5, 6, 9, 10)

    def fmt(cells):
        return "  ".join(c.rjust(w) if k in right else c.ljust(w)
                         for k, (c, w) in enumerate(zip(cells, widths))).rstrip()
    lines = [fmt(head), fmt(units), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def parse_date(text):
    try:
        d = datetime.datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise cli.CliError("--since %r: give a date as YYYY-MM-DD" % text, cli.EXIT_NO_DEVICE)
    return int(d.replace(tzinfo=datetime.timezone.utc).timestamp())


def write_csv(records, path):
    """One row per record. `epoch` holds the start as Unix seconds (empty for a record
    from a board whose clock was not set); `start` is the protocol's raw value (Unix
    seconds, or seconds since that boot); `start_utc` the dated start as text."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    # the protocol's fields first, then any a newer firmware adds
    fields = RECORD_FIELDS + tuple(sorted({k for r in records for k in r} - set(RECORD_FIELDS)))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("start_utc",) + fields)
        for r in records:
            w.writerow((time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["start"]))
                        if r.get("epoch") else "",)
                       + tuple(_csv(_epoch(r) if k == "epoch" else r.get(k)) for k in fields))


def _epoch(r):
    """The record's start as Unix seconds, or None when its board's clock was not set
    (the protocol's `epoch` is the flag that says which)."""
    return r.get("start") if r.get("epoch") else None


def _csv(v):
    if isinstance(v, bool):
        return int(v)
    return "" if v is None else v


# ---- plot ----------------------------------------------------------------------------------------

def figure_log(records, summary, title="Treatment log", subtitle=""):
    """Sessions over time and sessions per week against the aim."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    dated = bool(records) and all(r.get("epoch") for r in records)
    if dated:
        x = [datetime.datetime.fromtimestamp(r["start"], datetime.timezone.utc)
             for r in records]
        width = 0.6                           # days
    else:
        x = [r["seq"] for r in records]
        width = 0.7
    weeks = summary.get("weeks") or []
    fig, (ax, ax_w) = plt.subplots(2, 1, figsize=(11, 7.5),
                                   gridspec_kw={"height_ratios": [3, 2], "hspace": 0.45})
    charge = [r["charge_uamin"] / 1000.0 for r in records]
    colours = [END_COLOURS.get(r["end"], "#999999") for r in records]
    ax.bar(x, charge, width=width, color=colours, edgecolor="#333333", lw=0.4, zorder=2)
    ax.set_ylabel("charge per session (mA·min)")
    ax.grid(True, axis="y", alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(x, [r["target_ua"] / 1000.0 for r in records], ls="none", marker="_", ms=14,
             mew=2, color="#333333", label="target current")
    ax2.plot(x, [r["i_mean_ua"] / 1000.0 for r in records], ls="none", marker="o", ms=5,
             color="#1d3557", label="mean current in TREAT")
    faults = [(xx, r) for xx, r in zip(x, records) if r["fault"] not in ("ok", 0)]
    for xx, r in faults:
        ax.axvline(xx, color="#d62828", lw=1.0, ls="--", zorder=1)
        ax.annotate("fault: %s" % r["fault"], xy=(xx, r["charge_uamin"] / 1000.0),
                    xytext=(0, 4), textcoords="offset points", rotation=90, va="bottom",
                    ha="center", fontsize=8, color="#d62828", fontweight="bold",
                    bbox=dict(fc="white", ec="none", alpha=0.8, pad=1))
    ax2.set_ylabel("current (mA)")
    top = max([r["target_ua"] for r in records] + [r["i_max_ua"] for r in records] + [1000])
    ax2.set_ylim(0, top / 1000.0 * 1.45)
    ctop = max(charge + [1.0])
    ax.set_ylim(0, ctop * 1.45)
    ends = [e for e in END_COLOURS if any(r["end"] == e for r in records)]
    handles = [Patch(color=END_COLOURS[e], label="charge: %s" % e.replace("_", " "))
               for e in ends]
    if faults:
        handles.append(plt.Line2D([], [], color="#d62828", ls="--", label="fault"))
    h2, _ = ax2.get_legend_handles_labels()
    ax.legend(handles=handles + h2, loc="upper left", fontsize=8, ncol=3, framealpha=0.9)
    if dated:
        ax.set_xlabel("session start (UTC)")
        lo, hi = min(x), max(x)
        pad = max(datetime.timedelta(days=1), (datetime.timedelta(days=7) - (hi - lo)) / 2)
        ax.set_xlim(lo - pad, hi + pad)           # at least a week shown, even for one session
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    else:
        ax.set_xlabel("session number (no wall-clock time on some sessions)")
    if not records:
        ax.text(0.5, 0.5, "the log is empty", transform=ax.transAxes, ha="center",
                color="#888888")

    if weeks:
        wx = [datetime.datetime.fromtimestamp(w["from"], datetime.timezone.utc) for w in weeks]
        met = ["#2a9d4a" if w["met"] else ("#bbbbbb" if not w["complete"] else "#e76f51")
               for w in weeks]
        ax_w.bar(wx, [w["sessions"] for w in weeks], width=6.0, align="edge", color=met,
                 edgecolor="#333333", lw=0.4)
        sx, sy = [], []
        for w, t0 in zip(weeks, wx):
            sx += [t0, t0 + datetime.timedelta(days=7)]
            sy += [w["aim"], w["aim"]]
        ax_w.plot(sx, sy, color="#333333", lw=1.5, ls="--", label="aim (plan)")
        ax_w.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        handles = [Patch(color=c, label=lab) for c, lab in (
            ("#2a9d4a", "week met the aim"), ("#e76f51", "week below the aim"),
            ("#bbbbbb", "week in progress, below the aim")) if c in met]
        ax_w.legend(handles=handles + ax_w.get_legend_handles_labels()[0], loc="upper left",
                    fontsize=8, ncol=4, framealpha=0.9)
        ax_w.set_ylim(0, max([w["sessions"] for w in weeks] + [w["aim"] for w in weeks]) * 1.5
                      + 0.5)
        ax_w.set_xlabel("week starting (UTC)")
    else:
        ax_w.text(0.5, 0.5, "no dated sessions: weeks cannot be counted", ha="center",
                  va="center", transform=ax_w.transAxes, color="#888888")
    for a in (ax, ax_w):
        for lab in a.get_xticklabels():
            lab.set_rotation(20)
            lab.set_ha("right")
    ax_w.set_ylabel("counted sessions per week")
    ax_w.yaxis.get_major_locator().set_params(integer=True)
    ax_w.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=12, y=0.98)
    if subtitle:
        fig.text(0.5, 0.935, subtitle, ha="center", fontsize=9, color="#444444")
    fig.subplots_adjust(left=0.08, right=0.92, top=0.9, bottom=0.1)
    return fig


def plot_log(records, summary, path, title="Treatment log", subtitle=""):
    """Write figure_log() as a PNG (matplotlib Agg); returns `path`."""
    from tools.trace_plot import save_png
    return save_png(figure_log(records, summary, title, subtitle), path)


# ---- command line -----------------------------------------------------------------------------------

def build_parser():
    ap = cli.parser("python -m tools.logview", __doc__, EXAMPLES)
    cli.add_port_arguments(ap)
    ap.add_argument("--csv", metavar="FILE.csv", help="write every record to a CSV")
    ap.add_argument("--png", metavar="FILE.png", help="draw the sessions and weeks to a PNG")
    ap.add_argument("--since", metavar="YYYY-MM-DD",
                    help="only sessions started on or after this day (UTC)")
    return ap


def run(ns, dev, ident, out, err, now=None):
    from tools.log_report import adherence, format_adherence
    from schedule import WEEK_S
    since = parse_date(ns.since) if ns.since else None
    st = dev.status()
    if st.get("state") not in ("IDLE", "DONE", "FAULT"):
        raise cli.CliError("a session is running (state %s): the log can be read when it is "
                           "over" % st.get("state"))
    shown = [0.0]

    def progress(done, total):
        t = time.monotonic()
        if done >= total or t - shown[0] >= 0.2:
            shown[0] = t
            err.write("\rlog: %d / %d records" % (done, total))
            if done >= total:
                err.write("\n")
            err.flush()
    records = download(dev, progress)
    rx, done, notes = plan(dev)
    if now is None:
        now = st.get("time")
    total = len(records)
    # the plan's phase and each week's aim depend on every session before, so the
    # adherence is always computed over the whole log; --since narrows what is listed
    summary = adherence(records, rx=rx, induction_done=done, now=now)
    if since is not None:
        records = [r for r in records if r.get("epoch") and r["start"] >= since]
        summary["weeks"] = [w for w in summary["weeks"] if w["from"] + WEEK_S > since]
    out.write("treatment log of %s on %s: %d session%s%s\n" % (
        cli.board_text(ident), ns.port_label, total, "" if total == 1 else "s",
        "; %d since %s" % (len(records), ns.since) if since is not None else ""))
    if records:
        out.write(table(records) + "\n\n")
    else:
        out.write("(no sessions)\n\n")
    out.write("adherence%s\n" % (" (whole log)" if since is not None else ""))
    out.write("".join("  %s\n" % ln for ln in format_adherence(summary).splitlines()))
    for n in notes:
        out.write("note: %s\n" % n)
    if ns.csv:
        write_csv(records, ns.csv)
        out.write("csv: %s (%d record%s)\n" % (ns.csv, len(records),
                                                "" if len(records) == 1 else "s"))
    if ns.png:
        faults = sum(1 for r in records if r["fault"] not in ("ok", 0))
        sub = "%d session%s%s, %.1f mA·min in total, %d fault%s; phase now %s" % (
            len(records), "" if len(records) == 1 else "s",
            " since %s" % ns.since if since is not None else "",
            sum(r["charge_uamin"] for r in records) / 1000.0, faults,
            "" if faults == 1 else "s", summary["phase"])
        plot_log(records, summary, ns.png, title="Treatment log: " + cli.board_text(ident),
                 subtitle=sub)
        out.write("plot: %s\n" % ns.png)
    return cli.EXIT_OK


def main(argv=None, opener=None, out=None, err=None, now=None):
    out = out or sys.stdout
    err = err or sys.stderr
    ns = build_parser().parse_args(argv)
    if ns.since:
        try:
            parse_date(ns.since)
        except cli.CliError as e:
            err.write("error: %s\n" % e)
            return e.status
    return cli.run_with_device(ns, lambda ns, dev, ident: run(ns, dev, ident, out, err, now),
                               opener=opener, err=err)


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
