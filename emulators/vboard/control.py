"""Start, find, reset and stop virtual boards; set their load. Used by the CLI, flash, tests.

Each board has a state folder (default build/vboard/NAME): `flash/` (the board's files),
`flash.lock` (one firmware per flash folder, lock.py), `state.json` (pid, port, url;
present while it runs) and `daemon.log`. A running board is also found by its host
program's command line (lock.daemons()), so stop() works after its state folder was
removed (`make clean`).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from emulators import board
from emulators.board import EmulatedBoard
from emulators.vboard import lock

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_ROOT = REPO_ROOT / "build" / "vboard"
DEFAULT_NAME = "sim"
CONTROL_FILE = "plant.json"     # boards/sim.py CONTROL_FILE
METER_FILE = "meter.json"       # boards/sim.py METER_FILE (with "meter": true)


class BoardError(RuntimeError):
    """A virtual board could not be started, found or controlled; str() says why."""


class VirtualBoard(EmulatedBoard):
    """A running (or not) virtual board, by its state folder."""

    BOARD = "sim"              # the board file it runs
    KIND = "virtual board"
    # its interpreter shares the host's cores with the tools that talk to it: on a busy
    # 2-core machine one mpremote probe of it took longer than a real board's 20 s
    TIMEOUT_SCALE = 3.0

    def __init__(self, name=DEFAULT_NAME, state_dir=None):
        EmulatedBoard.__init__(self, name, state_dir or STATE_ROOT / name)
        self.flash = self.state_dir / "flash"
        self.control_file = self.flash / CONTROL_FILE

    @property
    def url(self):
        st = self.state()
        return st.get("url") if st else None

    # ---- life -------------------------------------------------------------------------
    def start(self, tcp=None, owner=None, speed=None, timeout=30.0, heapsize=None):
        """Start the board (or return the running one's state). tcp: TCP port (0 = any)."""
        st = self.state()
        if st:
            return st
        self._refuse_if_taken()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.flash.mkdir(exist_ok=True)
        if speed is not None:
            self.set_load(speed=speed)
        argv = [sys.executable, "-m", lock.DAEMON_MODULE, "--state",
                str(self.state_dir.resolve()), "--name", self.name]
        if tcp is not None:
            argv += ["--tcp", str(tcp)]
        if owner is not None:
            argv += ["--owner", str(owner)]
        if heapsize is not None:
            argv += ["--heapsize", str(heapsize)]
        log = open(self.state_dir / "daemon.log", "ab")
        try:
            proc = subprocess.Popen(argv, cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state()
            if st and st.get("pid") == proc.pid:
                return st
            if proc.poll() is not None:
                holder = lock.busy(self.flash)
                if holder is not None:      # another one won a race for the flash folder
                    raise BoardError(lock.describe_busy(self.flash, holder))
                raise BoardError("virtual board %s did not start (exit %s); see %s"
                                 % (self.name, proc.returncode, self.state_dir / "daemon.log"))
            time.sleep(0.02)
        proc.kill()
        raise BoardError("virtual board %s did not start within %s s; see %s"
                         % (self.name, timeout, self.state_dir / "daemon.log"))

    def _refuse_if_taken(self):
        """BoardError when a host program already runs this board without its state file
        (state folder removed) or another board holds the flash folder."""
        for d in self.daemons():
            raise BoardError(
                "virtual board %s already runs (host pid %s) but its state folder %s has no "
                "state.json (was build/ removed under it?): stop it first: %s"
                % (self.name, d["pid"], self.state_dir,
                   lock.stop_hint(self.name, d["state"], d["pid"])))
        holder = lock.busy(self.flash)
        if holder is not None:
            raise BoardError(lock.describe_busy(self.flash, holder))

    def daemons(self):
        """The running host programs started on this board's state folder (found by their
        command lines: works when the folder is gone)."""
        return [d for d in lock.daemons() if lock.same_path(d["state"], self.state_dir)]

    def stop(self, timeout=15.0):
        """Stop the board (its files are kept); True if it was running. Finds its host
        program by the state file or, without one, by its command line."""
        stopped = EmulatedBoard.stop(self, timeout)
        for d in self.daemons():
            stopped = board.terminate(d["pid"], timeout) or stopped
        return stopped

    def hard_reset(self, timeout=10.0):
        """Restart the interpreter as from power-up (files kept)."""
        st = self.state()
        if not st:
            raise BoardError("virtual board %s is not running" % self.name)
        before = st.get("resets", {}).get("power", 0)
        os.kill(st["pid"], signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state()
            if st and st.get("resets", {}).get("power", 0) > before:
                return st
            time.sleep(0.02)
        raise BoardError("virtual board %s did not reset within %s s" % (self.name, timeout))

    # ---- the load: EmulatedBoard.load / set_load (boards/sim.py reads flash/plant.json)
    def meter_path(self):
        """The board's bench-meter file (the plant's true current, boards/sim.py)."""
        return str(self.flash / METER_FILE)


def all_boards(root=STATE_ROOT):
    """VirtualBoard objects for every state folder under root (running or not)."""
    return board.boards(VirtualBoard, root)


def running_boards(root=STATE_ROOT):
    """[(VirtualBoard, state dict or None)] for every running board of root: those with a
    state file, and those whose host program runs on a state folder under root that is
    gone or has no state file (state None)."""
    root = Path(root)
    found = []
    for vb in all_boards(root):
        st = vb.state()
        if st:
            found.append((vb, st))
    seen = [vb.state_dir for vb, _ in found]
    for d in lock.daemons():
        if not lock.same_path(os.path.dirname(d["state"]), root):
            continue
        if any(lock.same_path(d["state"], s) for s in seen):
            continue
        vb = VirtualBoard(d["name"], d["state"])
        found.append((vb, None))
        seen.append(vb.state_dir)
    return found


def find_by_port(port, root=STATE_ROOT):
    """The running virtual board whose port or URL is `port`, or None."""
    return board.find_by_port(VirtualBoard, port, root)
