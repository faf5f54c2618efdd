"""The virtual board's host program: a MicroPython unix port behind a serial port.

    python -m emulators.vboard.daemon --state DIR [--flash DIR] [--name NAME] [--tcp PORT]
                                      [--owner PID]

(normally started by `python -m tools.virtual_board start`, see that module.)

Two pseudo-terminals: the *port* (its slave path, e.g. /dev/pts/5, is what mpremote
opens; optionally also a TCP port for socket:// URLs) and the *console* of the
interpreter (`micropython -i vm_boot.py`, stdin/stdout on it). Bytes are relayed both
ways, and this program adds what a board's firmware does around its REPL:

* Ctrl-C: a 0x03 from the host becomes SIGINT while MicroPython runs code (the unix port
  keeps its terminal raw, so the byte alone would not interrupt), and stays a byte
  while the REPL waits for input or `micropython.kbd_intr(-1)` is in force (mpremote's
  `mount` sends binary data). Which of the two is decided with the interpreter
  stopped (SIGSTOP), from whether it has a SIGINT handler installed.
* Soft reset (Ctrl-D in the REPL, SystemExit in the raw REPL: the process exits, or
  machine.soft_reset()): print "MPY: soft reboot", start the interpreter again on the
  same files, run boot.py (and main.py from the friendly REPL), and enter the raw REPL
  again if it was in it.
* Hard reset (machine.reset(), `mpremote reset`, or SIGUSR1 to this program): start
  again as from power-up, files kept, pending input dropped, no soft-reboot line.

Output that nobody reads is dropped after a while, as a USB serial port without a host
would. SIGTERM / SIGINT stop the board; so does the end of the --owner process.

The interpreter never outlives this program: on Linux every interpreter it starts (at
power-up and at every restart) gets prctl(PR_SET_PDEATHSIG, SIGKILL), so even a SIGKILL
of this program takes the interpreter with it (no firmware left driving the plant with
no port). One firmware per flash folder: this program holds the flash folder's lock
(lock.py) and hands it on to the interpreter, so a second host program on the same
flash folder refuses (exit status 3) while either of them runs.
"""

import argparse
import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from emulators.board import raw_pty
from emulators.vboard import lock

HERE = Path(__file__).resolve().parent
VM_BOOT = HERE / "vm_boot.py"

MARK = b"\x1b]vboard;"
MARK_END = b"\x07"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.'
PROMPT = b">>> "
SOFT_REBOOT = b"MPY: soft reboot\r\n"
STALE_OUTPUT_S = 0.5      # output nobody reads for this long is dropped
OUT_CAP = 1 << 20         # and never more than this is kept


EXIT_FLASH_BUSY = 3
PR_SET_PDEATHSIG = 1


