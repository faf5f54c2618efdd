"""The `status` reply, written into a preallocated buffer: cheap while a session runs.

While a session runs the collector is off (app.py), and on an RP2040 every allocation of
more than one 16-byte block then scans the used heap first-fit, ~0.4 ms each. Built the
usual way (a 36-field dict, json.dumps) a status reply took 9.7 ms of one poll there: with
the 1.1 ms control step past the safety monitor's overrun fault (two periods), so a host
watching a treatment through `status` (make monitor) ended it in FAULT within seconds
(measured on the emulated Pico, docs/emulated_pico.md). This writes the same JSON object
with no allocation but the one small view of the line.

`StatusReply(keys, names)`: `keys` the reply's field names in order, `names` every string a
field can hold (state, fault, profile, storage status names...), each quoted once here.
`fields` is the dict commands.status() fills in place (its keys exist from the start, so
assigning them allocates nothing). Protocol.answer() calls `line(rid)`: the reply line
(LF included, a memoryview valid until the next call), or None when a value is of a kind
this encoder does not know (an unknown string, a float): the caller then sends
`as_dict()` the usual way.
"""

from telemetry import put_bytes, put_int

_SIZE = 1024
_MAX_VALUE = 40           # the room one value may take (digits or a quoted name)
_SMALL = 0x3FFFFFFF       # the largest small int on a 32-bit port (2**30 and up are
#                           heap objects: even -2**30 in a comparison would allocate)
_NULL = b"null"
_TRUE = b"true"
_FALSE = b"false"


class StatusReply:
    def __init__(self, keys, names):
        self._args = (keys, names)
        self.keys = keys
        self.fields = {}
        for k in keys:
            self.fields[k] = None
        self._keys = tuple((',"%s":' % k).encode() for k in keys)
        self._names = {}
        for n in names:
            self._names[n] = ('"%s"' % n).encode()
        self._buf = bytearray(_SIZE)
        self._mv = memoryview(self._buf)
        self._buf[0:6] = b'{"id":'

    def __deepcopy__(self, memo):
        """A fresh encoder (the buffer is a cache, the fields are refilled by every
        status; host tests copy apps)."""
        return StatusReply(*self._args)

    def as_dict(self):
        """A copy of the fields (the usual reply path adds "id" and "ok" to it)."""
        return dict(self.fields)

    def line(self, rid):
        """The JSON line {"id": rid, "ok": true, ...fields} (LF included), or None (see
        the module doc)."""
        buf = self._buf
        p = 6
        p = _put_value(buf, p, rid)
        p = put_bytes(buf, p, b',"ok":true', 10)
        f = self.fields
        names = self._names
        keys = self.keys
        enc = self._keys
        end = _SIZE - _MAX_VALUE - 4
        for i in range(len(keys)):
            v = f[keys[i]]
            k = enc[i]
            if p + len(k) > end:
                return None
            p = put_bytes(buf, p, k, len(k))
            if isinstance(v, str):
                q = names.get(v)
                if q is None:
                    return None
                p = put_bytes(buf, p, q, len(q))
            else:
                p = _put_value(buf, p, v)
                if p < 0:
                    return None
        p = put_bytes(buf, p, b'}\n', 2)
        return self._mv[:p]


def _put_value(buf, p, v):
    """null, true, false or a small int at buf[p:]; the end, or -1 for any other kind."""
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
    return -1


def _put_big(buf, p, v):
    """An int beyond the viper range (e.g. epoch seconds): as a high part and five
    zero-padded digits (the split allocates two small results on a board, no more)."""
    if v < 0:
        buf[p] = 45
        p += 1
        v = -v
    hi = v // 100000
    lo = v - hi * 100000
    p = put_int(buf, p, hi) if hi <= _SMALL else -1
    if p < 0:
        return -1
    for i in range(4, -1, -1):
        buf[p + i] = 48 + lo % 10
        lo //= 10
    return p + 5
