"""A time-compressed treatment on a virtual board, watched from the host; trace + plot.

    python -m tools.virtual_board session [--name sim] [--via exec|protocol]
        [--target-ma 15] [--duration-s 300] [--ramp-up-s 30] [--ramp-down-s 15]
        [--stop-after-s S] [--speed 30] [--skin-ohm R] [--event T:key=value ...]
        [--out out] [--prefix board_session]

Two ways to drive the board:

* `--via protocol`: the product's path. main.py's own loop runs on the board; the host
  talks the line protocol (firmware/protocol.py) through tools/client.py: identify,
  time_set, telemetry on, start, watch the telemetry (the firmware's own measurements),
  stop, status. Writes the trace CSV and summary JSON (no plant truth: the protocol shows
  what the firmware measures, nothing else).
* `--via exec` (the default, and the demo's): `mpremote exec` runs a short script on the
  board that builds the firmware's objects exactly as main.py does (board.build(watchdog=
  True), Hal, Controller), starts a validated profile, and runs the firmware loop
  `main.run()` with the board's clock in slices, printing one row per 100 ms that includes
  the plant's *true* current (and the highest instantaneous current in those 100 ms) (what the project judges safety on); mpremote streams the
  rows back. Writes the trace CSV, summary JSON and the plot. This stops main.py's own
  loop first, as any mpremote command does; the board is reset afterwards so main.py runs
  again.

Virtual boards only: nothing here belongs near a patient. The load and the speed are set
in the board's control file (hands in by default).
"""

import json
import os
import sys
import time
from pathlib import Path

from tools.remote import mpremote

COLUMNS = ("t_s", "state", "target_ua", "measured_ua", "true_ua", "electrode_mv", "enabled",
           "limited", "peak_ua")

ON_BOARD = r"""
import json
import board, main, profiles
import session as _sm
import safety as _sf
from hal import Hal
from calibration import Calibration
from controller import Controller
_hw = board.build(watchdog=True)
_hal = Hal(_hw, board, Calibration())
_c = Controller(_hal, board)
_c.start(profiles.Profile(target_ua=%(target_ua)d, duration_s=%(duration_s)d,
                          ramp_up_s=%(ramp_up_s)d, ramp_down_s=%(ramp_down_s)d))
_p = _hw.plant
_s = _c.session
_n = 0
_stopped = False
_pk = [0.0]
def _peak():
    if _p.peak_ua > _pk[0]:
        _pk[0] = _p.peak_ua
print('SESSION START')
while True:
    main.run(_c, board.ticks_us, board.sleep_us, poll=_peak, max_steps=%(every)d)
    _n += %(every)d
    print('ROW %%d %%s %%d %%d %%d %%d %%d %%d %%d' %% (_n, _sm.NAMES[_s.state], _s.sp_ua, _c.i_ua,
          int(_p.true_ua), _c.v_mv, 1 if _hal.enabled else 0, 1 if _p.limited else 0,
          int(_pk[0])))
    _pk[0] = 0.0
    if %(stop_ms)d >= 0 and not _stopped and _s.elapsed_ms >= %(stop_ms)d:
        _c.stop()
        _stopped = True
    if _s.state == _sm.DONE or _s.state == _sm.FAULT:
        break
print('SESSION END ' + json.dumps({'state': _sm.NAMES[_s.state],
      'end_reason': _sm.END_NAMES[_s.end_reason], 'fault': _sf.NAMES[_c.safety.fault],
      'elapsed_ms': _s.elapsed_ms, 'charge_uamin': _s.charge_uamin, 'pauses': _s.pauses,
      'steps': _n, 'hal_enabled': _hal.enabled, 'ref_code': _hal.ref_code}))
"""


class SessionResult:
    def __init__(self):
        self.rows = []
        self.end = None
        self.started = False
        self.wall_s = None
        self.error = None

    @property
    def ok(self):
        return (self.end is not None and self.end.get("state") == "DONE"
                and self.end.get("fault") == "ok" and self.error is None)




