"""Benchmark on the emulated Raspberry Pi Pico: the firmware's loop timing and heap, state by
state, and the flash / check times, measured on the real MicroPython rp2 image in rp2040js.

    python -m tools.bench_pico [--quick] [--keep] [--port PORT]      (make bench runs it)

Starts a fresh emulated Pico (build/vpico/bench), flashes it from this checkout (timed),
re-flashes it unchanged (timed: must send nothing), checks it (timed), provisions it as a
technician would (emulators/vpico/provision.py; flashed as .mpy, MPY=1: compiled on the
host, the firmware's imports leave the board's heap far less fragmented, and the
benchmark script itself needs room beside the firmware), puts the hands in (the plant on its
pins), then runs the on-board loop benchmark tools/pico_bench/bench.py through mpremote:
main.run's loop with boards/pico.py, telemetry at 10 Hz, through every state, once
quietly and once with a host flooding the input (an in-board reader), and once with 5
minutes of treatment and a host on the USB port asking status twice a second (board
time), for the heap and the cost of USB input. Prints one table per run against
the goals of issue 11:
    tick p99 + poll p99 <= 2,500 µs (half the 5 ms period) in every state,
    0 late periods and 0 overruns where current may flow, 0 bytes allocated per step
    and per poll of a session (main.run locks the heap for every step, and the app for
    a session's polls, flood or not: a byte allocated would stop the run or refuse a
    request E_BUSY; only a session's start, its numbering, checkpoints and end, and a
    line that is not quick, are read or answered unlocked, counted as event polls),
    largest free block >= 32 KB after 5 minutes of treatment, no session faulted.
Last, the board boots as a patient's does (main.py, no benchmark script in its RAM) and a
5-minute treatment at 15 mA is driven over the line protocol, with telemetry at 10 Hz and
`status` twice a second; the firmware's own figures in `status` (late periods, the safety
monitor's overruns, the largest free block it measures between sessions) are printed
against the same goals. That largest block is the heap goal's figure on a real boot; the
on-board runs' figure is lower by the benchmark script's own ~22 KB.
The emulated flash takes the W25Q16JV's typical program and erase times (a write stalls
the CPU: emulators/vpico/spiflash.mjs).
--quick: 20 s of treatment instead of 120 s, no 5-minute soak, 30 s on the real boot
(a smoke run).
--flash-timing max: the flash's worst-case times (400 ms per 4 KB erase), e.g. to see that
the watchdog (boards/pico.py WDT_TIMEOUT_MS) outlasts the log's writes.
--port: a running board instead (emulated or real; it must be flashed and calibrated).
Emulated times are a lower bound: rp2040js models no flash cache or bus latency.
The emulator runs at roughly 0.2-0.6 emulated seconds per wall second; the full run takes
about 30 minutes of wall time.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "tools" / "pico_bench" / "bench.py"
GOAL_SUM_US = 2500
GOAL_LARGEST = 32 * 1024
# the states in which current may flow: the late-period goal applies there (in the others
# the output is off, and a session's start, its log record and a flood's requests are
# let take longer than a period: the record's flash write stalls the CPU ~50-150 ms)
CURRENT_STATES = ("RAMP_UP", "TREAT_DC", "TREAT_PULSED", "TREAT_DOSE", "REVERSE", "RAMP_DOWN")
# no session runs: polls with work that allocates (a record, the heap measured, a
# request that is not quick) run unlocked, the collector on (app.py `_idle_may_lock`)
OPEN_STATES = ("IDLE", "DONE", "FAULT")


def _run(argv, timeout):
    t0 = time.monotonic()
    r = subprocess.run(argv, cwd=str(ROOT), capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def _tool(name, *args, timeout=900):
    return _run([sys.executable, "-m", "tools." + name] + list(args), timeout)


class BenchOutput:
    """The bench script's output, fed byte by byte (`feed`, as mpremote's follow gives it):
    its {"bench": ...} lines in `rows`; with `status_every` > 0 a host that writes a
    `status` request to `write` after every that many telemetry lines and counts, in
    `host`, the requests sent, the replies with their ids, and E_BUSY refusals."""

    ID0 = 900000          # the host's ids: ID0 + 1, ID0 + 2, ...

    def __init__(self, write=None, status_every=0):
        self.rows = []
        self.tel = 0
        self.host = {"sent": 0, "answered": 0, "busy": 0} if status_every > 0 else None
        self._every = status_every
        self._write = write
        self._line = bytearray()

    def feed(self, b):
        if b != b"\n":
            self._line.extend(b)
            return
        text = self._line.decode("utf-8", "replace").strip()
        self._line[:] = b""
        if not text.startswith("{"):
            return
        try:
            row = json.loads(text)
        except ValueError:
            return
        if isinstance(row, dict):
            self._row(row)

    def _row(self, row):
        host = self.host
        if "bench" in row:
            self.rows.append(row)
        elif row.get("t") == "tel":
            self.tel += 1
            if host is not None and self.tel % self._every == 0:
                host["sent"] += 1
                self._write(b'{"id":%d,"cmd":"status"}\n' % (self.ID0 + host["sent"]))
        elif host is not None and isinstance(row.get("id"), int) and row["id"] > self.ID0:
            host["answered"] += 1
        elif host is not None and (row.get("error") or {}).get("code") == "E_BUSY":
            host["busy"] += 1        # refused for the heap (protocol.busy: id null)


def on_board(port, settings, timeout, host_status_every=0):
    """Run bench.py on the board with BENCH = settings; (the {"bench": ...} rows, host),
    host: {"sent", "answered", "busy"} status requests of the USB host, or None.

    host_status_every > 0: a host on the board's USB port sends `status` after every
    that many telemetry lines (telemetry at 10 Hz: 5 is twice a second of board time),
    read by the firmware's own HostIO from USB as on a patient's board (bench.py's
    `status_hz` serves its requests from an in-board reader instead, which skips the USB
    stack). The run goes through mpremote's serial transport: raw REPL, the script
    pasted, its output followed line by line. `timeout`: wall seconds without output.
    Raises RuntimeError when the port cannot be opened or the script prints nothing."""
    from mpremote.transport_serial import SerialTransport, TransportError
    # a0: the heap in use before the script, for its own footprint (bench.py's OWN)
    code = "import gc\ngc.collect()\nBENCH = %r\nBENCH['a0'] = gc.mem_alloc()" % (settings,)
    try:
        t = SerialTransport(port, baudrate=115200)
    except Exception as e:
        raise RuntimeError("cannot open %s: %s" % (port, e))
    out = BenchOutput(t.serial.write, host_status_every)
    try:
        t.enter_raw_repl(soft_reset=True)
        t.exec(code)
        t.exec_raw_no_follow(BENCH.read_text())
        _, err = t.follow(timeout, out.feed)
        t.exit_raw_repl()
    except TransportError as e:
        raise RuntimeError("the on-board benchmark on %s: %s" % (port, e))
    finally:
        t.close()
    err = err.decode("utf-8", "replace").strip()
    if err:
        print(err, file=sys.stderr)
    if not out.rows:
        raise RuntimeError("the on-board benchmark printed nothing%s" % (
            ": " + err if err else ""))
    return out.rows, out.host


def real_boot(port, vp, treat_s, target_ua=15000, tel_hz=10, status_every_s=0.5, log=print):
    """A treatment on a real boot, measured by the firmware itself through `status`.

    The board boots as a patient's does (main.py: no benchmark script in its RAM), then
    the line protocol drives it as a host would: telemetry at `tel_hz`, `start` with
    `target_ua` (µA), `stop` after `treat_s` seconds of treatment (board time; ramps: the
    prescription's), `status` every `status_every_s` seconds of board time (telemetry's
    clock) until the session is over, then `status` until the firmware has measured its
    largest free block again (health.py: once the session's record is written). `vp`: an emulated board
    (hard_reset: the Pico's power cycle, the virtual board's restart), or None for a real
    board on `port` (machine.reset through mpremote).
    Returns {"before": status, "first": the first status after `start` (the baseline of
    the session's figures: the start's own poll, a collection with the output off, is
    late by design), "treat": the last status in TREAT, "after": status with
    the block measured after the session, "statuses": requests answered, "tel": telemetry
    lines read}. Raises tools.client errors, RuntimeError on a board that does not end."""
    from tools import cli
    from tools.remote import mpremote
    if vp is not None:
        vp.hard_reset()
    else:
        mpremote(port, ["exec", "import machine\nmachine.reset()"], timeout=20)
    dev, _, _ = cli.connect(port, timeout=180)
    dev.timeout = 30.0
    out = {"statuses": 0, "tel": 0}
    try:
        dev.sync_time()
        out["before"] = _largest_after(dev, -1, out)
        dev.set_telemetry(True, tel_hz)
        dev.request("start", target_ua=target_ua)       # the prescription's duration
        out["first"] = dev.status()      # the baseline: after the start's own poll
        out["statuses"] += 1
        stopped = False
        deadline = time.monotonic() + treat_s * 20 + 600   # the emulator: >= 0.1x real time
        shown = -60
        while True:
            st = dev.status()
            out["statuses"] += 1
            out["tel"] += len(dev.telemetry)
            dev.telemetry.clear()
            if st["state"] == "TREAT":
                out["treat"] = st
                if st["elapsed_s"] - shown >= 60:
                    shown = st["elapsed_s"]
                    log("    TREAT %d of %d s, %d µA (board time)" % (
                        st["elapsed_s"], treat_s, st["i_ua"]))
                if st["elapsed_s"] >= treat_s and not stopped:
                    dev.stop()                              # it ramps down to DONE
                    stopped = True
            if st["state"] in ("DONE", "FAULT", "IDLE"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the session did not end within %.0f s wall; last status %s"
                                   % (treat_s * 20 + 600, st))
            _wait_board_ms(dev, int(status_every_s * 1000), out)
        out["end"] = st
        # measured once the session's record is written: after its last status in a
        # session (the end's own status may come after it, in the same second)
        out["after"] = _largest_after(dev, out.get("treat", out["first"])["uptime_s"], out)
    finally:
        cli.close_quietly(dev)
    return out


def _wait_board_ms(dev, ms, out, timeout=60):
    """Read telemetry until the board's clock (its lines' `ms`) has moved `ms` on from the
    first line read: a host's pace in board time (an emulated board runs slower than real
    time, so a pace in wall time would be a faster host there). Wall `timeout` s."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in dev.read_telemetry(0.02):
            out["tel"] += 1
            if first is None:
                first = t["ms"]
            elif t["ms"] - first >= ms:
                dev.telemetry.clear()
                return
    dev.telemetry.clear()


