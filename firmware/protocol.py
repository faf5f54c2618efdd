"""Host line protocol: framing, validation of the envelope, one reply per line.

Input: bytes in any chunking (`feed`). A line ends with LF (a CR before it is dropped)
and holds at most LINE_MAX bytes; a longer line is discarded up to its LF and answered
once with E_TOO_LONG. Every line, even an empty one, gets exactly one reply:
    {"id": <the request's id or null>, "ok": true, ...command fields}
    {"id": ..., "ok": false, "error": {"code": "E_...", "msg": "..."}}
Events the host did not ask for (telemetry) carry "t" and never "id".
Every reply is ASCII (valid UTF-8 and JSON): a character of the request echoed in a
reply (an unknown command or field name, a refused choice) is written as a \\uXXXX
escape, a lone surrogate too (jsonstrict.ascii_escape; the flat and preallocated lines
hold printable ASCII only).

Each line is checked in this order: UTF-8 (E_UTF8), strict JSON (E_JSON, see jsonstrict),
a JSON object (E_JSON), "id" (E_TYPE; optional, an integer 0..2**31-1), "cmd" (E_MISSING,
E_TYPE), then the handler (E_UNKNOWN_CMD, field and state errors, see commands.py).
A handler raises schema.Reject for a refusal, before changing anything; any other
exception becomes E_INTERNAL and is counted (a bug: no test may see one).
Heap exhausted (MemoryError: while a session runs the app keeps the collector off, see
app.py): `busy()` answers the line with a constant E_BUSY line (id null: building any
other reply would allocate) and counts it.
A line is first read as a flat request (flatreq.py: an object of small scalars, read in
place without allocating); any other line is read with jsonstrict, the same checks with
the same answers. While a session runs (`flat_only`, set by the app) a line that is not
flat is not read at all: it gets the constant FLAT_ONLY_LINE (E_BUSY, id null), so a
request costs a bounded, allocation-free time while current flows (docs/protocol.md).
The reference for every command and code is docs/protocol.md.
"""

import json

import jsonstrict
from flatreq import INT, STR, W, FlatReq, copy
from replyline import ErrorLine, SplitInt, plain
from schema import Reject, is_int

LINE_MAX = 256
# every error code (docs/protocol.md), encoded once for the error lines
CODES = ("E_UTF8", "E_JSON", "E_TYPE", "E_MISSING", "E_TOO_LONG", "E_UNKNOWN_CMD",
         "E_UNKNOWN_FIELD", "E_RANGE", "E_STATE", "E_DENIED", "E_STORAGE", "E_AUTH",
         "E_LOCKED", "E_INTERNAL", "E_BUSY")
ID_MAX = 0x7FFFFFFF
_LF = b"\n"
FLAT_ONLY_LINE = (b'{"id": null, "ok": false, "error": {"code": "E_BUSY", "msg": "during a '
                  b'session only flat requests are read: one JSON object of integers, true, '
                  b'false, null and ASCII strings without escapes"}}\n')
BUSY_LINE = (b'{"id": null, "ok": false, "error": {"code": "E_BUSY", "msg": "no memory for '
             b'requests until the session ends; telemetry goes on"}}\n')


