"""Field validation shared by the protocol and the stored records.

A spec is a tuple of fields `(name, kind, lo, hi, required)`:
    INT   an integer (never true/false), lo..hi
    BOOL  true or false
    TEXT  a string of lo..hi characters from TEXT_CHARS
    DATE  "YYYY-MM-DD", 2020..2099
    CHOICE  one of the strings in the tuple `lo` (hi unused), e.g. a profile name
`check(obj, spec)` returns a new dict of the fields present, or raises `Reject` with a
stable error code: E_UNKNOWN_FIELD (a key the spec does not name; the alphabetically
first is reported), E_MISSING, E_TYPE, E_RANGE (in spec order). The same input gives
the same error on MicroPython and CPython.
"""

INT = 0
BOOL = 1
TEXT = 2
DATE = 3
CHOICE = 4

TEXT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-:/+#"
_BIG = 1000000000     # check_flat: a range within ±(10**9 - 1) ...
_HI_BIG = _BIG // 100000    # ...refuses a value of 10 digits from its parts alone
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class Reject(ValueError):
    """A refused request or record: `code` (stable, e.g. "E_RANGE") and a message."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


def quote(text, limit=24):
    """A bounded, printable rendering of untrusted text for an error message."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return "'" + text + "'"


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def value(name, v, kind, lo, hi):
    if kind == INT:
        if not is_int(v):
            raise Reject("E_TYPE", name + " must be an integer")
        if v < lo or v > hi:
            raise Reject("E_RANGE", "%s %d outside %d..%d" % (name, v, lo, hi))
    elif kind == BOOL:
        if v is not True and v is not False:
            raise Reject("E_TYPE", name + " must be true or false")
    elif kind == TEXT:
        if not isinstance(v, str):
            raise Reject("E_TYPE", name + " must be a string")
        if len(v) < lo or len(v) > hi:
            raise Reject("E_RANGE", "%s must have %d..%d characters" % (name, lo, hi))
        for c in v:
            if c not in TEXT_CHARS:
                raise Reject("E_RANGE", name + " may only hold letters, digits and ._-:/+# space")
    elif kind == DATE:
        if not isinstance(v, str):
            raise Reject("E_TYPE", name + " must be a string")
        if not _date_ok(v):
            raise Reject("E_RANGE", name + " must be a date YYYY-MM-DD (2020..2099)")
    elif kind == CHOICE:
        if not isinstance(v, str):
            raise Reject("E_TYPE", name + " must be a string")
        if v not in lo:
            raise Reject("E_RANGE", "%s %s not one of %s" % (name, quote(v), ", ".join(lo)))
    return v


def _date_ok(v):
    if len(v) != 10 or v[4] != "-" or v[7] != "-":
        return False
    for k in (0, 1, 2, 3, 5, 6, 8, 9):
        if v[k] not in "0123456789":
            return False
    y = int(v[0:4])
    m = int(v[5:7])
    d = int(v[8:10])
    if y < 2020 or y > 2099 or m < 1 or m > 12 or d < 1 or d > _DAYS[m - 1]:
        return False
    return m != 2 or d < 29 or y % 4 == 0


def check(obj, spec, ignore=()):
    """Validate dict `obj` against `spec` (keys in `ignore` pass unchecked)."""
    unknown = None
    for k in obj:
        if k in ignore:
            continue
        known = False
        for f in spec:
            if f[0] == k:
                known = True
                break
        if not known and (unknown is None or k < unknown):
            unknown = k
    if unknown is not None:
        raise Reject("E_UNKNOWN_FIELD", "unknown field " + quote(unknown))
    out = {}
    for name, kind, lo, hi, required in spec:
        if name in obj:
            out[name] = value(name, obj[name], kind, lo, hi)
        elif required:
            raise Reject("E_MISSING", "missing field " + name)
    return out


def check_flat(fr, spec, err, ignore=("id", "cmd")):
    """check() on a flat request (flatreq.FlatReq) with nothing allocated: None when it
    passes (the fields are then read from `fr` itself: fr[name], fr.get(name, default)),
    else `err` (replyline.ErrorLine) holding the refusal check() would raise, same code
    and message. Kinds INT and BOOL only: a spec with others is read with check()."""
    unknown = -1
    for i in range(fr.count):
        k = fr.name(i)
        if k is not None:
            if k in ignore:
                continue
            known = False
            for f in spec:
                if f[0] == k:
                    known = True
                    break
            if known:
                continue
        if unknown < 0 or fr.key_less(i, unknown):
            unknown = i
    if unknown >= 0:
        return err.begin("E_UNKNOWN_FIELD").text(b"unknown field ").quoted(
            fr.buf, fr.key_start(unknown), fr.key_end(unknown))
    for name, kind, lo, hi, required in spec:
        i = fr.find(name)
        if i < 0:
            if required:
                return err.begin("E_MISSING").text(b"missing field ").text(name)
            continue
        if kind == INT:
            if not fr.is_int(i):
                return err.begin("E_TYPE").text(name).text(b" must be an integer")
            vh = fr.int_hi(i)
            if (vh >= _HI_BIG or vh <= -_HI_BIG) and -_BIG < lo and hi < _BIG:
                # 10 digits, outside a range of 9: refused without the value itself (a
                # heap int on a board from 2**30)
                return err.begin("E_RANGE").text(name).text(b" ").parts(
                    vh, fr.int_lo(i)).text(b" outside ").num(lo).text(b"..").num(hi)
            v = fr.value(i)
            if v < lo or v > hi:
                return err.begin("E_RANGE").text(name).text(b" ").num(v).text(
                    b" outside ").num(lo).text(b"..").num(hi)
        elif kind == BOOL:
            if not fr.is_bool(i):
                return err.begin("E_TYPE").text(name).text(b" must be true or false")
        else:
            raise ValueError("check_flat reads INT and BOOL fields only")
    return None