def parse_event(text):
    """"100:skin_ohm=1200,contact=true" -> (100.0, {"skin_ohm": 1200.0, "contact": True})."""
    try:
        t, _, rest = text.partition(":")
        changes = {}
        for item in rest.split(","):
            k, _, v = item.partition("=")
            k = k.strip()
            v = v.strip().lower()
            if not k or not v:
                raise ValueError(item)
            changes[k] = True if v == "true" else False if v == "false" else float(v)
        return float(t), changes
    except ValueError:
        raise ValueError("bad event %r (want T:key=value[,key=value], e.g. 180:contact=false)"
                         % text)


def run_session(vb, target_ma=15.0, duration_s=300, ramp_up_s=30, ramp_down_s=15,
                stop_after_s=None, speed=30.0, every=20, progress=None, reset_after=True,
                timeout=None, load=None, events=()):
    """Run one session on the running VirtualBoard `vb`; returns a SessionResult.

    load: control-file settings at the start (default: hands in). events: [(t_s, settings)]
    written to the control file once the board's rows pass t_s (the board reads the file
    every 0.2 s of wall time, so at speed S an event lands up to 0.2*S s late).
    """
    st = vb.state()
    if not st:
        raise RuntimeError("virtual board %s is not running" % vb.name)
    period_s = 0.005
    vb.set_load(**dict({"contact": True}, **(load or {}), speed=speed))
    pending = sorted(events, key=lambda e: e[0])
    code = ON_BOARD % {
        "target_ua": int(round(target_ma * 1000)), "duration_s": duration_s,
        "ramp_up_s": ramp_up_s, "ramp_down_s": ramp_down_s, "every": every,
        "stop_ms": -1 if stop_after_s is None else int(stop_after_s * 1000)}
    total_s = (duration_s if stop_after_s is None else stop_after_s) + ramp_up_s + ramp_down_s + 30
    if timeout is None:
        timeout = 60.0 + (total_s / speed if speed else total_s / 20.0) * 3
    res = SessionResult()
    shown = [-1e9]

    def on_line(line):
        parts = line.split()
        if line.startswith("SESSION START"):
            res.started = True
        elif len(parts) == 10 and parts[0] == "ROW":
            row = (int(parts[1]) * period_s, parts[2]) + tuple(int(x) for x in parts[3:])
            res.rows.append(row)
            while pending and row[0] >= pending[0][0]:
                t_ev, changes = pending.pop(0)
                vb.set_load(**changes)
                if progress:
                    progress("  t=%6.1f s  load: %s" % (row[0], ", ".join(
                        "%s=%s" % kv for kv in sorted(changes.items()))))
            if progress and (row[0] - shown[0] >= 5.0 or row[1] in ("DONE", "FAULT")):
                shown[0] = row[0]
                progress("  t=%6.1f s  %-12s target %5.2f mA  measured %5.2f mA  true %5.2f mA"
                         "  electrode %5.1f V" % (row[0], row[1], row[2] / 1000.0,
                                                  row[3] / 1000.0, row[4] / 1000.0,
                                                  row[5] / 1000.0))
        elif line.startswith("SESSION END "):
            try:
                res.end = json.loads(line[len("SESSION END "):])
            except ValueError:
                res.error = "bad end line %r" % line

    t0 = time.monotonic()
    r = mpremote(st["port"], ["exec", code], timeout=timeout, on_line=on_line)
    res.wall_s = time.monotonic() - t0
    if not r.ok:
        res.error = r.reason()
    elif res.end is None:
        res.error = "no end line from the board: %r" % r.out[-300:]
    if reset_after:
        mpremote(st["port"], ["reset"], timeout=15, resume=True)
    return res


