"""The emulated Pico's host program: the Node runner's USB serial port behind a pty.

    python -m emulators.vpico.bridge --state DIR [--owner PID] [--seed N] [-- RUNNER ARGS]

(normally started by `python -m emulators.vpico start`, see emulators/vpico/__init__.py.)

It opens a pseudo-terminal (the *port*, e.g. /dev/pts/5, also linked as DIR/tty) and
relays bytes between it and runner.mjs's stdin/stdout, as a USB cable would. The bridge
holds a slave fd itself, so clients (mpremote, pyserial) may close and reopen the port.

Resets: the runner exits 3 on a watchdog reset or machine.reset() and 4 on a power cut
in the middle of a flash write; the bridge then starts a new runner on the same flash
file (a hard reset: the flash persists, pending input is dropped). SIGUSR1 power-cycles
the board (the runner is killed, wherever it is, and started again). Any other exit of
the runner is the emulator dying: the bridge writes why to DIR/died.txt and exits 1, so
the port disappears instead of hanging its clients.

State: DIR/state.json (pid, port, boots, ready) while it runs; DIR/bridge.log. A lock
on DIR/lock keeps a second bridge off the same flash. SIGTERM / SIGINT stop it; so does
the end of the --owner process.
"""

import argparse
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from emulators.board import alive, raw_pty

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "runner.mjs"
STALE_OUTPUT_S = 0.5        # output nobody reads for this long is dropped, as USB would
OUT_CAP = 1 << 20
EXIT_WATCHDOG = 3
EXIT_POWER_CUT = 4


class Bridge:
    def __init__(self, state_dir, node="node", owner=None, seed=1, runner_args=()):
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.node = node
        self.owner = owner
        self.seed = seed
        self.runner_args = list(runner_args)
        self.boots = 0
        self.ready = False
        self.stop_sig = None
        self.power_cycle = False
        self.child = None
        self.err_tail = b""

    def log(self, msg):
        sys.stderr.write("%s vpico: %s\n" % (time.strftime("%H:%M:%S"), msg))
        sys.stderr.flush()

    def _write_state(self):
        st = {"pid": os.getpid(), "port": self.port, "link": str(self.state_dir / "tty"),
              "boots": self.boots, "ready": self.ready, "state": str(self.state_dir)}
        tmp = self.state_dir / "state.json.tmp"
        tmp.write_text(json.dumps(st) + "\n")
        os.replace(tmp, self.state_dir / "state.json")

    def _spawn(self):
        argv = [self.node, str(RUNNER), "--state", str(self.state_dir), "--boot", str(self.boots),
                "--seed", str(self.seed + self.boots)] + self.runner_args
        self.child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, bufsize=0)
        for f in (self.child.stdout, self.child.stderr):
            os.set_blocking(f.fileno(), False)
        self.ready = False
        self._write_state()

    def run(self):
        lock = open(self.state_dir / "lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.log("another emulated Pico runs on %s" % self.state_dir)
            return 2
        (self.state_dir / "died.txt").unlink(missing_ok=True)
        self.master, self.slave = raw_pty()
        self.port = os.ttyname(self.slave)
        link = self.state_dir / "tty"
        link.unlink(missing_ok=True)
        link.symlink_to(self.port)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGUSR1, self._on_power_cycle)
        self.log("port %s (link %s)" % (self.port, link))
        status = 0
        try:
            status = self._loop()
        finally:
            if self.child and self.child.poll() is None:
                self.child.send_signal(signal.SIGTERM)
                try:
                    self.child.wait(10)
                except subprocess.TimeoutExpired:
                    self.child.kill()
            link.unlink(missing_ok=True)
            (self.state_dir / "state.json").unlink(missing_ok=True)
        return status

    def _on_stop(self, signum, frame):
        self.stop_sig = signum

    def _on_power_cycle(self, signum, frame):
        self.power_cycle = True

    def _loop(self):
        self._spawn()
        to_pty = b""
        unread_since = None
        while self.stop_sig is None:
            if self.owner and not alive(self.owner):
                self.log("owner %d ended: stopping" % self.owner)
                break
            if self.power_cycle:
                self.power_cycle = False
                self.log("power cycle")
                self.child.kill()
                self.child.wait()
                to_pty = b""
                self._drain_input()
                self.boots += 1
                self._spawn()
                continue
            cout = self.child.stdout.fileno()
            cerr = self.child.stderr.fileno()
            try:
                r, w, _ = select.select([self.master, cout, cerr],
                                        [self.master] if to_pty else [], [], 0.2)
            except InterruptedError:
                continue
            if cerr in r:
                self._stderr(cerr)
            if cout in r:
                try:
                    data = os.read(cout, 65536)
                except BlockingIOError:
                    data = None
                if data == b"":
                    status = self._child_ended()
                    if status is not None:
                        return status
                    to_pty = b""
                    continue
                if data:
                    to_pty += data
            if self.master in r:
                try:
                    data = os.read(self.master, 65536)
                except (BlockingIOError, OSError):
                    data = b""
                if data:
                    try:
                        self.child.stdin.write(data)
                    except (BrokenPipeError, OSError):
                        pass
            if to_pty:
                try:
                    n = os.write(self.master, to_pty)
                    to_pty = to_pty[n:]
                    unread_since = None
                except (BlockingIOError, OSError):
                    now = time.monotonic()
                    unread_since = unread_since or now
                    if now - unread_since > STALE_OUTPUT_S or len(to_pty) > OUT_CAP:
                        to_pty = b""            # nobody reads: dropped, as by a USB host
        return 0

    def _stderr(self, fd):
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            return
        self.err_tail = (self.err_tail + data)[-4000:]
        sys.stderr.write(data.decode("utf-8", "replace"))
        sys.stderr.flush()
        if not self.ready and b"usb cdc connected" in data:
            self.ready = True
            self._write_state()

    def _drain_input(self):
        try:
            while os.read(self.master, 65536):
                pass
        except (BlockingIOError, OSError):
            pass

    def _child_ended(self):
        """The runner's stdout closed: restart it on a reset, else report and end."""
        rc = self.child.wait()
        self._stderr(self.child.stderr.fileno())
        if self.stop_sig is not None:
            return 0
        if rc in (EXIT_WATCHDOG, EXIT_POWER_CUT):
            self.log("runner exited %d (%s): starting again on the same flash"
                     % (rc, "watchdog reset" if rc == EXIT_WATCHDOG else "power cut"))
            self._drain_input()
            self.boots += 1
            self._spawn()
            return None
        why = "the emulator exited with status %s:\n%s" % (
            rc, self.err_tail.decode("utf-8", "replace").strip())
        (self.state_dir / "died.txt").write_text(why + "\n")
        self.log(why)
        return 1


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m emulators.vpico.bridge", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", required=True, help="the board's folder (flash, control file)")
    ap.add_argument("--node", default="node")
    ap.add_argument("--owner", type=int, default=None, help="stop when this process ends")
    ap.add_argument("--seed", type=int, default=1, help="the plant's noise seed")
    ap.add_argument("runner_args", nargs="*", help="passed to runner.mjs (after --)")
    ns = ap.parse_args(argv)
    return Bridge(ns.state, ns.node, ns.owner, ns.seed, ns.runner_args).run()


if __name__ == "__main__":
    sys.exit(main())
