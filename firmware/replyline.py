"""Replies written into preallocated buffers: cheap while a session runs.

While a session runs the collector is off (app.py), and on an RP2040 every allocation of
more than one 16-byte block then scans the used heap first-fit, ~0.4 ms each. Built the
usual way (a 36-field dict, json.dumps) a status reply took 9.7 ms of one poll there: with
the 1.1 ms control step past the safety monitor's overrun fault (two periods), so a host
watching a treatment through `status` (make monitor) ended it in FAULT within seconds
(measured on the emulated Pico, docs/emulated_pico.md). These write the same JSON with no
allocation but the one small view of the line.

`FieldReply(keys, names)`: a reply {"id": .., "ok": true, <keys in order>}. `keys` the
reply's field names, `names` every string a field can hold (state, fault, profile,
storage status names...), each quoted once here. `fields` is the dict the command
fills in place (its keys exist from the start, so assigning them allocates nothing).
Protocol.answer() calls `encode(rid)`: the reply line's length in `buf` (LF included,
valid until the next call), or -1 when a value is of a kind this encoder does not know
(an unknown string, a float): the caller then sends `as_dict()` the usual way.
`line(rid)` is the same as a memoryview (which allocates the view: for tests).
`begin(rid)` then `step(count)` until it returns no longer -2: the same line written
`count` fields at a time (a long reply spread over several loop polls: on an RP2040 the
36 fields of `status` take ~3 ms, more than half a period).
`FieldReply(keys, names, stages, fill)`: a reply whose command fills only part of its
fields itself, then calls `restart()`; `fill(k)` fills the rest, k = 1 .. `stages`, one
stage per step() before any field is written (filling `status` takes ~0.9 ms on an
RP2040: the command's poll and the next three share it). encode() and as_dict() run the
stages left at once.

`ErrorLine(names)`: a refusal {"id": .., "ok": false, "error": {"code": .., "msg": ..}}
composed from pieces: `begin(code)`, then `text(s)` (a str or bytes of printable ASCII
without '"' or '\\'; the strings in `names` are encoded once here, others on use),
`num(v)` (an int), `quoted(buf, s, e)` (buf[s:e] as schema.quote renders it), then
`encode(rid)` (or `line(rid)`). `plain(s)`: True when str `s` can go through text() as it is. Its `ok` is
False, so the protocol counts it as refused.
"""

import telemetry
from telemetry import put_bytes, put_int, put_kint, put_kv

import flatreq

_SIZE = 1024
_ERR_SIZE = 256          # an error line: code, and a message of at most ~150 bytes
_STR_PUT = put_bytes is not telemetry._put   # machine code reads a str's bytes as they are
_QUOTE = 24              # schema.quote's limit
_MAX_VALUE = 40           # the room one value may take (digits or a quoted name)
_SMALL = 0x3FFFFFFF       # the largest small int on a 32-bit port (2**30 and up are
#                           heap objects: even -2**30 in a comparison would allocate)
_NULL = b"null"
_TRUE = b"true"
_FALSE = b"false"


class SplitInt:
    """An int past the small-int range as two small ints, `hi` * 100000 + `lo` (0 <= lo
    < 100000), set in place: a field value FieldReply writes with nothing allocated
    (clock.Clock.epoch_hi/epoch_lo: epoch seconds). `value()`: the int (allocates)."""

    def __init__(self):
        self.hi = 0
        self.lo = 0

    def value(self):
        return self.hi * 100000 + self.lo


def _no_fill(stage):
    """The fill of a reply without stages (never called: stages is 0)."""


