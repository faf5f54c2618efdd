"""Host client for the device's line protocol (docs/protocol.md), on any pyserial port.

    from tools.client import Client
    with Client("/dev/ttyACM0") as dev:          # or "socket://host:port", "loop://", a pty
        print(dev.identify())
        dev.sync_time()
        dev.start(target_ua=12000, duration_s=600)
        print(dev.status()["i_ua"])

`request(cmd, **fields)` sends one JSON line with a fresh id and waits for the reply with
that id. The port is opened exclusively (PortInUse when another program holds it).

The link tolerates stale bytes (whatever a previous host, mpremote or the board left):
the first request of a connection (and the first after a timeout, garbage or drain())
clears the line: it drops what is pending, sends a newline (ending any half line left
in the device's input, which the device answers with an id-less error) and a fence, an
`identify` with a fresh id (the request itself when it is an identify). Until the fence's
reply arrives everything else is skipped: replies to other ids or to none, telemetry
(queued in `telemetry`, bounded), lines that are not the protocol. From then on the link
is in lockstep (the device answers every line once, in order, and this client waits for
each reply): replies are matched by id, and an id-less reply is taken as the answer to
this client's request only when it is E_BUSY (the one id-less refusal a request of this
client can get: not flat during a session, or no memory); any other id-less reply
(E_JSON, E_UTF8, E_TOO_LONG: a line this client never sends) is skipped. Skipped
replies are counted in `stale`, skipped non-protocol lines in `garbage`.
Errors:
    Timeout        no reply within the timeout (`.garbage`: the last non-protocol line seen)
    ProtocolError  in lockstep, a line that is not a JSON object of the protocol
    DeviceError    the device refused: `.code` ("E_RANGE", ...), `.msg`, `.reply`
    PortInUse      the port is held by another program (raised when opening)
All derive from ClientError. The clock is injectable (tests run in virtual time).
"""

import collections
import json
import os
import random
import time

LINE_MAX = 256           # the device's request line limit (bytes, LF excluded)
ID_MAX = 0x7FFFFFFF
_POLL_S = 0.05           # port read timeout: how often the deadline is looked at
_JUNK_MAX = 65536        # bytes without a newline before the stream counts as garbage
_FENCE = 1               # _await: the identify that clears the line before a request
_OWN_FENCE = 2           # _await: the caller's own identify, clearing the line


class ClientError(Exception):
    pass


class Timeout(ClientError):
    def __init__(self, msg, garbage=None):
        ClientError.__init__(self, msg)
        self.garbage = garbage        # the last line seen that was not the protocol, or None


class ProtocolError(ClientError):
    def __init__(self, msg, line=None):
        ClientError.__init__(self, msg)
        self.line = line              # the offending line (bytes), when there was one


class DeviceError(ClientError):
    def __init__(self, code, msg, reply=None):
        ClientError.__init__(self, "%s: %s" % (code, msg))
        self.code = code
        self.msg = msg
        self.reply = reply


class PortInUse(ClientError):
    """Another program holds the port (an exclusive lock: pyserial, mpremote)."""


def open_port(url, baudrate=115200):
    """A pyserial port for any pyserial URL or device path, opened exclusively (a device
    path: flock, as mpremote takes it; URLs such as socket:// ignore it). PortInUse when
    another program holds it; pyserial's errors otherwise."""
    import serial
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=_POLL_S, exclusive=True)
    except serial.SerialException as e:
        if "exclusively lock" not in str(e):
            raise
        users = port_users(url)
        raise PortInUse("%s is in use by another program (%s): close it (a monitor, "
                        "mpremote, a serial terminal, `make sim-stop` for a tool left "
                        "running) and retry" % (url, ", ".join(users) if users else
                                                "it holds the port's lock"))


def port_users(path):
    """['pid 123: python -m tools.monitor', ...]: the processes of this user that have the
    device `path` open (Linux /proc; [] where unknown)."""
    try:
        want = os.path.realpath(path)
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    out = []
    for pid in pids:
        if int(pid) == os.getpid():
            continue
        fd_dir = "/proc/%s/fd" % pid
        try:
            held = any(os.path.realpath(os.path.join(fd_dir, fd)) == want
                       for fd in os.listdir(fd_dir))
        except OSError:
            continue
        if held:
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            except OSError:
                cmd = "?"
            out.append("pid %s: %s" % (pid, cmd[:80]))
    return out


