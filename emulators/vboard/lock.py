"""One firmware per flash folder, and finding the virtual boards' host programs.

The lock: `FLASH.lock` beside the flash folder (for the default layout
build/vboard/NAME/flash.lock, in the board's state folder, so it never shows in the
board's own file system). The host program (daemon.py) holds an exclusive flock on it
for as long as it runs and passes the locked descriptor on to every interpreter it
starts, so the lock is held while *either* of them lives: a second host program on the
same flash folder refuses instead of starting a second firmware on the same files. The
file holds who holds it (JSON: pid, vm_pid, name, state, flash, port), for the message.

The host programs: `daemons()` lists the running `python -m emulators.vboard.daemon`
processes of this user from their command lines (/proc on Linux, `ps` elsewhere), with
the state folder they were started on. That does not need the state folder to exist, so
`make sim-stop` finds a board whose build/ folder was removed under it.
"""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

DAEMON_MODULE = "emulators.vboard.daemon"
REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_ROOT = REPO_ROOT / "build" / "vboard"


class FlashBusy(RuntimeError):
    """The flash folder is in use by another virtual board; str() names it and says how
    to stop it. .holder: the lock file's contents ({} when unreadable)."""

    def __init__(self, flash, holder):
        self.flash = str(flash)
        self.holder = holder or {}
        RuntimeError.__init__(self, describe_busy(flash, self.holder))


def lock_path(flash):
    flash = Path(flash)
    return flash.parent / (flash.name + ".lock")


def _alive(pid):
    from emulators.board import alive
    return alive(pid)


def stop_hint(name, state, pid=None):
    """How to stop board `name` whose state folder is `state` (host program `pid`)."""
    if state and same_path(Path(state).parent, STATE_ROOT):
        return "make sim-stop VBOARD=%s  (or: python -m tools.virtual_board stop --name %s)" % (
            name, name)
    return "VirtualBoard(%r, %r).stop()%s" % (name, str(state),
                                             ", or kill %s" % pid if pid else "")


def describe_busy(flash, holder):
    name = holder.get("name") or "?"
    pid = holder.get("pid")
    vm = holder.get("vm_pid")
    port = holder.get("port")
    text = "flash folder %s is in use by virtual board %s" % (flash, name)
    details = []
    if pid:
        details.append("host pid %s" % pid)
    if port:
        details.append("port %s" % port)
    if details:
        text += " (%s)" % ", ".join(details)
    if pid and not _alive(pid) and vm and _alive(vm):
        return text + ": its host program is gone but its interpreter (pid %s) still runs: " \
                      "kill %s" % (vm, vm)
    return text + "; one firmware per flash folder: stop it first: " + stop_hint(
        name, holder.get("state"), pid)


def read_holder(flash):
    try:
        return json.loads(lock_path(flash).read_text())
    except (OSError, ValueError):
        return {}


def acquire(flash, info):
    """Lock `flash` for this process: returns the locked file descriptor (inheritable by
    nothing unless passed on), or raises FlashBusy."""
    path = lock_path(flash)
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise FlashBusy(Path(flash), read_holder(flash))
    update(fd, info)
    return fd


def update(fd, info):
    """Rewrite the holder's description in the locked file."""
    data = (json.dumps(info, sort_keys=True) + "\n").encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:
        pass                      # the description is for messages only


def busy(flash):
    """The holder's description if `flash` is locked now, else None (checks without
    keeping the lock)."""
    path = lock_path(flash)
    try:
        fd = os.open(str(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return read_holder(flash) or {"name": "?"}
    finally:
        os.close(fd)              # closing drops a lock we got
    return None


# ---- the host programs, by their command lines ------------------------------------------------

def _parse_argv(argv, cwd):
    """{state, flash, name} from a daemon's argv, or None if it is not one."""
    try:
        i = argv.index(DAEMON_MODULE)
    except ValueError:
        return None
    if i < 1 or argv[i - 1] != "-m":
        return None
    opts = {}
    args = argv[i + 1:]
    for k, a in enumerate(args):
        for key in ("--state", "--flash", "--name"):
            if a == key and k + 1 < len(args):
                opts[key[2:]] = args[k + 1]
            elif a.startswith(key + "="):
                opts[key[2:]] = a[len(key) + 1:]
    if "state" not in opts:
        return None
    base = cwd or str(REPO_ROOT)
    state = os.path.normpath(os.path.join(base, opts["state"]))
    flash = os.path.normpath(os.path.join(base, opts["flash"])) if opts.get("flash") \
        else os.path.join(state, "flash")
    return {"state": state, "flash": flash, "name": opts.get("name") or os.path.basename(state)}


def _proc_daemons():
    me = os.getuid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            if os.stat("/proc/%d" % pid).st_uid != me:
                continue
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        argv = [a.decode("utf-8", "surrogateescape") for a in argv if a]
        if DAEMON_MODULE not in argv:
            continue
        try:
            cwd = os.readlink("/proc/%d/cwd" % pid)
        except OSError:
            cwd = None
        d = _parse_argv(argv, cwd)
        if d is not None and _alive(pid):
            d["pid"] = pid
            found.append(d)
    return found


def _ps_daemons():
    try:
        out = subprocess.run(["ps", "-x", "-o", "pid=", "-o", "command="], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].isdigit() or DAEMON_MODULE not in parts:
            continue
        d = _parse_argv(parts[1:], None)      # paths are absolute (VirtualBoard.start)
        if d is not None:
            d["pid"] = int(parts[0])
            found.append(d)
    return found


def daemons():
    """The running virtual-board host programs of this user: [{pid, name, state, flash}]."""
    found = _proc_daemons() if os.path.isdir("/proc/self") else _ps_daemons()
    return [d for d in found if d["pid"] != os.getpid()]


def same_path(a, b):
    """Whether paths a and b name the same folder (either may no longer exist)."""
    a, b = os.path.abspath(str(a)), os.path.abspath(str(b))
    if a == b:
        return True
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


if __name__ == "__main__":          # python -m emulators.vboard.lock: list the host programs
    for d in daemons():
        sys.stdout.write("%(pid)s %(name)s %(state)s\n" % d)