def _largest_after(dev, uptime_s, out, timeout=600):
    """The first status whose largest free block was measured at or after board uptime
    `uptime_s` (s): the board measures it at boot and once a session's record is written
    (health.py)."""
    deadline = time.monotonic() + timeout
    while True:
        st = dev.status()
        out["statuses"] += 1
        if st["heap_largest_s"] >= uptime_s and st["heap_largest"] >= 0:
            return st
        if time.monotonic() > deadline:
            raise RuntimeError("the board measured no largest free block within %d s: %s"
                               % (timeout, st))
        time.sleep(1.0)


def real_boot_table(title, r):
    """Print the real-boot run's figures against the goals; True when all are met."""
    b, t, a, e = r["before"], r.get("treat") or {}, r["after"], r["end"]
    f = r.get("first") or b
    ended = e["state"] == "DONE" and e["end"] in ("completed", "stopped") and e["fault"] == "ok"
    late_treat = t.get("loop_late", f["loop_late"]) - f["loop_late"]
    over_treat = t.get("overruns", f["overruns"]) - f["overruns"]
    largest = a["heap_largest"]
    print("\n%s" % title)
    rows = (
        ("session", "%s, end %s, fault %s, %d s of treatment" % (
            e["state"], e["end"] or "-", e["fault"], e["elapsed_s"]),
         "completed or stopped", ended),
        ("the start's own poll (a collection, then the session's start; output off)",
         "%d late, %d overruns" % (f["loop_late"] - b["loop_late"],
                                    f["overruns"] - b["overruns"]), "-", True),
        ("late periods, the session's first status to its last in TREAT", "%d" % late_treat,
         "0", late_treat == 0),
        ("overruns (safety monitor), the session's first status to its last in TREAT",
         "%d (%d since boot: flash writes and heap searches with the output off included)"
         % (over_treat, a["overruns"]), "0", over_treat == 0),
        ("worst period since boot", "%d µs (the log record's flash write after the session "
         "included)" % a["loop_worst_us"], "-", True),
        ("largest free block, before", "%d B (free %d B)" % (b["heap_largest"], b["heap_free"]),
         "-", True),
        ("largest free block, after the session", "%d B (free %d B)" % (largest, a["heap_free"]),
         ">= %d B" % GOAL_LARGEST, largest >= GOAL_LARGEST),
        ("host traffic", "%d status requests, %d telemetry lines" % (r["statuses"], r["tel"]),
         "-", True),
    )
    w = max(len(x[0]) for x in rows)
    for name, val, goal, ok in rows:
        print("  %s  %s%s" % (name.ljust(w), val, "" if goal == "-" else
                                "  (goal %s: %s)" % (goal, "met" if ok else "MISSED")))
    return all(x[3] for x in rows)


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.1f" % v
    return str(v)