class Client:
    def __init__(self, port, timeout=2.0, baudrate=115200, clock=time.monotonic,
                 telemetry_max=10000, first_id=None):
        """`port`: a pyserial URL/path (opened exclusively: PortInUse) or an open port
        object (read/write/in_waiting). `first_id`: the first request id (default a random
        one, so a stale reply to another host's request is unlikely to carry it)."""
        self.port = open_port(port, baudrate) if isinstance(port, str) else port
        self.timeout = timeout
        self.timeout_used = timeout
        self.clock = clock
        self._buf = bytearray()
        self._id = random.randrange(ID_MAX) if first_id is None else first_id - 1
        self.telemetry = collections.deque(maxlen=telemetry_max)
        self.stale = 0            # replies skipped: another id, or id-less and not ours
        self.garbage = 0          # lines skipped that were not the protocol
        self.synced = False       # in lockstep: the line was cleared, every reply so far seen
        self._last_garbage = None

    # ---- plumbing ---------------------------------------------------------------------
    def close(self):
        self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def drain(self):
        """Discard whatever the device sent before (boot text, old replies); the next
        request clears the line again (a line cut here may end later)."""
        self._buf.clear()
        self.synced = False
        n = self.port.in_waiting
        while n:
            self.port.read(n)
            n = self.port.in_waiting

    def _next_id(self):
        self._id = self._id % ID_MAX + 1
        return self._id

    def _readline(self, deadline):
        while True:
            k = self._buf.find(b"\n")
            if k >= 0:
                line = bytes(self._buf[:k])
                del self._buf[:k + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buf) > _JUNK_MAX:
                head = bytes(self._buf[:60])
                self._buf.clear()
                raise ProtocolError("no line end in %d bytes from the device: %r..." % (
                    _JUNK_MAX, head), head)
            if self.clock() >= deadline:
                msg = "no reply within %.2f s" % self.timeout_used
                if self._last_garbage is not None:
                    msg += " (the device sent text that is not the protocol: %r)" % (
                        self._last_garbage[:80],)
                raise Timeout(msg, self._last_garbage)
            waiting = self.port.in_waiting
            data = self.port.read(waiting if waiting > 0 else 1)
            if data:
                self._buf.extend(data)

    @staticmethod
    def parse(line):
        """One device line -> dict; ProtocolError when it is not a protocol line."""
        try:
            msg = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ProtocolError("garbage from the device: %r" % line[:80], line)
        if not isinstance(msg, dict) or not ("t" in msg or "ok" in msg):
            raise ProtocolError("not a reply or event: %r" % line[:80], line)
        return msg

    # ---- requests -----------------------------------------------------------------------
    @staticmethod
    def _line(rid, cmd, fields):
        req = {"id": rid, "cmd": cmd}
        req.update(fields)
        line = json.dumps(req, separators=(",", ":")).encode()
        if len(line) > LINE_MAX:
            raise ValueError("request is %d bytes, the device takes at most %d" % (
                len(line), LINE_MAX))
        return line

    def request(self, cmd, timeout=None, **fields):
        """Send `cmd` with `fields`; return the reply's fields (without id/ok). The first
        request of a connection clears the line first (module doc). ValueError (nothing
        sent) for a line longer than the device reads."""
        self._line(0, cmd, fields)                  # refuse an oversized line up front
        self.timeout_used = self.timeout if timeout is None else timeout
        self._last_garbage = None
        if not self.synced:
            self.drain()
            # a random id: another host's request is most unlikely to have used it
            fid = random.randrange(1, ID_MAX + 1)
            if cmd == "identify" and not fields:    # the request is its own fence
                self.port.write(b"\n" + self._line(fid, cmd, fields) + b"\n")
                return self._await(fid, _OWN_FENCE)
            self.port.write(b"\n" + self._line(fid, "identify", {}) + b"\n")
            self._await(fid, _FENCE)
        rid = self._next_id()
        self.port.write(self._line(rid, cmd, fields) + b"\n")
        return self._await(rid)

    def _await(self, rid, fence=0):
        """The reply to request `rid` (just sent): its fields, or DeviceError. Sets
        `synced` once it came; a timeout or garbage in lockstep clears it. `fence`: `rid`
        is an identify sent after the clearing newline, and only an identify reply (with
        `proto`) proves the link in lockstep: another reply with the same id is skipped
        (_FENCE), or an error reply is raised but leaves the link out of lockstep
        (_OWN_FENCE: the caller's identify, e.g. to a device without this firmware)."""
        deadline = self.clock() + self.timeout_used
        synced = self.synced
        while True:
            try:
                msg = self.parse(self._readline(deadline))
            except Timeout:
                self.synced = False
                raise
            except ProtocolError as e:
                if synced:
                    self.synced = False       # the device rebooted, or another talks here
                    raise
                self.garbage += 1
                self._last_garbage = e.line
                continue
            if "t" in msg and "id" not in msg:
                self.telemetry.append(msg)
                continue
            got = msg.get("id")
            ok = msg.get("ok")
            if got is None:
                err = msg.get("error")
                if (synced and ok is False and isinstance(err, dict)
                        and err.get("code") == "E_BUSY"):
                    raise self._error(msg)    # in lockstep: the reply to our line
                self.stale += 1               # another line's (a half line, another host)
                continue
            if got != rid or (fence and not (ok is True and "proto" in msg) and not (
                    fence == _OWN_FENCE and ok is False)):
                self.stale += 1
                continue
            if fence and ok is False:
                raise self._error(msg)        # not proven in lockstep: stay out of it
            self.synced = True
            if ok is True:
                out = dict(msg)
                del out["ok"]
                del out["id"]
                return out
            if ok is False:
                raise self._error(msg)
            raise ProtocolError("reply without ok: %r" % (msg,))

    @staticmethod
    def _error(msg):
        err = msg.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("code"), str):
            raise ProtocolError("error reply without a code: %r" % (msg,))
        return DeviceError(err["code"], str(err.get("msg", "")), msg)

    def read_telemetry(self, duration_s):
        """Collect telemetry for `duration_s` (clock seconds); returns the new lines."""
        deadline = self.clock() + duration_s
        self.timeout_used = duration_s
        got = []
        while True:
            try:
                msg = self.parse(self._readline(deadline))
            except Timeout:
                return got
            if "t" in msg:
                self.telemetry.append(msg)
                got.append(msg)
            else:
                self.stale += 1

    # ---- commands (docs/protocol.md) ----------------------------------------------------
    def identify(self):
        return self.request("identify")

    def status(self):
        return self.request("status")

    def start(self, **profile):
        return self.request("start", **profile)

    def stop(self):
        return self.request("stop")

    def pause(self):
        return self.request("pause")

    def resume(self):
        return self.request("resume")

    def reset(self):
        return self.request("reset")

    def set_telemetry(self, on, hz=10):
        if on:
            return self.request("telemetry", on=True, hz=hz)
        return self.request("telemetry", on=False)

    def sync_time(self, epoch=None):
        return self.request("time_set", epoch=int(time.time() if epoch is None else epoch))

    def selftest(self, timeout=10.0):
        return self.request("selftest", timeout=timeout)

    def schedule(self):
        return self.request("schedule")

    def read_log(self, start=0):
        """Every log record from session `start` on, page by page."""
        out = []
        nxt = start
        while True:
            page = self.request("log_read", **({"from": nxt} if nxt else {}))
            out.extend(page["records"])
            nxt = page["next"]
            if not nxt:
                return out


SESSION_STATES = ("WAIT_CONTACT", "RAMP_UP", "TREAT", "REVERSE", "RAMP_DOWN", "PAUSED")


def running_session(port, timeout=1.0):
    """The state of the session the firmware on `port` runs ("TREAT", ...), or None: no
    session, another program on the port, or nothing answered as this firmware within
    about `timeout` s (a board at its REPL, a blank board). The tools that take a board
    over through mpremote ask first: during a session the firmware ignores Ctrl-C, so
    mpremote would wait 20 s for a REPL that never comes."""
    try:
        dev = Client(port, timeout=timeout)
    except Exception:              # in use, gone: the caller's own open says why
        return None
    try:
        state = dev.status().get("state")
    except (ClientError, OSError, ValueError, AttributeError):
        return None
    finally:
        dev.close()
    return state if state in SESSION_STATES else None
