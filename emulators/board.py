"""What both emulated boards share: a running board's state file, stopping it, its control
file (the load on the plant), finding boards by port, and the raw pty behind the port.

A board's host program (emulators/vboard/daemon.py, emulators/vpico/bridge.py) writes
`state.json` (its pid and port, at least) while it runs; `EmulatedBoard` reads it and
treats a file whose pid is gone as stale. The control file holds boards/sim.py's keys
(`LOAD_KEYS`); `set_load` refuses a bad key or value before writing anything.
"""

import json
import os
import signal
import termios
import time
import tty
from pathlib import Path


def alive(pid):
    """True while process `pid` runs (a zombie does not count)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def terminate(pid, timeout):
    """SIGTERM, then SIGKILL after `timeout` s; True if the process was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.02)
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True


def raw_pty():
    """(master, slave) of a new pty in raw mode without echo; the master non-blocking."""
    master, slave = os.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~(termios.ECHO | termios.ECHOE | termios.ECHOK | termios.ECHONL)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    return master, slave


def parse_control(text):
    """boards/sim.py's check of a control file's text; ValueError says what is wrong."""
    import tools.paths  # noqa: F401  (boards/ on sys.path)
    import sim
    return sim.parse_control(text)


class EmulatedBoard:
    """A board (running or not) by its state folder. Subclasses set BOARD (the board
    file it runs), KIND (how messages name it) and `control_file`."""

    BOARD = None
    KIND = "emulated board"
    TIMEOUT_SCALE = 1.0       # how much longer tools wait for it than for a real board

    def __init__(self, name, state_dir):
        self.name = name
        self.state_dir = Path(state_dir)
        self.control_file = self.state_dir / "plant.json"

    def __repr__(self):
        return "%s(%r, %s)" % (type(self).__name__, self.name, self.state_dir)

    def state(self):
        """The state dict while the host program runs, else None (a stale file is
        removed)."""
        path = self.state_dir / "state.json"
        try:
            st = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not alive(st.get("pid")):
            try:
                path.unlink()
            except OSError:
                pass
            return None
        return st

    @property
    def running(self):
        return self.state() is not None

    @property
    def port(self):
        st = self.state()
        return st["port"] if st else None

    def stop(self, timeout=15.0):
        """Stop the board (its files are kept); True if it was running."""
        st = self.state()
        if not st:
            return False
        if not terminate(st["pid"], timeout):
            return False
        self.state()            # removes a stale state file
        return True

    def load(self):
        """The control file's settings ({} when there is none)."""
        try:
            return json.loads(self.control_file.read_text())
        except (OSError, ValueError):
            return {}

    def set_load(self, **settings):
        """Merge settings (contact, skin_ohm, ...; None removes a key) into the control
        file, atomically. ValueError, and nothing written, for a key or value
        boards/sim.py refuses."""
        current = self.load()
        for k, v in settings.items():
            if v is None:
                current.pop(k, None)
            else:
                current[k] = v
        text = json.dumps(current, sort_keys=True) + "\n"
        parse_control(text)
        self.control_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.control_file.with_name(self.control_file.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.control_file)
        return current

    def matches(self, port, st):
        """Whether `port` (a path, link or URL) names this running board."""
        return port in (st.get("port"), st.get("url"), st.get("link")) or \
            os.path.realpath(port) == st.get("port")


def boards(cls, root):
    """cls objects for every state folder under root (running or not)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [cls(p.name, p) for p in sorted(root.iterdir()) if p.is_dir()]


def find_by_port(cls, port, root):
    """The running cls board under root whose port is `port`, or None."""
    for b in boards(cls, root):
        st = b.state()
        if st and b.matches(port, st):
            return b
    return None