def _die_with_parent_fn():
    """A preexec_fn for the interpreter: SIGKILL when this process (its parent) ends, on
    Linux (prctl PR_SET_PDEATHSIG; kept across exec, and start_new_session's setsid runs
    before it). None where there is no prctl. This program has one thread: the signal
    follows the thread that forked, which is the whole program here."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    parent = os.getpid()

    def preexec():
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:          # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)
    return preexec


def find_micropython():
    from tools.mpvm.runner import _find_micropython
    return _find_micropython()


def _proc_status(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split(None, 1)[1].strip()
    except OSError:
        pass
    return None


def _catches_sigint(pid):
    cgt = _proc_status(pid, "SigCgt")
    return cgt is not None and bool(int(cgt, 16) & (1 << (signal.SIGINT - 1)))


def _stopped(pid):
    state = _proc_status(pid, "State")
    return state is None or state[:1] in ("T", "t", "Z", "X")


class Board:
    def __init__(self, state_dir, flash_dir, tcp_port=None, owner=None, micropython=None,
                 heapsize=None, log=None, name=None):
        self.state_dir = Path(state_dir)
        self.name = name or self.state_dir.name
        self.flash = Path(flash_dir).resolve()
        self.flash.mkdir(parents=True, exist_ok=True)
        # one firmware per flash folder (raises lock.FlashBusy before anything starts)
        self.lock_fd = lock.acquire(self.flash, self.lock_info())
        self.preexec = _die_with_parent_fn()
        self.owner = owner
        self.micropython = micropython or find_micropython()
        self.heapsize = heapsize
        self.log_file = log or sys.stderr
        # the port
        self.port_master, self.port_slave = raw_pty()
        self.port_path = os.ttyname(self.port_slave)
        self.listener = None
        self.client = None
        self.url = None
        if tcp_port is not None:
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(("127.0.0.1", tcp_port))
            self.listener.listen(1)
            self.listener.setblocking(False)
            self.url = "socket://127.0.0.1:%d" % self.listener.getsockname()[1]
        # the interpreter
        self.proc = None
        self.console = None
        self.phase = "off"          # booting -> [entering_raw] -> running
        self.raw = False            # the REPL was last in raw mode
        self.pending_in = bytearray()   # host input held while the board boots
        self.to_vm = bytearray()
        self.to_port = bytearray()
        self.to_client = bytearray()
        self.port_blocked_since = None
        self.carry = b""            # VM output tail that may be a split marker
        self.tail = b""             # recent VM output, for the REPL mode
        self.resets = {"power": 0, "soft": 0}
        self.failed_starts = 0      # interpreters that exited before vm_boot.py ran
        self.stop_requested = False
        self.reset_requested = False

    # ---- logging and state ------------------------------------------------------
    def log(self, msg):
        self.log_file.write("%s vboard[%d]: %s\n" % (time.strftime("%H:%M:%S"), os.getpid(), msg))
        self.log_file.flush()

    def lock_info(self):
        proc = getattr(self, "proc", None)
        return {"pid": os.getpid(), "name": self.name, "state": str(self.state_dir.resolve()),
                "flash": str(self.flash), "port": getattr(self, "port_path", None),
                "vm_pid": proc.pid if proc else None}

    def write_state(self):
        lock.update(self.lock_fd, self.lock_info())
        state = {"name": self.name, "pid": os.getpid(), "port": self.port_path, "url": self.url,
                 "flash": str(self.flash), "vm_pid": self.proc.pid if self.proc else None,
                 "resets": self.resets}
        tmp = self.state_dir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        os.replace(tmp, self.state_dir / "state.json")

    # ---- the interpreter --------------------------------------------------------
    def start_vm(self, mode):
        """mode: "power", "soft" (friendly soft reboot) or "raw" (raw-REPL soft reboot)."""
        master, slave = raw_pty()
        env = dict(os.environ)
        env["VBOARD_FLASH"] = str(self.flash)
        env["VBOARD_MODE"] = mode
        env["MICROPYPATH"] = ".frozen"
        argv = [self.micropython]
        if self.heapsize:
            argv += ["-X", "heapsize=%s" % self.heapsize]
        argv += ["-i", str(VM_BOOT)]
        # the lock goes with the interpreter: held while either lives
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     cwd=str(self.flash), start_new_session=True,
                                     close_fds=True, pass_fds=(self.lock_fd,),
                                     preexec_fn=self.preexec)
        os.close(slave)
        self.console = master
        self.mode = mode
        self.phase = "booting"
        self.to_vm = bytearray()
        self.carry = b""
        self.tail = b""
        self.raw = False
        self.resets["power" if mode == "power" else "soft"] += 1
        self.log("interpreter %d started (%s)" % (self.proc.pid, mode))
        self.write_state()

    def kill_vm(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.log("interpreter %d did not die" % self.proc.pid)
        if self.console is not None:
            os.close(self.console)
        self.proc = None
        self.console = None
        self.phase = "off"

    def restart(self, kind):
        """kind: "power" (hard reset) or "soft"."""
        raw = self.raw
        self.kill_vm()
        if kind == "power":
            self.pending_in = bytearray()
            self.start_vm("power")
        else:
            self.out(SOFT_REBOOT)
            self.start_vm("raw" if raw else "soft")

    def interrupt(self):
        """A Ctrl-C from the host. True if it became SIGINT (code was running)."""
        pid = self.proc.pid
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        try:
            deadline = time.monotonic() + 1.0
            while not _stopped(pid) and time.monotonic() < deadline:
                time.sleep(0.0005)
            running = _catches_sigint(pid)
            if running:
                os.kill(pid, signal.SIGINT)
            return running
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    # ---- data paths ------------------------------------------------------------
    def out(self, data):
        """Board output to the host (the pty, and the TCP client if any)."""
        if not data:
            return
        self.to_port += data
        if len(self.to_port) > OUT_CAP:
            del self.to_port[:len(self.to_port) - OUT_CAP]
        if self.client is not None:
            self.to_client += data

    def host_input(self, data):
        if self.phase != "running":
            self.pending_in += data
            return
        start = 0
        while True:
            i = data.find(b"\x03", start)
            if i < 0:
                self.to_vm += data[start:]
                return
            self.to_vm += data[start:i]
            self.flush_vm()
            if not self.interrupt():
                self.to_vm += b"\x03"
            start = i + 1

    def vm_output(self, data):
        data = self.carry + data
        self.carry = b""
        pieces = []
        while data:
            i = data.find(MARK)
            if i < 0:
                # keep a tail that could be the start of a marker
                for k in range(min(len(MARK), len(data)), 0, -1):
                    if MARK.startswith(data[-k:]):
                        self.carry = data[-k:]
                        data = data[:-k]
                        break
                pieces.append((None, data))
                break
            j = data.find(MARK_END, i + len(MARK))
            if j < 0:
                pieces.append((None, data[:i]))
                self.carry = data[i:]
                break
            pieces.append((None, data[:i]))
            pieces.append((data[i + len(MARK):j].decode("ascii", "replace"), b""))
            data = data[j + 1:]
        for word, text in pieces:
            if word is None:
                self.vm_text(text)
            elif self.signal(word):
                return              # the interpreter was replaced: the rest is void

    def vm_text(self, text):
        if not text:
            return
        tail = self.tail + text
        # the REPL's mode: the last banner seen wins
        r = tail.rfind(RAW_BANNER)
        f = tail.rfind(FRIENDLY_BANNER)
        if r >= 0 or f >= 0:
            self.raw = r > f
        self.tail = tail[-64:]
        if self.phase == "entering_raw":
            # the friendly banner of a raw-mode soft reboot is not shown; the raw one is
            self.skip += text
            k = self.skip.find(RAW_BANNER)
            if k >= 0:
                self.out(self.skip[k:])
                self.skip = b""
                self.set_running()
            elif self.skip.endswith(PROMPT) and not self.sent_ctrl_a:
                self.to_vm += b"\x01"
                self.sent_ctrl_a = True
            return
        self.out(text)

    def signal(self, word):
        """A signal from vm_boot.py; True if the interpreter was replaced."""
        if word == "start":
            self.failed_starts = 0
            if self.mode != "raw":
                self.set_running()
        elif word == "ready":
            if self.mode == "raw":
                self.phase = "entering_raw"
                self.skip = b""
                self.sent_ctrl_a = False
        elif word == "reset":
            self.log("machine.reset()")
            self.restart("power")
            return True
        elif word == "soft":
            self.log("soft reset from the board")
            self.restart("soft")
            return True
        else:
            self.log("unknown signal %r" % word)
        return False

    def set_running(self):
        self.phase = "running"
        held = bytes(self.pending_in)
        self.pending_in = bytearray()
        if held:
            self.host_input(held)

    def flush_vm(self):
        if self.to_vm and self.console is not None:
            try:
                n = os.write(self.console, self.to_vm)
                del self.to_vm[:n]
            except BlockingIOError:
                pass
            except OSError as e:
                if e.errno != errno.EIO:
                    raise

    def flush_port(self):
        if not self.to_port:
            self.port_blocked_since = None
            return
        try:
            n = os.write(self.port_master, self.to_port)
            del self.to_port[:n]
            self.port_blocked_since = None if n else self.port_blocked_since
        except BlockingIOError:
            now = time.monotonic()
            if self.port_blocked_since is None:
                self.port_blocked_since = now
            elif now - self.port_blocked_since > STALE_OUTPUT_S:
                self.to_port = bytearray()      # nobody reads: like a port with no host
                self.port_blocked_since = None

    def flush_client(self):
        if self.client is None or not self.to_client:
            return
        try:
            n = self.client.send(self.to_client)
            del self.to_client[:n]
        except BlockingIOError:
            pass
        except OSError:
            self.drop_client()

    def drop_client(self):
        if self.client is not None:
            self.client.close()
            self.client = None
            self.to_client = bytearray()

    # ---- main loop -----------------------------------------------------------------
    def vm_exited(self):
        if self.phase == "booting":
            self.failed_starts += 1
            if self.failed_starts >= 3:     # not starting at all: do not spin
                self.log("interpreter keeps failing to start; retrying in 2 s")
                time.sleep(2.0)
        code = self.proc.poll() if self.proc else None
        if code is None and self.proc is not None:
            try:
                code = self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
        if self.carry:
            self.vm_text(self.carry)
            self.carry = b""
        if code is not None and code < 0:
            self.log("interpreter died (signal %d): power-up" % -code)
            self.restart("power")
        else:
            self.log("interpreter exited (%s): soft reboot, %s REPL"
                     % (code, "raw" if self.raw else "friendly"))
            self.restart("soft")

    def owner_alive(self):
        if not self.owner:
            return True
        try:
            os.kill(self.owner, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def run(self):
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_stop)
        signal.signal(signal.SIGUSR1, self._on_reset)
        self.start_vm("power")
        self.log("port %s%s, flash %s" % (self.port_path, (", " + self.url) if self.url else "",
                                          self.flash))
        last_owner_check = time.monotonic()
        try:
            while not self.stop_requested:
                if self.reset_requested:
                    self.reset_requested = False
                    self.log("hard reset (command)")
                    self.restart("power")
                rd = [self.port_master, self.console]
                if self.listener is not None:
                    rd.append(self.listener)
                if self.client is not None:
                    rd.append(self.client)
                wr = []
                if self.to_vm:
                    wr.append(self.console)
                if self.to_port:
                    wr.append(self.port_master)
                if self.client is not None and self.to_client:
                    wr.append(self.client)
                try:
                    r, w, _ = select.select(rd, wr, [], 0.2)
                except InterruptedError:
                    continue
                if self.console in r:
                    try:
                        data = os.read(self.console, 65536)
                    except BlockingIOError:
                        data = None
                    except OSError as e:
                        if e.errno != errno.EIO:
                            raise
                        data = b""
                    if data == b"":
                        self.vm_exited()
                        continue
                    if data:
                        self.vm_output(data)
                if self.port_master in r:
                    try:
                        data = os.read(self.port_master, 65536)
                    except (BlockingIOError, OSError):
                        data = b""
                    if data:
                        self.host_input(data)
                if self.listener is not None and self.listener in r:
                    self.accept()
                if self.client is not None and self.client in r:
                    try:
                        data = self.client.recv(65536)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        data = b""
                    if data == b"":
                        self.drop_client()
                    elif data:
                        self.host_input(data)
                self.flush_vm()
                self.flush_port()
                self.flush_client()
                now = time.monotonic()
                if now - last_owner_check > 1.0:
                    last_owner_check = now
                    if not self.owner_alive():
                        self.log("owner %d gone" % self.owner)
                        break
        finally:
            self.kill_vm()
            self.log("stopped")

    def accept(self):
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        if self.client is not None:
            conn.close()            # one host at a time, like a serial port
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = conn
        self.to_client = bytearray()

    def _on_stop(self, signum, frame):
        self.stop_requested = True

    def _on_reset(self, signum, frame):
        self.reset_requested = True


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m emulators.vboard.daemon", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", required=True, help="state folder (state.json is written there)")
    ap.add_argument("--flash", help="flash folder (default: STATE/flash)")
    ap.add_argument("--name", default=None, help="the board's name (default: the state "
                    "folder's name)")
    ap.add_argument("--tcp", type=int, default=None, help="also listen on this TCP port (0: any)")
    ap.add_argument("--owner", type=int, default=None, help="stop when this process ends")
    ap.add_argument("--heapsize", default=None, help="MicroPython heap, e.g. 256K")
    ns = ap.parse_args(argv)
    state = Path(ns.state)
    state.mkdir(parents=True, exist_ok=True)
    try:
        board = Board(state, ns.flash or state / "flash", tcp_port=ns.tcp, owner=ns.owner,
                      heapsize=ns.heapsize, name=ns.name)
    except lock.FlashBusy as e:
        sys.stderr.write("%s vboard[%d]: refused: %s\n" % (time.strftime("%H:%M:%S"),
                                                            os.getpid(), e))
        return EXIT_FLASH_BUSY
    try:
        board.run()
    finally:
        try:
            (state / "state.json").unlink()
        except FileNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