def run_session_protocol(vb, target_ma=15.0, duration_s=300, ramp_up_s=30, ramp_down_s=15,
                         stop_after_s=None, speed=30.0, progress=None, load=None, events=(),
                         tel_hz=10, timeout=None):
    """The same session through the host protocol (tools/client.py) and main.py's loop.

    Rows: (t_s, state, sp_ua, i_ua, None, v_mv, enabled, limited, None) from the telemetry, t_s
    in board time since the start command. res.end: the final `status` reply.
    """
    from tools.client import Client
    st = vb.state()
    if not st:
        raise RuntimeError("virtual board %s is not running" % vb.name)
    vb.set_load(**dict({"contact": True}, **(load or {}), speed=speed))
    pending = sorted(events, key=lambda e: e[0])
    total_s = (duration_s if stop_after_s is None else stop_after_s) + ramp_up_s + ramp_down_s + 30
    if timeout is None:
        timeout = 60.0 + (total_s / speed if speed else total_s / 20.0) * 3
    res = SessionResult()
    t_wall = time.monotonic()
    with Client(st["port"], timeout=10.0) as dev:
        res.identify = _await_identify(dev, timeout=30.0)
        dev.sync_time()
        dev.set_telemetry(True, hz=tel_hz)
        dev.start(target_ua=int(round(target_ma * 1000)), duration_s=duration_s,
                  ramp_up_s=ramp_up_s, ramp_down_s=ramp_down_s)
        res.started = True
        t0 = None
        shown = -1e9
        stopped = False
        state = None
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                for msg in dev.read_telemetry(0.2):
                    if msg.get("t") != "tel":
                        continue
                    if t0 is None:
                        t0 = msg["ms"]
                    t = (msg["ms"] - t0) / 1000.0
                    changed = msg["state"] != state
                    state = msg["state"]
                    row = (t, state, msg["sp_ua"], msg["i_ua"], None, msg["v_mv"],
                           1 if msg["sp_ua"] else 0, 1 if msg["lim"] else 0, None)
                    res.rows.append(row)
                    while pending and t >= pending[0][0]:
                        vb.set_load(**pending.pop(0)[1])
                    if progress and (t - shown >= 5.0 or changed):
                        shown = t
                        progress("  t=%6.1f s  %-12s setpoint %5.2f mA  measured %5.2f mA"
                                 "  electrode %5.1f V" % (t, state, msg["sp_ua"] / 1000.0,
                                                          msg["i_ua"] / 1000.0,
                                                          msg["v_mv"] / 1000.0))
                    if state in ("DONE", "FAULT"):
                        break
                if (stop_after_s is not None and not stopped and res.rows
                        and res.rows[-1][0] >= stop_after_s):
                    dev.stop()
                    stopped = True
                if state in ("DONE", "FAULT"):
                    break
            else:
                res.error = "no end within %.0f s" % timeout
        finally:
            dev.set_telemetry(False)
            res.end = dev.status()
    res.wall_s = time.monotonic() - t_wall
    return res


def _await_identify(dev, timeout):
    """identify, retried: a board that was just reset (flash ends with one) drops what
    reached it before the reset, and answers once main.py runs."""
    from tools.client import Timeout
    deadline = time.monotonic() + timeout
    while True:
        dev.drain()
        try:
            return dev.request("identify", timeout=1.0)
        except Timeout:
            if time.monotonic() > deadline:
                raise


def write_outputs(res, out_dir, prefix, target_ua, profile, every_s):
    """Trace CSV, summary JSON and plot PNG; returns (summary dict, paths)."""
    from tools import summary as summ_mod
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trace = out / (prefix + "_trace.csv")
    with open(trace, "w") as f:
        f.write(",".join(COLUMNS) + "\n")
        for row in res.rows:
            f.write("%.3f,%s,%d,%d,%d,%d,%d,%d,%d\n" % row)
    end = res.end or {}
    summ = summ_mod.summarize(res.rows, COLUMNS, every_s, target_ua,
                              fault=None if end.get("fault") in (None, "ok") else end["fault"],
                              end_reason=end.get("end_reason"), wall_time_s=res.wall_s,
                              profile=profile, scenario="virtual board session")
    summ["board"] = end
    summary = out / (prefix + "_summary.json")
    summary.write_text(json.dumps(summ, indent=1) + "\n")
    png = out / (prefix + ".png")
    from tools import trace_plot
    data = {c: [r[i] for r in res.rows] for i, c in enumerate(COLUMNS)}
    trace_plot.plot(data, str(png), title="Treatment on the virtual board",
                    target_ua=target_ua,
                    subtitle="firmware running on MicroPython (unix port), rows every %.0f ms"
                    % (every_s * 1000))
    return summ, (trace, summary, png)


