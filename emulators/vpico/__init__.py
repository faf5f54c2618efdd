"""The emulated Raspberry Pi Pico: start, find, reset, power-cut and stop it; set its load.

The real MicroPython rp2 image (image/, vendored with its provenance and sha256) runs in
the rp2040js RP2040 emulator (runner.mjs, Node), with the plant model on the pins of
boards/pico.py's front-end (frontend.mjs + plant_pins.py) and its USB serial port on a
pty (bridge.py). mpremote and every tool in tools/ reach it as they reach a Pico on
/dev/ttyACM0. See docs/emulated_pico.md.

Each board has a state folder (default build/vpico/NAME): flash.bin (its 2 MB flash,
kept across resets and restarts), plant.json (the load: boards/sim.py's keys), true.csv
(the recording of the plant's true current), meter.json, state.json (while it runs),
bridge.log, and tty (a link to the port).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from emulators import board
from emulators.board import EmulatedBoard

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_ROOT = REPO_ROOT / "build" / "vpico"
DEFAULT_NAME = "pico"
NODE_MIN = 18
RP2040JS = "1.4.1"
BOOT_TIMEOUT_S = 120.0     # wall time from start to the USB port enumerated (busy host)


class PicoError(RuntimeError):
    """The emulated Pico could not be started, found or controlled; str() says why and
    what to do."""


def check_prerequisites(node="node", root=REPO_ROOT):
    """Raise PicoError naming the fix when Node.js or rp2040js (under `root`) is missing."""
    exe = shutil.which(node)
    if exe is None:
        raise PicoError("Node.js (%s) is not on PATH: install Node.js %d or newer "
                        "(e.g. apt install nodejs npm), then run `make node`" % (node, NODE_MIN))
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
        major = int(out.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        raise PicoError("%s --version did not answer as Node.js" % exe)
    if major < NODE_MIN:
        raise PicoError("Node.js %s is too old: the emulator needs %d or newer" % (out, NODE_MIN))
    pkg = Path(root) / "node_modules" / "rp2040js" / "package.json"
    try:
        version = json.loads(pkg.read_text())["version"]
    except (OSError, ValueError, KeyError):
        raise PicoError("rp2040js is not installed: run `make node` (npm ci) at the "
                        "repository root")
    if version != RP2040JS:
        raise PicoError("rp2040js %s is installed, the emulator needs %s (package-lock.json): "
                        "run `make node`" % (version, RP2040JS))


class VirtualPico(EmulatedBoard):
    """An emulated Pico (running or not), by its state folder."""

    BOARD = "pico"             # the board file it runs
    KIND = "emulated Pico"
    # tools wait this much longer for it (an emulated second takes 2-5 wall seconds, and
    # booting the firmware from .py sources takes ~4 emulated seconds)
    TIMEOUT_SCALE = 4.0

    def __init__(self, name=DEFAULT_NAME, state_dir=None):
        EmulatedBoard.__init__(self, name, state_dir or STATE_ROOT / name)
        self.flash_file = self.state_dir / "flash.bin"
        self.recording = self.state_dir / "true.csv"

    def died(self):
        """Why the emulator last died (DIR/died.txt), or None."""
        try:
            return (self.state_dir / "died.txt").read_text().strip()
        except OSError:
            return None

    # ---- life ----------------------------------------------------------------------------
    def start(self, owner=None, fresh=False, seed=1, runner_args=(), timeout=BOOT_TIMEOUT_S,
              progress=None):
        """Start the board and wait until its USB port enumerated; returns the state.
        Already running: its state. `fresh`: erase its flash first (a blank Pico with
        MicroPython). PicoError if it cannot start, with the emulator's own words."""
        st = self.state()
        if st and st.get("ready"):
            return st
        if st is None:
            check_prerequisites()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            if fresh:
                self.flash_file.unlink(missing_ok=True)
            argv = [sys.executable, "-m", "emulators.vpico.bridge", "--state", str(self.state_dir),
                    "--seed", str(seed)]
            if owner is not None:
                argv += ["--owner", str(owner)]
            if runner_args:
                argv += ["--"] + list(runner_args)
            log = open(self.state_dir / "bridge.log", "ab")
            try:
                proc = subprocess.Popen(argv, cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=log, start_new_session=True)
            finally:
                log.close()
        else:
            proc = None
        return self._wait_ready(proc, timeout, progress)

    def _wait_ready(self, proc, timeout, progress):
        t0 = time.monotonic()
        said = 0
        while time.monotonic() - t0 < timeout:
            st = self.state()
            if st and st.get("ready"):
                return st
            if proc is not None and proc.poll() is not None:
                why = self.died() or self._log_tail()
                raise PicoError("emulated Pico %s did not start (exit %s): %s"
                                % (self.name, proc.returncode, why))
            if progress and time.monotonic() - t0 >= said + 10:
                said += 10
                progress("  ... booting the emulated Pico (%d s)" % said)
            time.sleep(0.05)
        if proc is not None:
            proc.terminate()
        raise PicoError("emulated Pico %s: its USB port did not enumerate within %d s; see %s"
                        % (self.name, timeout, self.state_dir / "bridge.log"))

    def _log_tail(self, n=1500):
        try:
            return (self.state_dir / "bridge.log").read_text(errors="replace")[-n:].strip()
        except OSError:
            return "(no log)"

    def power_cycle(self, timeout=BOOT_TIMEOUT_S):
        """Cut the power and restore it (the flash keeps what was written); waits for the
        USB port to enumerate again."""
        st = self.state()
        if not st:
            raise PicoError("emulated Pico %s is not running" % self.name)
        os.kill(st["pid"], signal.SIGUSR1)
        return self.wait_boot(st["boots"] + 1, timeout)

    def hard_reset(self, timeout=BOOT_TIMEOUT_S):
        """As from power-up (the name the virtual board's API uses): a power cycle."""
        return self.power_cycle(timeout)

    def wait_boot(self, boots, timeout=BOOT_TIMEOUT_S):
        """Wait until the board has booted `boots` times since start and is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state()
            if st is None:
                raise PicoError("emulated Pico %s died: %s" % (self.name, self.died()))
            if st.get("boots", 0) >= boots and st.get("ready"):
                return st
            time.sleep(0.05)
        raise PicoError("emulated Pico %s did not boot again within %d s" % (self.name, timeout))

    def cut_power_during_flash_write(self, n):
        """Arm a power cut in the middle of the n-th flash write (program or erase) from
        now; the board then boots again on its own (the power comes back)."""
        tmp = self.state_dir / "cut.tmp"
        tmp.write_text("%d\n" % n)
        os.replace(tmp, self.state_dir / "cut")

    # ---- the load: EmulatedBoard.load / set_load (frontend.mjs reads plant.json) -------
    def meter_path(self):
        """The bench meter file (true mean current per emulated second, with "meter")."""
        return str(self.state_dir / "meter.json")


def all_picos(root=STATE_ROOT):
    return board.boards(VirtualPico, root)


def find_by_port(port, root=STATE_ROOT):
    """The running emulated Pico whose port (or its tty link) is `port`, or None."""
    return board.find_by_port(VirtualPico, port, root)