def table(title, rows):
    states = [r for r in rows if r["bench"] != "summary"]
    summary = next((r for r in rows if r["bench"] == "summary"), {})
    print("\n%s" % title)
    head = ("state", "periods", "tick p50/p99 µs", "poll p50/p99 µs", "p99 sum µs",
            "period p50/max µs", "late", "overruns", "heap-locked polls", "goal")
    lines = [head]
    for r in states:
        s = (r.get("tick_p99") or 0) + (r.get("poll_p99") or 0)
        ok = s <= GOAL_SUM_US
        if r["bench"] in CURRENT_STATES:    # elsewhere the output is off: a late period
            ok = ok and not r.get("late") and not r.get("overruns")   # harms nobody
        locked = r["bench"] not in OPEN_STATES
        if locked:      # a session's polls ran heap-locked (0 bytes each) or unlocked by design
            ok = ok and not summary.get("alloc_error") and not summary.get("busy_lines") and \
                (r.get("locked") or 0) + (r.get("event_polls") or 0) == r.get("n")
        lines.append((r["bench"], _fmt(r.get("n")),
                      "%s / %s" % (_fmt(r.get("tick_p50")), _fmt(r.get("tick_p99"))),
                      "%s / %s" % (_fmt(r.get("poll_p50")), _fmt(r.get("poll_p99"))),
                      str(s), "%s / %s" % (_fmt(r.get("period_p50")), _fmt(r.get("period_max"))),
                      _fmt(r.get("late")), _fmt(r.get("overruns")),
                      _fmt(r.get("locked")), "met" if ok else "MISSED"))
    widths = [max(len(str(x[i])) for x in lines) for i in range(len(head))]
    for k, x in enumerate(lines):
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(x, widths)))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))
    if summary:
        keys = [k for k in summary if k != "bench"]
        print("  summary: " + ", ".join("%s %s" % (k, _fmt(summary[k])) for k in keys))
        faults = summary.get("faults")
        if faults is not None:
            print("  sessions that faulted: %d (goal: none)%s" % (
                len(faults), ": " + ", ".join(faults) + " MISSED" if faults else ", met"))
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.bench_pico", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short treatment, no soak")
    ap.add_argument("--keep", action="store_true", help="leave the emulated Pico running")
    ap.add_argument("--port", help="a running, flashed, calibrated board instead")
    ap.add_argument("--flash-timing", choices=("typical", "max", "none"), default="typical",
                    help="the emulated flash's program and erase times (W25Q16JV datasheet: "
                         "typical, or the worst case a chip may take; none: zero time)")
    ns = ap.parse_args(argv)
    import tools.paths  # noqa: F401
    from emulators.vpico import PicoError, VirtualPico
    from emulators.vpico.provision import provision
    print("Emulated RP2040 (MicroPython 1.28.0 rp2 image in rp2040js 1.4.1, boards/pico.py; "
          "flash times: %s)" % ns.flash_timing)
    vp = None
    port = ns.port
    try:
        if port is None:
            vp = VirtualPico("bench")
            vp.stop()
            t0 = time.monotonic()
            try:
                st = vp.start(owner=os.getpid(), fresh=True,   # never outlives this run
                              runner_args=("--flash-timing", ns.flash_timing))
            except PicoError as e:
                print("bench_pico: %s" % e, file=sys.stderr)
                return 1
            port = st["port"]
            print("  boot to USB enumerated: %.1f s wall" % (time.monotonic() - t0))
            r, t = _tool("flash", "--port", port, "--board", "pico", "--mpy")
            if r.returncode:
                print(r.stdout + r.stderr, file=sys.stderr)
                return 1
            print("  flash from a fresh clone: %.1f s wall (%s)" % (
                t, next((ln.strip() for ln in r.stdout.splitlines() if "verified" in ln), "")))
            r, t = _tool("flash", "--port", port, "--board", "pico", "--mpy")
            sent = "nothing sent" in r.stdout
            print("  re-flash, nothing changed: %.1f s wall, %s" % (
                t, "no file sent" if sent else "FILES SENT (goal: none)"))
            provision(vp, port)
            r, t = _tool("check", "--port", port)
            print("  check: %.1f s wall, %s" % (t, r.stdout.strip().splitlines()[-1]))
            vp.set_load(contact=True, skin_ohm=1500.0, water_ohm=100.0)
        treat = 20 if ns.quick else 120
        runs = [("quiet host, telemetry 10 Hz, %d s of treatment" % treat,
                 {"flood": 0, "tel_hz": 10, "treat_s": treat}),
                ("a host flooding the input, telemetry 10 Hz",
                 {"flood": 1, "tel_hz": 10, "treat_s": treat})]
        if not ns.quick:
            runs.append(("5 minutes of treatment, telemetry 10 Hz, a host on USB asking "
                         "status twice a second (heap)",
                         {"flood": 0, "tel_hz": 10, "treat_s": 120, "soak_s": 180}))
        for title, settings in runs:
            t0 = time.monotonic()
            every = 5 if "host on USB" in title else 0
            rows, host = on_board(port, settings, timeout=600, host_status_every=every)
            summary = table("%s  (%.0f s wall)" % (title, time.monotonic() - t0), rows)
            if host is not None:
                print("  USB host: %d status sent, %d answered, %d refused E_BUSY (goal: all "
                      "answered): %s" % (host["sent"], host["answered"], host["busy"],
                                         "met" if host["answered"] == host["sent"] and
                                         not host["busy"] else "MISSED"))
            largest = summary.get("heap_largest_after_gc")
            if settings.get("soak_s") and largest is not None:
                print("  largest free block after 5 min: %d B (goal >= %d): %s" % (
                    largest, GOAL_LARGEST, "met" if largest >= GOAL_LARGEST else "MISSED"))
        soak = 30 if ns.quick else 300
        title = ("a real boot (main.py), %d s of treatment at 15 mA driven over the protocol: "
                 "telemetry 10 Hz, status twice a second" % soak)
        t0 = time.monotonic()
        r = real_boot(port, vp, soak)
        real_boot_table("%s  (%.0f s wall)" % (title, time.monotonic() - t0), r)
        return 0
    finally:
        if vp is not None and not ns.keep:
            vp.stop()


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