class FieldReply:
    ok = True
    steps = True          # may be written over several polls (begin, step)

    def __init__(self, keys, names, stages=0, fill=None):
        self._args = (keys, names, stages)
        self._fill = fill or _no_fill   # a function of the stage (1..stages)
        self.stages = stages
        self._k = 0               # the fill stages run since restart()
        self.keys = keys
        self._size = _SIZE
        self.fields = {}
        for k in keys:
            self.fields[k] = None
        self._keys = tuple((',"%s":' % k).encode() for k in keys)
        need = 96
        for k in self._keys:
            need += len(k) + _MAX_VALUE
        if need < self._size:
            self._size = need          # a short reply: a short buffer
        self._names = {}
        for n in names:
            self._names[n] = ('"%s"' % n).encode()
        self.buf = bytearray(self._size)
        self.buf[0:6] = b'{"id":'
        self._p = 0
        self._i = 0

    def __deepcopy__(self, memo):
        """A fresh encoder (the buffer is a cache, the fields are refilled by every
        status; host tests copy apps) that fills through the copy of its command."""
        import copy
        return FieldReply(*self._args, fill=copy.deepcopy(self._fill, memo))

    def as_dict(self):
        """A copy of the fields (the usual reply path adds "id" and "ok" to it)."""
        self._fill_all()
        d = dict(self.fields)
        for k in d:
            if isinstance(d[k], SplitInt):
                d[k] = d[k].value()
        return d

    def line(self, rid):
        """The JSON line {"id": rid, "ok": true, ...fields} (LF included, a memoryview: it
        allocates the view), or None (see the module doc)."""
        n = self.encode(rid)
        return None if n < 0 else memoryview(self.buf)[:n]

    def encode(self, rid):
        """That line written into `buf`: its length, or -1 (the caller sends as_dict())."""
        self.begin(rid)
        self._fill_all()
        return self.step(len(self.keys))

    def restart(self):
        """The command filled its own fields: its fill stages are to run again (in step(),
        encode() or as_dict())."""
        self._k = 0

    def _fill_all(self):
        while self._k < self.stages:
            self._k += 1
            self._fill(self._k)

    def begin(self, rid):
        """Start the line (id and ok); step() writes the fields."""
        p = _put_value(self.buf, 6, rid)
        self._p = put_bytes(self.buf, p, b',"ok":true', 10)
        self._i = 0

    def step(self, count):
        """Write up to `count` more fields, or run the next fill stage: -2 while
        stages or fields remain, else as encode()."""
        k = self._k
        if k < self.stages:
            self._k = k + 1
            self._fill(k + 1)
            return -2
        buf = self.buf
        p = self._p
        f = self.fields
        names = self._names
        keys = self.keys
        enc = self._keys
        end = self._size - _MAX_VALUE - 4
        i = self._i
        stop = i + count
        n = len(keys)
        if stop > n:
            stop = n
        while i < stop:
            v = f[keys[i]]
            k = enc[i]
            if p + len(k) > end:
                return -1
            # one machine-code call per field (each call costs ~25 µs on an RP2040)
            if v is None:
                p = put_kv(buf, p, k, len(k), _NULL, 4)
            elif v is True:
                p = put_kv(buf, p, k, len(k), _TRUE, 4)
            elif v is False:
                p = put_kv(buf, p, k, len(k), _FALSE, 5)
            elif isinstance(v, str):
                q = names.get(v)
                if q is None:
                    return -1
                p = put_kv(buf, p, k, len(k), q, len(q))
            elif isinstance(v, int) and -_SMALL <= v <= _SMALL:
                p = put_kint(buf, p, k, len(k), v)
            elif isinstance(v, SplitInt):
                p = _put_split(buf, put_bytes(buf, p, k, len(k)), v.hi, v.lo)
            else:
                p = _put_value(buf, put_bytes(buf, p, k, len(k)), v)
                if p < 0:
                    return -1
            i += 1
        self._p = p
        self._i = i
        if i < n:
            return -2
        return put_bytes(buf, p, b'}\n', 2)


def _put_value(buf, p, v):
    """null, true, false, an int or a SplitInt at buf[p:]; the end, or -1 for any other
    kind."""
    if v is None:
        return put_bytes(buf, p, _NULL, 4)
    if v is True:
        return put_bytes(buf, p, _TRUE, 4)
    if v is False:
        return put_bytes(buf, p, _FALSE, 5)
    if isinstance(v, int):
        if -_SMALL <= v <= _SMALL:
            return put_int(buf, p, v)
        return _put_big(buf, p, v)
    if isinstance(v, SplitInt):
        return _put_split(buf, p, v.hi, v.lo)
    return -1


