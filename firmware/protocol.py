"""Host line protocol: framing, validation of the envelope, one reply per line.

Input: bytes in any chunking (`feed`). A line ends with LF (a CR before it is dropped)
and holds at most LINE_MAX bytes; a longer line is discarded up to its LF and answered
once with E_TOO_LONG. Every line, even an empty one, gets exactly one reply:
    {"id": <the request's id or null>, "ok": true, ...command fields}
    {"id": ..., "ok": false, "error": {"code": "E_...", "msg": "..."}}
Events the host did not ask for (telemetry) carry "t" and never "id".

Each line is checked in this order: UTF-8 (E_UTF8), strict JSON (E_JSON, see jsonstrict),
a JSON object (E_JSON), "id" (E_TYPE; optional, an integer 0..2**31-1), "cmd" (E_MISSING,
E_TYPE), then the handler (E_UNKNOWN_CMD, field and state errors, see commands.py).
A handler raises schema.Reject for a refusal, before changing anything; any other
exception becomes E_INTERNAL and is counted (a bug: no test may see one).
Heap exhausted (MemoryError: while a session runs the app keeps the collector off, see
app.py): `busy()` answers the line with a constant E_BUSY line (id null: building any
other reply would allocate) and counts it.
The reference for every command and code is docs/protocol.md.
"""

import json

import jsonstrict
from schema import Reject, is_int

LINE_MAX = 256
ID_MAX = 0x7FFFFFFF
_LF = b"\n"
BUSY_LINE = (b'{"id": null, "ok": false, "error": {"code": "E_BUSY", "msg": "no memory for '
             b'requests until the session ends; telemetry goes on"}}\n')


class Protocol:
    def __init__(self, handler, write, line_max=LINE_MAX):
        """`handler(cmd, request_dict)` returns the reply's fields (a dict) or raises Reject;
        `write(data)` sends one line (LF included; bytes-like, consumed before it returns)."""
        self.handler = handler
        self.write = write
        self.line_max = line_max
        self._buf = bytearray(line_max + 1)    # + the CR of a CRLF
        self._n = 0
        self._long = False
        self.lines = 0          # lines answered
        self.rejected = 0       # of which refused
        self.internal = 0       # E_INTERNAL replies (bugs)
        self.busy_lines = 0     # E_BUSY replies (heap exhausted)
        self.on_line = self.handle_line   # what feed() does with each complete line
        self.write_errors = 0

    # ---- input ------------------------------------------------------------------------
    def feed(self, data, max_lines=-1):
        """Take bytes; answer each complete line. Stops after `max_lines` lines (-1: no
        limit) and returns how many bytes of `data` it consumed."""
        return self.feed_range(data, 0, len(data), max_lines)

    def feed_range(self, data, start, end, max_lines=-1):
        """feed() on data[start:end] without slicing; returns the index reached."""
        i = start
        done = 0
        while i < end and done != max_lines:
            j = data.find(_LF, i, end)
            stop = end if j < 0 else j
            k = stop - i
            if not self._long:
                n = self._n
                if n + k > self.line_max + 1:
                    self._long = True
                    self._n = 0
                elif k:
                    self._buf[n:n + k] = data[i:stop]
                    self._n = n + k
            if j < 0:
                return end
            i = j + 1
            done += 1
            if self._long:
                self._long = False
                self._error(None, "E_TOO_LONG", "line longer than %d bytes" % self.line_max)
                continue
            n = self._n
            self._n = 0
            if n and self._buf[n - 1] == 13:
                n -= 1
            if n > self.line_max:
                self._error(None, "E_TOO_LONG", "line longer than %d bytes" % self.line_max)
                continue
            self.on_line(bytes(self._buf[:n]))
        return i

    # ---- one line ---------------------------------------------------------------------
    def handle_line(self, line):
        """Answer one complete line (bytes without its LF): parse() then answer()."""
        req = self.parse(line)
        if req is not None:
            self.answer(req[0], req[1], req[2])

    def parse(self, line):
        """The first half of a line's work: the envelope checks. (id, cmd, request dict),
        or None when the line was refused (then it is answered already). A caller may
        answer() in a later loop period: on an RP2040 parsing a short request takes
        ~4 ms and answering `status` ~3 ms, together more than a period."""
        rid = None
        try:
            if not jsonstrict.utf8_ok(line):
                raise Reject("E_UTF8", "line is not valid UTF-8")
            try:
                req = jsonstrict.loads(line.decode("utf-8"))
            except ValueError as e:
                raise Reject("E_JSON", "invalid JSON: " + str(e))
            if not isinstance(req, dict):
                raise Reject("E_JSON", "request must be a JSON object")
            if "id" in req:
                v = req["id"]
                if not is_int(v) or v < 0 or v > ID_MAX:
                    raise Reject("E_TYPE", "id must be an integer 0..%d" % ID_MAX)
                rid = v
            if "cmd" not in req:
                raise Reject("E_MISSING", "missing field cmd")
            cmd = req["cmd"]
            if not isinstance(cmd, str):
                raise Reject("E_TYPE", "cmd must be a string")
        except Reject as e:
            self._error(rid, e.code, e.msg)
            return None
        return rid, cmd, req

    def answer(self, rid, cmd, req):
        """The second half: run the handler and send its reply (or its refusal). The
        handler returns a dict, or an object whose `line(rid)` is the whole reply line
        (None: send its `as_dict()` instead; statusline.StatusReply)."""
        try:
            out = self.handler(cmd, req)
        except Reject as e:
            self._error(rid, e.code, e.msg)
            return
        except Exception as e:
            if isinstance(e, MemoryError):
                raise e           # the caller answers it with busy(): nothing left to build
            self.internal += 1    # a bug: answer it, count it, keep the loop alive
            self._error(rid, "E_INTERNAL", "internal error: " + type(e).__name__)
            return
        if not isinstance(out, dict):     # a reply that writes its own line (statusline)
            line = out.line(rid)
            if line is not None:
                self.lines += 1
                self.event_raw(line)
                return
            out = out.as_dict()
        out["id"] = rid
        out["ok"] = True
        self.lines += 1
        self._send(out)

    def busy(self):
        """Answer the line being read with BUSY_LINE and drop the rest of it: the heap
        ran out while reading or answering it. Allocates nothing."""
        self._n = 0
        self._long = False
        self.lines += 1
        self.rejected += 1
        self.busy_lines += 1
        self.event_raw(BUSY_LINE)

    def _error(self, rid, code, msg):
        self.lines += 1
        self.rejected += 1
        self._send({"id": rid, "ok": False, "error": {"code": code, "msg": msg}})

    # ---- output -----------------------------------------------------------------------
    def _send(self, obj):
        try:
            data = json.dumps(obj).encode() + _LF
        except Exception as e:
            if isinstance(e, MemoryError):
                raise e           # the caller answers busy()
            self.write_errors += 1    # a reply that cannot be encoded: a bug, counted
            return
        try:
            self.write(data)
        except Exception:
            self.write_errors += 1

    def event_raw(self, line):
        """An unsolicited line already encoded (bytes-like, LF included); False when it
        could not be written."""
        try:
            self.write(line)
            return True
        except Exception:
            self.write_errors += 1
            return False
