"""The telemetry line, written into a preallocated buffer: no garbage at 10-50 Hz.

A telemetry event runs from the loop's poll while current flows. Built the usual way (a
dict, json.dumps, encode, + LF) it leaves about 400 bytes of garbage per line, so
telemetry alone would fill the heap within a minute and the collection that follows
(over 20 ms on an RP2040) would stretch a control period past the safety monitor's
overrun limit. `TelLine.encode()` writes the same JSON object into one bytearray with
integer-to-digit code and returns a memoryview of the line (LF included); the views
of each length are made once and kept, so a line allocates nothing after the first of
its length. Names (states, faults) are encoded once, at construction.
"""

_MAX = 192
_HEAD = b'{"t":"tel","ms":'


def _quoted(names):
    return tuple(('"%s"' % n).encode() for n in names)


class TelLine:
    def __init__(self, state_names, fault_names):
        self._buf = bytearray(_MAX)
        self._mv = memoryview(self._buf)
        self._views = {}             # line length -> memoryview of the buffer's head
        self._names = (state_names, fault_names)
        self._states = _quoted(state_names)
        self._faults = _quoted(fault_names)
        self._buf[0:len(_HEAD)] = _HEAD

    def __deepcopy__(self, memo):
        """A fresh encoder (the buffer and its views are a cache; host tests copy apps)."""
        return TelLine(*self._names)

    def encode(self, ms, state, sp_ua, i_ua, v_mv, lim, fault, peak_ua):
        """The line for these values (state and fault as indices into the names);
        `peak_ua` < 0: no peak_ua field (DC)."""
        buf = self._buf
        p = _put_int(buf, len(_HEAD), ms)
        p = _put(buf, p, b',"state":')
        p = _put(buf, p, self._states[state])
        p = _put(buf, p, b',"sp_ua":')
        p = _put_int(buf, p, sp_ua)
        p = _put(buf, p, b',"i_ua":')
        p = _put_int(buf, p, i_ua)
        p = _put(buf, p, b',"v_mv":')
        p = _put_int(buf, p, v_mv)
        p = _put(buf, p, b',"lim":true' if lim else b',"lim":false')
        p = _put(buf, p, b',"fault":')
        p = _put(buf, p, self._faults[fault])
        if peak_ua >= 0:
            p = _put(buf, p, b',"peak_ua":')
            p = _put_int(buf, p, peak_ua)
        p = _put(buf, p, b'}\n')
        v = self._views.get(p)
        if v is None:
            v = self._mv[:p]
            self._views[p] = v
        return v


def _put(buf, p, b):
    q = p + len(b)
    buf[p:q] = b
    return q


def _put_int(buf, p, x):
    """Decimal digits of int `x` at buf[p:]; returns the end."""
    if x < 0:
        buf[p] = 45          # '-'
        p += 1
        x = -x
    q = x // 10
    end = p + 1
    while q:
        q //= 10
        end += 1
    i = end
    while True:
        i -= 1
        buf[i] = 48 + x % 10
        x //= 10
        if not x:
            break
    return end
