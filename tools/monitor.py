"""Live view of a running treatment: current, voltage, load, time left, charge, faults.

    python -m tools.monitor [--port PORT] [--record FILE.csv] [--plot FILE.png]
                            [--hz N] [--duration S] [--follow] [--timeout S]
    make monitor PORT=/dev/ttyACM0 [RECORD=file.csv] [PLOT=file.png]

Turns the device's telemetry on (`telemetry {"on": true, "hz": N}`, docs/protocol.md) and
asks `status` about once a second for the slower fields (target, time left, charge).
On a terminal the view is redrawn in place; otherwise (a pipe, a CI log) it prints one
line per second. The monitor only watches: it never starts, stops or changes a session.

It ends by itself when the session it saw running ends (DONE, FAULT, or back to IDLE),
unless --follow; after --duration seconds; or with Ctrl-C. Whichever way, the telemetry
is turned off again, the record file is complete and the plot is written.

--record writes one CSV row per telemetry line (host time, device ms, the telemetry
fields and the latest status fields), flushed every second so an interrupted monitor keeps
its data. --plot draws the run afterwards: current and setpoint against time, the
electrode voltage below, session states as coloured bands, faults marked in red.
`--replot FILE.csv --plot FILE.png` draws a recorded file again without a device.

Exit status: 0 done (also after Ctrl-C), 1 the link broke or the device refused,
2 no device on the port / not this firmware.
"""

import csv
import datetime
import os
import sys
import time

from tools import cli

EXAMPLES = """
  python -m tools.monitor --port /dev/ttyACM0
  python -m tools.monitor --port /dev/ttyACM0 --record out/session.csv --plot out/session.png
  python -m tools.monitor --hz 20 --duration 60          # the running virtual board, 1 minute
  python -m tools.monitor --follow                       # keep watching across sessions
  python -m tools.monitor --replot out/session.csv --plot out/session.png
  make monitor PORT=/dev/ttyACM0 RECORD=out/session.csv PLOT=out/session.png
"""

ENDED = ("DONE", "FAULT", "IDLE")
TIMER_RUNS = ("TREAT", "REVERSE")
STATUS_EVERY_S = 1.0          # the slower fields
TTY_REDRAW_S = 0.2            # at most 5 redraws a second on a terminal
READ_SLICE_S = 0.1            # telemetry read window between checks
TEL_MS_WRAP = 1 << 29         # the telemetry's `ms` wraps (firmware/clock.py)

COLUMNS = ("host_time", "device_ms", "t_s", "state", "sp_ua", "i_ua", "v_mv", "limited",
           "fault", "peak_ua", "target_ua", "remaining_s", "charge_uamin")


# ---- text ------------------------------------------------------------------------------------

def _ma(ua):
    return "-" if ua is None else "%.2f mA" % (ua / 1000.0)


def _since_s(ms, t0_ms):
    """Seconds from the telemetry `ms` t0_ms to `ms`: the device's count wraps every
    2**29 ms (6.2 days; docs/protocol.md, telemetry)."""
    return ((ms - t0_ms) % TEL_MS_WRAP) / 1000.0


def _num(x):
    return x if isinstance(x, int) and not isinstance(x, bool) else None


