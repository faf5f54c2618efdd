"""A request line read as a flat JSON object, in place and without allocating.

While a session runs the collector is off (app.py), so every byte a request allocates
stays taken until the session ends, and on an RP2040 each allocation then costs ~0.4 ms
(replyline.py). jsonstrict builds a dict, its strings and its ints: ~4 ms per short line
there. A flat request (flatscan.py: an object of small scalars, the form every request a
host sends during a session takes) is read here instead, straight from the protocol's
line buffer: the member offsets go into a preallocated array and every key, and the
command's name, is found in a table of the protocol's names (a hash, then the bytes),
so nothing is built.

`FlatReq(names)`: `names` every field and command name the protocol knows (ASCII str).
    scan(buf, n)      True when buf[0:n] is a flat object (its members are then read
                      from buf, which must not change until the request is answered)
    count             members read; name(i): member i's key (one of `names`, or None);
                      id_at, cmd_at: the index of the last "id" and "cmd" members, or -1
    kind(i)           INT, STR, TRUE, FALSE or NULL; value(i): its int, True, False,
                      None, or for a string the name it spells (one of `names`, or None)
    int_hi(i), int_lo(i)   an integer as hi * 100000 + lo: two small ints even where
                      value(i) would be a heap int (2**30 or more on a 32-bit port)
    find(name)        the index of the last member with that key (JSON: the last wins), -1
    key_start(i), key_end(i), str_start(i), str_end(i)   offsets in buf; key_less(i, j)
    is_int(i), is_bool(i)
    f[name], f.get(name, default), name in f   the values, as a checked field dict
                      gives them (schema.check_flat first: kinds INT and BOOL only)
    as_dict()         the request as jsonstrict.loads gives it (allocates: for commands
                      read the usual way)
"""

from array import array

MAX_MEMBERS = 16
W = 6                     # ints per member in the scan's array (flatscan.scan)
INT = 0
STR = 1
TRUE = 2
FALSE = 3
NULL = 4


class FlatReq:
    def __init__(self, names):
        self.m = array("i", [0] * (W * MAX_MEMBERS))
        self.buf = bytearray(0)    # the line buffer read last (scan)
        self.count = 0
        self.keys = [None] * MAX_MEMBERS
        self.id_at = -1            # the last "id" and "cmd" members (-1: none)
        self.cmd_at = -1
        table = {}
        for nm in names:
            b = nm.encode()
            h = key_hash(b, 0, len(b))
            table[h] = table.get(h, ()) + ((nm, b),)
        self._table = table

    def scan(self, buf, n):
        """Read buf[0:n]; True when it is flat. Its keys are then resolved (inline, not
        through _lookup: on an RP2040 a method call costs ~30 µs, and this is the
        request path's largest share)."""
        k = scan(buf, n, self.m, MAX_MEMBERS)
        self.id_at = -1
        self.cmd_at = -1
        if k < 0:
            self.count = 0
            return False
        self.buf = buf
        self.count = k
        m = self.m
        keys = self.keys
        table = self._table
        o = 0
        for i in range(k):
            name = None
            cands = table.get(m[o + 5])
            if cands is not None:
                for c in cands:
                    b = c[1]
                    if same(buf, m[o], m[o + 1], b, len(b)):
                        name = c[0]
                        break
            keys[i] = name
            if name == "id":
                self.id_at = i
            elif name == "cmd":
                self.cmd_at = i
            o += W
        return True

    def _lookup(self, s, e):
        cands = self._table.get(key_hash(self.buf, s, e))
        if cands is not None:
            for c in cands:
                b = c[1]
                if same(self.buf, s, e, b, len(b)):
                    return c[0]
        return None

    def name(self, i):
        return self.keys[i]

    def kind(self, i):
        return self.m[W * i + 2]

    def is_int(self, i):
        return self.m[W * i + 2] == INT

    def is_bool(self, i):
        k = self.m[W * i + 2]
        return k == TRUE or k == FALSE

    def key_start(self, i):
        return self.m[W * i]

    def key_end(self, i):
        return self.m[W * i + 1]

    def str_start(self, i):
        return self.m[W * i + 3]

    def str_end(self, i):
        return self.m[W * i + 4]

    def key_less(self, i, j):
        """True when member i's key sorts before member j's (as str comparison does)."""
        m = self.m
        return less(self.buf, m[W * i], m[W * i + 1], m[W * j], m[W * j + 1]) == 1

    def value(self, i):
        o = W * i
        k = self.m[o + 2]
        if k == INT:
            hi = self.m[o + 4]
            if hi:
                return hi * 100000 + self.m[o + 3]    # a heap int from 2**30 on a board
            return self.m[o + 3]
        if k == TRUE:
            return True
        if k == FALSE:
            return False
        if k == NULL:
            return None
        return self._lookup(self.m[o + 3], self.m[o + 4])

    def int_hi(self, i):
        """Member i's integer is int_hi(i) * 100000 + int_lo(i), two small ints with its
        sign: read without allocating whatever the value (replyline.SplitInt)."""
        return self.m[W * i + 4]

    def int_lo(self, i):
        return self.m[W * i + 3]

    def find(self, name):
        keys = self.keys
        i = self.count - 1
        while i >= 0:
            if keys[i] == name:
                return i
            i -= 1
        return -1

    # ---- the checked fields, as a dict would give them ------------------------------------
    def __getitem__(self, name):
        i = self.find(name)
        if i < 0:
            raise KeyError(name)
        return self.value(i)

    def get(self, name, default=None):
        i = self.find(name)
        return default if i < 0 else self.value(i)

    def __contains__(self, name):
        return self.find(name) >= 0

    def as_dict(self):
        buf = self.buf
        m = self.m
        out = {}
        for i in range(self.count):
            o = W * i
            k = self.keys[i]
            if k is None:
                k = bytes(buf[m[o]:m[o + 1]]).decode()
            if m[o + 2] == STR:
                out[k] = bytes(buf[m[o + 3]:m[o + 4]]).decode()
            else:
                out[k] = self.value(i)
        return out


try:
    import flatscan as _impl           # machine code where the port compiles viper
    MACHINE_CODE = True
except (ImportError, SyntaxError, NameError):
    import flattwin as _impl           # bytecode (flattwin.py), imported only where needed
    # a number of 2**30 or more then becomes a heap int on a 32-bit port (e.g. time_set's
    # epoch): such a scan allocates, where the machine code never does
    MACHINE_CODE = False
scan = getattr(_impl, "scan")          # (getattr: the type checker knows no ptr8 cast)
key_hash = getattr(_impl, "key_hash")
same = getattr(_impl, "same")
less = getattr(_impl, "less")
plain = getattr(_impl, "plain")
copy = getattr(_impl, "copy")