class Protocol:
    def __init__(self, handler, write, line_max=LINE_MAX, names=(), write_n=None):
        """`handler(cmd, request)` returns the reply's fields (a dict, or a reply object:
        see answer()) or raises Reject; `request` is a dict, or a flatreq.FlatReq, and
        `cmd` then the command's name when it is one of `names`, else None (the handler
        quotes it from the request). `names`: every command and field name (str), for
        the flat reader and the error lines. `write(data)` sends one line (LF included;
        bytes-like, consumed before it returns); `write_n(buf, n)`, if given, sends
        buf[0:n] (a preallocated reply line without making a view of it)."""
        self.handler = handler
        self.write = write
        self.write_n = write_n
        self.fields_per_poll = 0   # > 0: a long reply is written this many fields per
        self._out = None           # resume() call (the one being written)
        self._out_rid = None
        self._begun = False
        self._out_n = -2          # its length once written (-1: send it as a dict)
        self.rid = None            # the request parse() left for answer()
        self._big_rid = SplitInt()  # its id from 100000 (_parse_flat)
        self.cmd = None
        self.req = None
        self.line_max = line_max
        names = tuple(names) + ("id", "cmd")
        self.flat = FlatReq(names)
        self.err = ErrorLine(names + CODES)
        self.flat_only = False     # a session runs: lines that are not flat are not read
        self._too_long = ('{"id": null, "ok": false, "error": {"code": "E_TOO_LONG", '
                          '"msg": "line longer than %d bytes"}}\n' % line_max).encode()
        self._buf = bytearray(line_max + 2)    # + the CR of a CRLF, + the byte scan reads
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
                    self._n = copy(self._buf, n, data, i, k)    # no slice: no garbage
            if j < 0:
                return end
            i = j + 1
            done += 1
            if self._long:
                self._long = False
                self._const(self._too_long)
                continue
            n = self._n
            self._n = 0
            if n and self._buf[n - 1] == 13:
                n -= 1
            if n > self.line_max:
                self._const(self._too_long)
                continue
            self.on_line(n)
        return i

    # ---- one line ---------------------------------------------------------------------
    def handle_line(self, n):
        """Answer one complete line (the line buffer's first n bytes, no LF): parse() then
        answer()."""
        if self.parse(n):
            self.answer()

    def parse(self, n):
        """The first half of a line's work (the line buffer's first n bytes): the
        envelope checks. True when a request waits for answer() (in `rid`, `cmd`,
        `req`); False when the line was refused (it is answered already). A caller may
        answer() in a later loop period, before any more input is fed (a flat request is
        read from the line buffer): on an RP2040 parsing a short request with jsonstrict
        takes ~4 ms and answering `status` ~1 ms."""
        fr = self.flat
        if fr.scan(self._buf, n):
            return self._parse_flat(fr)
        return self.parse_json(n)

    def parse_flat(self, n):
        """parse() of a flat line only, allocating nothing: True or False as parse(), or
        None when the line is not flat (nothing done: parse_json(n) reads it)."""
        fr = self.flat
        if fr.scan(self._buf, n):
            return self._parse_flat(fr)
        return None

    def parse_json(self, n):
        """parse() of a line that is not flat: jsonstrict (it allocates), or, while
        `flat_only`, the constant FLAT_ONLY_LINE (nothing allocated)."""
        if self.flat_only:
            self._const(FLAT_ONLY_LINE)
            return False
        line = bytes(self._buf[:n])
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
            return False
        self.rid = rid
        self.cmd = cmd
        self.req = req
        return True

    def _parse_flat(self, fr):
        """parse() for a flat request: the same checks, nothing allocated."""
        rid = None
        m = fr.m
        i = fr.id_at
        if i >= 0:
            o = W * i
            hi = m[o + 4]                          # flatscan: hi * 100000 + lo
            lo = m[o + 3]
            if m[o + 2] != INT or hi < 0 or lo < 0:   # 10 digits at most: <= ID_MAX
                self._reply(None, self.err.begin("E_TYPE").text(
                    b"id must be an integer 0..2147483647"))
                return False
            if hi:
                # up to 2**31 - 1 (tools/client.py picks them at random): from 2**30 a
                # heap int on a board, so the id stays in parts, written back as digits
                rid = self._big_rid
                rid.hi = hi
                rid.lo = lo
            else:
                rid = lo
        i = fr.cmd_at
        if i < 0:
            self._reply(rid, self.err.begin("E_MISSING").text(b"missing field cmd"))
            return False
        if m[W * i + 2] != STR:
            self._reply(rid, self.err.begin("E_TYPE").text(b"cmd must be a string"))
            return False
        self.rid = rid
        self.cmd = fr.value(i)
        self.req = fr
        return True

    def answer(self):
        """The second half: run the handler and send its reply (or its refusal). The
        handler returns a dict, or an object whose `line(rid)` is the whole reply line
        (None: send its `as_dict()` instead; replyline.FieldReply) and whose `ok` says
        whether it is a refusal (replyline.ErrorLine)."""
        rid = self.rid
        req = self.req
        self.req = None
        try:
            out = self.handler(self.cmd, req)
        except Reject as e:
            self._error(rid, e.code, e.msg)
            return
        except Exception as e:
            if isinstance(e, MemoryError):
                raise e           # the caller answers it with busy(): nothing left to build
            self.internal += 1    # a bug: answer it, count it, keep the loop alive
            self._error(rid, "E_INTERNAL", "internal error: " + type(e).__name__)
            return
        if not isinstance(out, dict):     # a reply that writes its own line (replyline)
            self._reply(rid, out)
            return
        out["id"] = _plain_id(rid)
        out["ok"] = True
        self.lines += 1
        self._send(out)

    def _reply(self, rid, out):
        """Send a reply object's line (replyline.FieldReply, ErrorLine): counted, and
        refused when its `ok` is False. With `fields_per_poll` set, a reply with more
        fields than that is only begun here: resume() writes it, poll by poll. A short
        one goes out now: `stop`'s reply never waits behind the session's log write."""
        if out.steps and 0 < self.fields_per_poll < len(out.keys):
            self._out = out            # begun in the first resume(): not in the
            self._out_rid = rid        # handler's poll (a big id takes ~0.2 ms)
            self._begun = False
            self._out_n = -2
            return
        self._finish(out, rid, out.encode(rid))

    def writing(self):
        """True while a reply is being written in steps (call resume())."""
        return self._out is not None

    def resume(self):
        """Write the next `fields_per_poll` fields of the reply being written, or send
        the line once they are all written (a call of its own: sending ~0.9 KB takes
        ~0.2 ms on an RP2040). True while fields remain or the line is not sent."""
        out = self._out
        if out is None:
            return False
        n = self._out_n
        if n == -2:
            if not self._begun:
                self._begun = True
                out.begin(self._out_rid)
            self._out_n = out.step(self.fields_per_poll)
            return True
        self._out = None
        self._out_n = -2
        self._finish(out, self._out_rid, n)
        return False

    def _finish(self, out, rid, n):
        if n < 0:
            d = out.as_dict()
            d["id"] = _plain_id(rid)
            d["ok"] = True
            self.lines += 1
            self._send(d)
            return
        self.lines += 1
        if not out.ok:
            self.rejected += 1
        try:
            if self.write_n is not None:
                self.write_n(out.buf, n)
            else:
                self.write(memoryview(out.buf)[:n])
        except Exception:
            self.write_errors += 1

    def _const(self, line):
        """A constant refusal line (id null)."""
        self.lines += 1
        self.rejected += 1
        self.event_raw(line)

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
        if plain(msg) and len(msg) < 200:
            self._reply(rid, self.err.begin(code).text(msg))    # no dict, no json.dumps
            return
        self.lines += 1
        self.rejected += 1
        self._send({"id": _plain_id(rid), "ok": False, "error": {"code": code, "msg": msg}})

    # ---- output -----------------------------------------------------------------------
    def _send(self, obj):
        """Send a reply dict as one line of ASCII JSON: strings that echo the request
        (an unknown command or field, a choice refused) may hold any character, and
        MicroPython's json.dumps writes them raw (jsonstrict.ascii_escape)."""
        try:
            data = jsonstrict.ascii_escape(json.dumps(obj).encode()) + _LF
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


def _plain_id(rid):
    """A request id as JSON writes it: a SplitInt (_parse_flat) as its int."""
    return rid.value() if isinstance(rid, SplitInt) else rid