class View:
    """The latest telemetry line and status reply, and the numbers shown from them."""

    def __init__(self):
        self.tel = {}
        self.status = {}
        self.t0_ms = None

    def fields(self):
        tel, st = self.tel, self.status
        state = tel.get("state") or st.get("state") or "?"
        target = _num(st.get("target_ua"))
        i_ua = _num(tel.get("i_ua", st.get("i_ua")))
        v_mv = _num(tel.get("v_mv", st.get("v_mv")))
        sp_ua = _num(tel.get("sp_ua", st.get("sp_ua")))
        flow = None
        if state in TIMER_RUNS and target and i_ua is not None:
            flow = 100.0 * i_ua / target
        load = None
        if sp_ua and i_ua is not None and i_ua >= 500 and v_mv is not None:
            load = v_mv * 1000.0 / i_ua
        # the peak matters in pulsed mode only: telemetry carries it then; status always
        # has it (firmware >= 0.5), so it is taken from there only for a pulsed session
        peak = _num(tel.get("peak_ua"))
        if peak is None and st.get("mode") == "pulsed":
            peak = _num(st.get("peak_ua"))
        mode = st.get("mode")
        if mode and st.get("profile"):
            mode = "%s (%s)" % (mode, st["profile"])
        lim = tel.get("lim", st.get("limited"))
        rem = _num(st.get("remaining_s"))
        charge = _num(st.get("charge_uamin"))
        t = None
        if self.t0_ms is not None and _num(tel.get("ms")) is not None:
            t = _since_s(tel["ms"], self.t0_ms)
        return {
            "t": "-" if t is None else "%.1f s" % t,
            "state": state,
            "pause": st.get("pause") or "",
            "target": _ma(target),
            "measured": _ma(i_ua),
            "setpoint": _ma(sp_ua),
            "flow": "-" if flow is None else "%.0f %%" % flow,
            "volts": "-" if v_mv is None else "%.1f V" % (v_mv / 1000.0),
            "load": "-" if load is None else "%.2f kOhm" % (load / 1000.0),
            "left": "-" if rem is None else "%d:%02d" % divmod(rem, 60),
            "charge": "-" if charge is None else "%.2f mA*min" % (charge / 1000.0),
            "limited": "-" if lim is None else ("LIMITED" if lim else "no"),
            "fault": tel.get("fault") or st.get("fault") or "-",
            "peak": _ma(peak),
            "mode": mode or "-",
        }

    def line(self):
        """One line (pipes, CI logs)."""
        f = self.fields()
        state = f["state"] + ("(%s)" % f["pause"] if f["pause"] else "")
        return ("t=%s %s measured %s of %s (%s) %s load %s left %s charge %s limited %s "
                "fault %s peak %s" % (f["t"], state, f["measured"], f["target"], f["flow"],
                                      f["volts"], f["load"], f["left"], f["charge"],
                                      f["limited"], f["fault"], f["peak"]))

    def block(self, header):
        """The terminal view, a few lines."""
        f = self.fields()
        state = f["state"] + (" (%s)" % f["pause"] if f["pause"] else "")
        return [
            header,
            "  state     %-16s fault     %-12s t %s" % (state, f["fault"], f["t"]),
            "  measured  %-16s target    %-12s flowing %s" % (f["measured"], f["target"],
                                                               f["flow"]),
            "  setpoint  %-16s peak      %-12s limited %s" % (f["setpoint"], f["peak"],
                                                              f["limited"]),
            "  voltage   %-16s load      %-12s mode %s" % (f["volts"], f["load"], f["mode"]),
            "  time left %-16s charge    %-12s" % (f["left"], f["charge"]),
        ]


class Screen:
    """Redraws a block in place on a terminal (cursor up + clear line); one line per update
    otherwise."""

    def __init__(self, out, tty=None):
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.drawn = 0

    def show(self, view, header):
        if self.tty:
            lines = view.block(header)
            s = "\x1b[%dF" % self.drawn if self.drawn else ""
            s += "".join("\x1b[2K%s\n" % ln for ln in lines)
            self.drawn = len(lines)
        else:
            s = view.line() + "\n"
        self.out.write(s)
        self.out.flush()

    def say(self, text):
        """A line of its own, below the view (the view starts again under it)."""
        self.out.write(text + "\n")
        self.out.flush()
        self.drawn = 0


# ---- the record -------------------------------------------------------------------------------

class Recorder:
    """Rows in memory (for the plot) and, with a path, in a CSV file flushed each second."""

    def __init__(self, path=None):
        self.rows = []
        self.file = None
        self.writer = None
        if path:
            d = os.path.dirname(os.path.abspath(path))
            os.makedirs(d, exist_ok=True)
            self.file = open(path, "w", newline="")
            self.writer = csv.writer(self.file)
            self.writer.writerow(COLUMNS)
            self.file.flush()

    def add(self, row):
        self.rows.append(row)
        if self.writer:
            self.writer.writerow(["" if row.get(c) is None else _cell(row[c]) for c in COLUMNS])

    def flush(self):
        if self.file:
            self.file.flush()

    def close(self):
        if self.file:
            self.file.close()
            self.file = None


