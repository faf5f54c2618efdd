"""The telemetry line, written into a preallocated buffer: no garbage at 10-50 Hz.

A telemetry event runs from the loop's poll while current flows. Built the usual way (a
dict, json.dumps, encode, + LF) it leaves about 400 bytes of garbage per line, so
telemetry alone would fill the heap within a minute and the collection that follows
(over 20 ms on an RP2040) would stretch a control period past the safety monitor's
overrun limit. `TelLine.encode()` writes the same JSON object into one bytearray with
integer-to-digit code (viperput.py's machine code where the port compiles it, the
bytecode twins below elsewhere) and returns a memoryview of the line (LF included). The views of
every length a line can have are made at construction (about 110 of them, ~3.5 KB on a
32-bit board), so a line allocates nothing, not even the first of its length (a view
made in the loop would be garbage the collector may not collect while a session runs).
Names (states, faults) are encoded once, at construction.
"""

_MAX = 192
_HEAD = b'{"t":"tel","ms":'
_K_STATE = b',"state":'
_K_SP = b',"sp_ua":'
_K_I = b',"i_ua":'
_K_V = b',"v_mv":'
_K_LIM1 = b',"lim":true'
_K_LIM0 = b',"lim":false'
_K_FAULT = b',"fault":'
_K_PEAK = b',"peak_ua":'
_K_END = b'}\n'
_KEYS = (_K_STATE, _K_SP, _K_I, _K_V, _K_LIM1, _K_FAULT, _K_END)     # of the shortest line
# the lengths, looked up in the loop instead of len() calls
_N_HEAD = len(_HEAD)
_N_STATE = len(_K_STATE)
_N_SP = len(_K_SP)
_N_I = len(_K_I)
_N_V = len(_K_V)
_N_LIM1 = len(_K_LIM1)
_N_LIM0 = len(_K_LIM0)
_N_FAULT = len(_K_FAULT)
_N_PEAK = len(_K_PEAK)


def _quoted(names):
    return tuple(('"%s"' % n).encode() for n in names)


class TelLine:
    def __init__(self, state_names, fault_names):
        self._buf = bytearray(_MAX)
        self._names = (state_names, fault_names)
        self._states = _quoted(state_names)
        self._faults = _quoted(fault_names)
        self._buf[0:len(_HEAD)] = _HEAD
        # the shortest line: one digit per number, the shortest names, "lim":true
        self._min = len(_HEAD) + 4 + min(len(n) for n in self._states) + \
            min(len(n) for n in self._faults) + sum(len(k) for k in _KEYS)
        mv = memoryview(self._buf)
        self._views = [mv[:n] for n in range(self._min, _MAX + 1)]

    def __deepcopy__(self, memo):
        """A fresh encoder (the buffer and its views are a cache; host tests copy apps)."""
        return TelLine(*self._names)

    def encode(self, ms, state, sp_ua, i_ua, v_mv, lim, fault, peak_ua):
        """The line for these values (state and fault as indices into the names);
        `peak_ua` < 0: no peak_ua field (DC). A key and its value go in one call
        (put_kv, put_kint): on an RP2040 each call costs ~25 µs, more than its bytes."""
        buf = self._buf
        kv = _fput_kv
        kint = _fput_kint
        p = (_fput_int if ms <= 0x3FFFFFFF else _put_int)(buf, _N_HEAD, ms)   # viper: small ints
        name = self._states[state]
        p = kv(buf, p, _K_STATE, _N_STATE, name, len(name))
        p = kint(buf, p, _K_SP, _N_SP, sp_ua)
        p = kint(buf, p, _K_I, _N_I, i_ua)
        p = kint(buf, p, _K_V, _N_V, v_mv)
        if lim:
            p = kv(buf, p, _K_LIM1, _N_LIM1, _K_FAULT, _N_FAULT)
        else:
            p = kv(buf, p, _K_LIM0, _N_LIM0, _K_FAULT, _N_FAULT)
        name = self._faults[fault]
        if peak_ua >= 0:
            p = kint(buf, _fput(buf, p, name, len(name)), _K_PEAK, _N_PEAK, peak_ua)
            p = _fput(buf, p, _K_END, 2)
        else:
            p = kv(buf, p, name, len(name), _K_END, 2)
        return self._views[p - self._min]


def _put(buf, p, src, n):
    """src[0:n] at buf[p:]; returns the end (viperput.put's bytecode twin). Byte by byte:
    a slice assignment builds a slice object on some ports (16 bytes each)."""
    for i in range(n):
        buf[p + i] = src[i]
    return p + n


def _put_int(buf, p, x):
    """Decimal digits of int `x` at buf[p:]; returns the end (viperput.put_int's twin)."""
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


def _put_kv(buf, p, k, kn, v, vn):
    """viperput.put_kv's bytecode twin."""
    return _put(buf, _put(buf, p, k, kn), v, vn)


def _put_kint(buf, p, k, kn, x):
    """viperput.put_kint's bytecode twin."""
    return _put_int(buf, _put(buf, p, k, kn), x)


try:
    import viperput                  # machine code (viper); its parameters are typed ptr8,
    _fput = getattr(viperput, "put")          # which the viper compiler makes of the
    _fput_int = getattr(viperput, "put_int")  # bytearray and bytes passed in (getattr:
    _fput_kv = getattr(viperput, "put_kv")
    _fput_kint = getattr(viperput, "put_kint")
except (ImportError, SyntaxError, NameError):  # the type checker knows no such cast)
    _fput = _put                     # no native emitter here: see viperput
    _fput_int = _put_int
    _fput_kv = _put_kv
    _fput_kint = _put_kint

# for the other preallocated lines (replyline.py): put_bytes(buf, p, src, n) and
# put_int(buf, p, x) for |x| < 2**30, machine code where the port compiles it
put_bytes = _fput
put_int = _fput_int
put_kv = _fput_kv
put_kint = _fput_kint
