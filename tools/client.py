"""Host client for the device's line protocol (docs/protocol.md), on any pyserial port.

    from tools.client import Client
    with Client("/dev/ttyACM0") as dev:          # or "socket://host:port", "loop://", a pty
        print(dev.identify())
        dev.sync_time()
        dev.start(target_ua=12000, duration_s=600)
        print(dev.status()["i_ua"])

`request(cmd, **fields)` sends one JSON line with a fresh id and waits for the reply with
that id. Telemetry lines met on the way are queued in `telemetry` (bounded); replies to
older ids (after a timeout) are skipped and counted in `stale`. Errors:
    Timeout        no reply within the timeout
    ProtocolError  a line that is not a JSON object of the protocol (garbage, REPL text)
    DeviceError    the device refused: `.code` ("E_RANGE", ...), `.msg`, `.reply`
All three derive from ClientError. The clock is injectable (tests run in virtual time).
"""

import collections
import json
import time

LINE_MAX = 256           # the device's request line limit (bytes, LF excluded)
ID_MAX = 0x7FFFFFFF
_POLL_S = 0.05           # port read timeout: how often the deadline is looked at
_JUNK_MAX = 65536        # bytes without a newline before the stream counts as garbage


class ClientError(Exception):
    pass


class Timeout(ClientError):
    pass


class ProtocolError(ClientError):
    pass


class DeviceError(ClientError):
    def __init__(self, code, msg, reply=None):
        ClientError.__init__(self, "%s: %s" % (code, msg))
        self.code = code
        self.msg = msg
        self.reply = reply


def open_port(url, baudrate=115200):
    """A pyserial port for any pyserial URL or device path."""
    import serial
    return serial.serial_for_url(url, baudrate=baudrate, timeout=_POLL_S)


class Client:
    def __init__(self, port, timeout=2.0, baudrate=115200, clock=time.monotonic,
                 telemetry_max=10000):
        """`port`: a pyserial URL/path or an open port object (read/write/in_waiting)."""
        self.port = open_port(port, baudrate) if isinstance(port, str) else port
        self.timeout = timeout
        self.timeout_used = timeout
        self.clock = clock
        self._buf = bytearray()
        self._id = 0
        self.telemetry = collections.deque(maxlen=telemetry_max)
        self.stale = 0

    # ---- plumbing ---------------------------------------------------------------------
    def close(self):
        self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def drain(self):
        """Discard whatever the device sent before (boot text, old replies)."""
        self._buf.clear()
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
                    _JUNK_MAX, head))
            if self.clock() >= deadline:
                raise Timeout("no reply within %.2f s" % self.timeout_used)
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
            raise ProtocolError("garbage from the device: %r" % line[:80])
        if not isinstance(msg, dict) or not ("t" in msg or "ok" in msg):
            raise ProtocolError("not a reply or event: %r" % line[:80])
        return msg

    # ---- requests -----------------------------------------------------------------------
    def request(self, cmd, timeout=None, **fields):
        """Send `cmd` with `fields`; return the reply's fields (without id/ok)."""
        rid = self._next_id()
        req = {"id": rid, "cmd": cmd}
        req.update(fields)
        line = json.dumps(req, separators=(",", ":")).encode()
        if len(line) > LINE_MAX:
            raise ValueError("request is %d bytes, the device takes at most %d" % (
                len(line), LINE_MAX))
        self.port.write(line + b"\n")
        self.timeout_used = self.timeout if timeout is None else timeout
        deadline = self.clock() + self.timeout_used
        while True:
            msg = self.parse(self._readline(deadline))
            if "t" in msg and "id" not in msg:
                self.telemetry.append(msg)
                continue
            got = msg.get("id")
            ok = msg.get("ok")
            if got is None and ok is False:
                # the device could not read a request line at all: it can only be ours
                raise self._error(msg)
            if got != rid:
                self.stale += 1
                continue
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