def _cell(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        return "%.3f" % v
    return v


def read_record(path):
    """Rows of a --record CSV (numbers as int/float, empty cells as None)."""
    rows = []
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        missing = [c for c in ("t_s", "state", "sp_ua", "i_ua", "v_mv") if c not in (r.fieldnames or ())]
        if missing:
            raise ValueError("not a monitor record (no %s column)" % ", ".join(missing))
        for rec in r:
            row = {}
            for k, v in rec.items():
                if k in ("host_time", "state", "fault") or v is None:
                    row[k] = v
                elif v == "":
                    row[k] = None
                else:
                    row[k] = float(v) if "." in v else int(v)
            rows.append(row)
    return rows


def _iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---- the run ----------------------------------------------------------------------------------

def _elapsed(view, host_s):
    """Seconds watched in the time base of the `t` column: the device's clock once its
    telemetry has come (a virtual board runs time-compressed), else the host's."""
    if view.t0_ms is not None and _num(view.tel.get("ms")) is not None:
        return _since_s(view.tel["ms"], view.t0_ms)
    return host_s


def monitor(dev, ident, label, out, hz=10, duration=None, follow=False, record=None,
            plot=None, tty=None, wall=time.time, err=None):
    """Watch the device until the session ends (or `duration` seconds of the device's
    clock, the `t` shown; or Ctrl-C).
    Returns (exit status, Recorder)."""
    err = err or sys.stderr
    clock = dev.clock
    view = View()
    screen = Screen(out, tty)
    rec = Recorder(record)
    header = "monitor: %s on %s  (Ctrl-C to stop)" % (cli.board_text(ident), label)
    status = cli.EXIT_OK
    reason = "?"
    ran = False
    telemetry_on = False
    try:
        view.status = dev.status()
        state = view.status.get("state")
        ran = _running(state)
        if not screen.tty:
            screen.say(header)
        if not ran:
            screen.say("no session running (%s): waiting for one to start%s" % (
                state, "" if follow else "; the monitor ends when it is over"))
        dev.telemetry.clear()
        dev.set_telemetry(True, hz=hz)
        telemetry_on = True
        t_start = clock()
        next_status = t_start + STATUS_EVERY_S
        next_draw = t_start
        while True:
            dev.read_telemetry(READ_SLICE_S)
            while dev.telemetry:
                msg = dev.telemetry.popleft()
                if msg.get("t") != "tel" or _num(msg.get("ms")) is None:
                    continue
                if view.t0_ms is None:
                    view.t0_ms = msg["ms"]
                view.tel = msg
                st = view.status
                rec.add({"host_time": _iso(wall()), "device_ms": msg["ms"],
                         "t_s": _since_s(msg["ms"], view.t0_ms), "state": msg.get("state"),
                         "sp_ua": msg.get("sp_ua"), "i_ua": msg.get("i_ua"),
                         "v_mv": msg.get("v_mv"), "limited": msg.get("lim"),
                         "fault": msg.get("fault"), "peak_ua": msg.get("peak_ua"),
                         "target_ua": st.get("target_ua"),
                         "remaining_s": st.get("remaining_s"),
                         "charge_uamin": st.get("charge_uamin")})
            now = clock()
            state = view.tel.get("state") or view.status.get("state")
            over = ran and state in ENDED
            if now >= next_status or over:
                view.status = dev.status()
                next_status = now + STATUS_EVERY_S
                rec.flush()
                state = view.status.get("state")
                over = ran and state in ENDED
                if not screen.tty:
                    screen.show(view, header)
            if screen.tty and now >= next_draw:
                screen.show(view, header)
                next_draw = now + TTY_REDRAW_S
            if _running(state):
                ran = True
            if over:
                ended = "session over: %s, end %s, fault %s" % (
                    state, view.status.get("end") or "-", view.status.get("fault"))
                if follow:
                    if screen.tty:
                        screen.show(view, header)
                    screen.say(ended + " (following: waiting for the next session)")
                    ran = False
                else:
                    reason = ended
                    break
            if duration is not None and _elapsed(view, now - t_start) >= duration:
                reason = "--duration %g s reached" % duration
                break
    except KeyboardInterrupt:
        reason = "stopped (Ctrl-C)"
    except cli.LINK_ERRORS as e:
        # the link broke or the device refused: keep what was recorded, say why, exit 1
        reason = "ended early"
        status = cli.guarded(_raise, e, err=err)
    finally:
        if telemetry_on:
            try:
                dev.set_telemetry(False)
            except (Exception, KeyboardInterrupt):
                pass
        rec.close()
    if screen.tty:
        screen.show(view, header)
    screen.say("monitor: %s; %d telemetry rows%s" % (
        reason, len(rec.rows), ", recorded in %s" % record if record else ""))
    if plot:
        try:
            plot_record(rec.rows, plot, title="Treatment monitor: " + cli.board_text(ident),
                        subtitle=_subtitle(rec.rows, hz, view.status, wall))
            screen.say("plot: %s" % plot)
        except KeyboardInterrupt:
            screen.say("plot not written (interrupted)")
    return status, rec


def _running(state):
    """A session runs: any state but the idle ones (also a state newer firmware adds)."""
    return isinstance(state, str) and state not in ENDED


def _raise(e):
    raise e


def _subtitle(rows, hz, status, wall):
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(wall()))
    s = "recorded %s, %d telemetry rows at %d Hz" % (when, len(rows), hz)
    charge = _num(status.get("charge_uamin"))
    if charge is not None:
        s += "; charge %.2f mA·min" % (charge / 1000.0)
    if status.get("end"):
        s += "; end %s" % status["end"]
    return s