def add_arguments(p):
    p.add_argument("--via", choices=("exec", "protocol"), default="exec",
                   help="exec: mpremote exec, rows with the plant's true current, plot "
                   "(default); protocol: main.py's loop through the host line protocol")
    p.add_argument("--target-ma", type=float, default=15.0)
    p.add_argument("--duration-s", type=int, default=300)
    p.add_argument("--ramp-up-s", type=int, default=30)
    p.add_argument("--ramp-down-s", type=int, default=15)
    p.add_argument("--stop-after-s", type=float, default=None,
                   help="the user stops after this much treatment time (default: full length)")
    p.add_argument("--speed", type=float, default=30.0,
                   help="virtual seconds per wall second (0: as fast as it runs)")
    p.add_argument("--skin-ohm", type=float, default=None, help="skin resistance at the start")
    p.add_argument("--event", action="append", default=[], metavar="T:KEY=VALUE[,...]",
                   help="change the load at T s (repeatable), e.g. 180:contact=false")
    p.add_argument("--out", default="out", help="folder for the trace, summary and plot")
    p.add_argument("--prefix", default="board_session")


def main_from_args(ns):
    from tools import summary as summ_mod
    from emulators.vboard import VirtualBoard
    vb = VirtualBoard(ns.name)
    if not vb.running:
        print("virtual board %s is not running (make sim; make flash)" % ns.name, file=sys.stderr)
        return 2
    print("session on virtual board %s: %g mA, %d s, ramps %d/%d s%s, speed %s" % (
        ns.name, ns.target_ma, ns.duration_s, ns.ramp_up_s, ns.ramp_down_s,
        "" if ns.stop_after_s is None else ", stopped after %g s" % ns.stop_after_s,
        "max" if not ns.speed else "%gx" % ns.speed))
    try:
        events = [parse_event(e) for e in ns.event]
    except ValueError as e:
        print("session: %s" % e, file=sys.stderr)
        return 2
    load = {} if ns.skin_ohm is None else {"skin_ohm": ns.skin_ohm}
    if ns.via == "protocol":
        return _main_protocol(vb, ns, load, events)
    res = run_session(vb, ns.target_ma, ns.duration_s, ns.ramp_up_s, ns.ramp_down_s,
                      ns.stop_after_s, ns.speed, progress=print, load=load, events=events)
    if not res.rows:
        print("session: FAILED: %s" % (res.error or "no rows"), file=sys.stderr)
        return 1
    profile = {"target_ma": ns.target_ma, "duration_s": ns.duration_s,
               "ramp_up_s": ns.ramp_up_s, "ramp_down_s": ns.ramp_down_s,
               "reverse_polarity": False}
    summ, paths = write_outputs(res, ns.out, ns.prefix, int(ns.target_ma * 1000), profile, 0.1)
    print(summ_mod.format_text(summ))
    for p in paths:
        print("wrote %s" % os.path.relpath(p))
    if not res.ok:
        print("session: did not end cleanly: %s" % (res.error or res.end), file=sys.stderr)
        return 1
    return 0


def _main_protocol(vb, ns, load, events):
    try:
        res = run_session_protocol(vb, ns.target_ma, ns.duration_s, ns.ramp_up_s,
                                   ns.ramp_down_s, ns.stop_after_s, ns.speed, progress=print,
                                   load=load, events=events)
    except Exception as e:          # the client's errors: refused start, timeout, garbage
        print("session: FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    trace = out / (ns.prefix + "_protocol_trace.csv")
    with open(trace, "w") as f:
        f.write("t_s,state,sp_ua,measured_ua,electrode_mv,enabled,limited\n")
        for r in res.rows:
            f.write("%.3f,%s,%d,%d,%d,%d,%d\n" % (r[0], r[1], r[2], r[3], r[5], r[6], r[7]))
    status = out / (ns.prefix + "_protocol_status.json")
    status.write_text(json.dumps({"identify": getattr(res, "identify", None),
                                  "final_status": res.end, "rows": len(res.rows),
                                  "wall_s": res.wall_s, "error": res.error}, indent=1) + "\n")
    end = res.end or {}
    print("session over the protocol: %s, end reason %s, fault %s, charge %s uA*min, "
          "%d telemetry rows in %.1f s" % (end.get("state"), end.get("end") or "-",
                                           end.get("fault"), end.get("charge_uamin"),
                                           len(res.rows), res.wall_s))
    for p in (trace, status):
        print("wrote %s" % os.path.relpath(p))
    if res.error or end.get("state") != "DONE" or end.get("fault") != "ok":
        print("session: did not end cleanly: %s" % (res.error or end), file=sys.stderr)
        return 1
    return 0