def _put_big(buf, p, v):
    """An int beyond the viper range (e.g. epoch seconds): as a high part and five
    zero-padded digits (the split allocates two small results on a board, no more)."""
    if v < 0:
        buf[p] = 45
        p += 1
        v = -v
    hi = v // 100000
    if hi > _SMALL:
        return -1
    return _put_split(buf, p, hi, v - hi * 100000)


def _put_split(buf, p, hi, lo):
    """hi * 100000 + lo (hi >= 0, 0 <= lo < 100000, small ints) at buf[p:]; the end."""
    if hi:
        p = put_int(buf, p, hi)
        for i in range(4, -1, -1):
            buf[p + i] = 48 + lo % 10
            lo //= 10
        return p + 5
    return put_int(buf, p, lo)


class ErrorLine:
    ok = False
    steps = False

    def __init__(self, names=()):
        self._names = names
        self._enc = {}
        for n in names:
            self._enc[n] = n.encode()
        self._msg = bytearray(_ERR_SIZE)
        self._n = 0
        self._code = b""
        self.buf = bytearray(_ERR_SIZE + 96)   # + id, code and the JSON around them
        self.buf[0:6] = b'{"id":'

    def __deepcopy__(self, memo):
        """A fresh writer (host tests copy apps; the buffers are scratch)."""
        return ErrorLine(self._names)

    def begin(self, code):
        """A new refusal with error code `code` (str)."""
        self._code = self._bytes(code)
        self._n = 0
        return self

    def _bytes(self, s):
        if isinstance(s, str):
            b = self._enc.get(s)
            if b is not None:
                return b
            return s if _STR_PUT else s.encode()
        return s

    def text(self, s):
        b = self._bytes(s)
        n = len(b)
        if self._n + n > _ERR_SIZE:
            n = _ERR_SIZE - self._n       # a message never outgrows its line
        self._n = put_bytes(self._msg, self._n, b, n)
        return self

    def num(self, v):
        if self._n + 24 <= _ERR_SIZE:
            if -_SMALL <= v <= _SMALL:
                self._n = put_int(self._msg, self._n, v)
            else:
                p = _put_big(self._msg, self._n, v)
                if p > 0:
                    self._n = p
        return self

    def parts(self, hi, lo):
        """The int hi * 100000 + lo (small ints of one sign: flatreq.FlatReq.int_hi), with
        nothing allocated."""
        if self._n + 24 <= _ERR_SIZE:
            n = self._n
            if hi < 0 or lo < 0:
                self._msg[n] = 45            # '-'
                n += 1
                hi = -hi
                lo = -lo
            self._n = _put_split(self._msg, n, hi, lo)
        return self

    def quoted(self, buf, s, e):
        """buf[s:e] in quotes, cut to 24 bytes and "..." (schema.quote: plain ASCII)."""
        cut = e - s > _QUOTE
        if cut:
            e = s + _QUOTE
        msg = self._msg
        if self._n + _QUOTE + 5 <= _ERR_SIZE:
            n = self._n
            msg[n] = 39                      # "'"
            for i in range(s, e):
                n += 1
                msg[n] = buf[i]
            n += 1
            if cut:
                n = put_bytes(msg, n, b"...", 3)
            msg[n] = 39
            self._n = n + 1
        return self

    def line(self, rid):
        """The refusal's line (LF included; a memoryview: it allocates the view)."""
        return memoryview(self.buf)[:self.encode(rid)]

    def encode(self, rid):
        """The line written into `buf`; its length."""
        buf = self.buf
        p = _put_value(buf, 6, rid)
        p = put_bytes(buf, p, b',"ok":false,"error":{"code":"', 29)
        c = self._code
        p = put_bytes(buf, p, c, len(c))
        p = put_bytes(buf, p, b'","msg":"', 9)
        p = put_bytes(buf, p, self._msg, self._n)
        return put_bytes(buf, p, b'"}}\n', 4)


def plain(s):
    """True when every character of str `s` is printable ASCII but '"' and '\\' (so it
    goes into a JSON string as it is)."""
    return flatreq.plain(s, len(s)) == 1