# ---- the plot ---------------------------------------------------------------------------------

def figure_record(rows, title="Treatment monitor", subtitle=""):
    """Current (measured, setpoint, target, peak) and voltage against time, state bands,
    faults in red. `rows`: Recorder rows or read_record()."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from tools.trace_plot import COLOURS, _segments

    t = [r["t_s"] for r in rows]
    states = [r["state"] or "?" for r in rows]

    def col(name, scale=1000.0):
        return [None if r.get(name) is None else r[name] / scale for r in rows]

    fig, (ax_i, ax_v) = plt.subplots(2, 1, sharex=True, figsize=(11, 7),
                                     gridspec_kw={"height_ratios": [3, 2], "hspace": 0.08})
    seen = []
    for st, a, b in _segments(t, states):
        for ax in (ax_i, ax_v):
            ax.axvspan(a, b, color=COLOURS.get(st, "#cccccc"), alpha=0.13, lw=0)
        if st not in seen:
            seen.append(st)
    if rows:
        ax_i.plot(t, _nan(col("target_ua")), color="#555555", lw=1.0, ls="--",
                  label="target (status)")
        ax_i.plot(t, _nan(col("sp_ua")), color="#8ecae6", lw=4.0, alpha=0.9, label="setpoint",
                  solid_capstyle="butt")
        ax_i.plot(t, _nan(col("i_ua")), color="#1d3557", lw=1.3, label="measured")
        if any(r.get("peak_ua") is not None for r in rows):
            ax_i.plot(t, _nan(col("peak_ua")), color="#9b5de5", lw=1.0, label="peak (pulsed)")
        ax_v.plot(t, _nan(col("v_mv")), color="#6a4c93", lw=1.3, label="electrode voltage")
        lim = [bool(r.get("limited")) for r in rows]
        k = 0
        any_lim = False
        while k < len(lim):
            if lim[k]:
                j = k
                while j + 1 < len(lim) and lim[j + 1]:
                    j += 1
                ax_v.axvspan(t[k], t[j], ymin=0.0, ymax=0.06, color="#6a4c93", lw=0)
                any_lim = True
                k = j + 1
            else:
                k += 1
        if any_lim:
            ax_v.fill_between([], [], color="#6a4c93", label="compliance limited")
    faulted = False
    for k, r in enumerate(rows):
        f = r.get("fault")
        if f and f != "ok" and (k == 0 or rows[k - 1].get("fault") != f):
            for ax in (ax_i, ax_v):
                ax.axvline(r["t_s"], color="#d62828", lw=1.5, ls="--")
            right = t and r["t_s"] > t[0] + 0.6 * (t[-1] - t[0])
            ax_i.annotate("FAULT: %s" % f, xy=(r["t_s"], 0.55), xycoords=("data", "axes fraction"),
                          xytext=(-4 if right else 4, 0), textcoords="offset points",
                          color="#d62828", fontsize=9, va="center",
                          ha="right" if right else "left", fontweight="bold",
                          bbox=dict(fc="white", ec="#d62828", alpha=0.9, pad=2))
            i_prev = rows[k - 1].get("i_ua") if k else None
            if i_prev is not None:
                ax_i.plot([r["t_s"]], [i_prev / 1000.0], marker="X", color="#d62828", ms=9,
                          zorder=5)
            faulted = True
    if faulted:
        ax_i.plot([], [], color="#d62828", lw=1.5, ls="--", label="fault")
    if not rows:
        ax_i.text(0.5, 0.5, "no telemetry received", transform=ax_i.transAxes, ha="center",
                  va="center", color="#888888")
    ax_i.set_ylabel("current (mA)")
    ax_v.set_ylabel("electrode voltage (V)")
    ax_v.set_xlabel("time since the first telemetry line (s)")
    for ax in (ax_i, ax_v):
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    for ax in (ax_i, ax_v):             # headroom for the legends
        top = ax.get_ylim()[1]
        ax.set_ylim(top=top * 1.3 if top > 0 else 1.0)
    leg1 = ax_i.legend(loc="upper left", fontsize=8, ncol=5, framealpha=0.9)
    handles = [Patch(color=COLOURS.get(s, "#cccccc"), alpha=0.35, label=s) for s in seen]
    if handles:
        ax_i.add_artist(leg1)
        ax_i.legend(handles=handles, loc="upper right", fontsize=8, ncol=3, framealpha=0.9,
                    title="state", title_fontsize=8)
    ax_v.legend(loc="upper left", fontsize=8, framealpha=0.9)
    if t:
        span = max(t[-1] - t[0], 1.0)
        ax_v.set_xlim(t[0], t[0] + span * 1.02)
    fig.suptitle(title, fontsize=12, y=0.975)
    if subtitle:
        fig.text(0.5, 0.93, subtitle, ha="center", fontsize=9, color="#444444")
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.08)
    return fig


def _nan(values):
    return [float("nan") if v is None else v for v in values]


def plot_record(rows, path, title="Treatment monitor", subtitle=""):
    """Write figure_record() as a PNG (matplotlib Agg); returns `path`."""
    from tools.trace_plot import save_png
    return save_png(figure_record(rows, title, subtitle), path)


# ---- command line ------------------------------------------------------------------------------

def build_parser():
    ap = cli.parser("python -m tools.monitor", __doc__, EXAMPLES)
    cli.add_port_arguments(ap)
    ap.add_argument("--record", metavar="FILE.csv", help="write every telemetry line to a CSV")
    ap.add_argument("--plot", metavar="FILE.png", help="draw the run to a PNG at the end")
    ap.add_argument("--hz", type=int, default=10, choices=range(1, 51), metavar="N",
                    help="telemetry lines per second, 1..50 (default 10)")
    ap.add_argument("--duration", type=float, metavar="S",
                    help="stop after S seconds of the device's clock, the time base of the "
                    "t column (a virtual board's is compressed); default: when the session "
                    "ends")
    ap.add_argument("--follow", action="store_true",
                    help="keep watching after a session ends (stop with Ctrl-C)")
    ap.add_argument("--replot", metavar="FILE.csv",
                    help="no device: draw a recorded CSV again (needs --plot)")
    return ap


def main(argv=None, opener=None, out=None, err=None, tty=None, wall=time.time):
    out = out or sys.stdout
    err = err or sys.stderr
    ns = build_parser().parse_args(argv)
    if ns.duration is not None and ns.duration <= 0:
        err.write("error: --duration must be > 0\n")
        return cli.EXIT_NO_DEVICE
    if ns.replot:
        if not ns.plot:
            err.write("error: --replot needs --plot FILE.png\n")
            return cli.EXIT_NO_DEVICE
        return cli.guarded(_replot, ns, out, err=err)

    def job(ns, dev, ident):
        status, _ = monitor(dev, ident, ns.port_label, out, hz=ns.hz, duration=ns.duration,
                            follow=ns.follow, record=ns.record, plot=ns.plot, tty=tty,
                            wall=wall, err=err)
        return status
    return cli.run_with_device(ns, job, opener=opener, err=err)


def _replot(ns, out):
    try:
        rows = read_record(ns.replot)
    except (OSError, ValueError) as e:
        raise cli.CliError("%s: %s" % (ns.replot, e))
    plot_record(rows, ns.plot, title="Treatment monitor: %s" % os.path.basename(ns.replot))
    out.write("plot: %s (%d rows)\n" % (ns.plot, len(rows)))
    return cli.EXIT_OK


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
