"""Strict JSON for one request line: the same answer on MicroPython and CPython.

MicroPython's `json.loads` is lenient: it accepts `{"a":1,}`, `{"a" 1}`, `{,}`, `01`,
`1.` and more, which CPython (and RFC 8259) reject. A request the board would read
differently from the host's tests is a request nobody tested, so the protocol parses
with this module instead: RFC 8259 exactly, as CPython's `json.loads` reads it, except
that NaN/Infinity are refused and nesting is bounded (MAX_DEPTH).

`loads(text)` returns the value or raises ValueError with a short reason and the
character position. `utf8_ok(data)` is a strict UTF-8 check (no overlongs, surrogates
or code points above U+10FFFF: MicroPython's decoder lets those through).
`ascii_escape(data)` makes json.dumps output ASCII (\\uXXXX escapes): the protocol's
replies are ASCII on every port, whatever a request's strings held.
Runs outside the control step; it may allocate.
"""

MAX_DEPTH = 8
_WS = " \t\n\r"
_DIGITS = "0123456789"
_HEX = "0123456789abcdefABCDEF"
_ESC = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# byte pairs that MicroPython's decoder accepts but UTF-8 forbids: (lead, lo, hi) means
# the lead byte followed by a continuation byte in lo..hi is invalid
_BAD_PAIRS = ((0xE0, 0x80, 0x9F), (0xED, 0xA0, 0xBF), (0xF0, 0x80, 0x8F), (0xF4, 0x90, 0xBF))


def utf8_ok(data):
    """True when bytes `data` are valid UTF-8 (strict, as CPython decodes)."""
    if not data or max(data) < 0x80:
        return True
    try:
        bytes(data).decode("utf-8")
    except UnicodeError:
        return False
    for b in (0xC0, 0xC1, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF):
        if data.find(bytes((b,))) >= 0:
            return False
    for lead, lo, hi in _BAD_PAIRS:
        i = data.find(bytes((lead,)))
        while i >= 0:
            if i + 1 < len(data) and lo <= data[i + 1] <= hi:
                return False
            i = data.find(bytes((lead,)), i + 1)
    return True


def _err(what, i):
    return ValueError("%s at char %d" % (what, i))


def _ws(s, i, n):
    while i < n and s[i] in _WS:
        i += 1
    return i


def loads(s):
    """Parse one JSON text (a str); raise ValueError on anything RFC 8259 forbids."""
    n = len(s)
    i = _ws(s, 0, n)
    if i >= n:
        raise _err("empty", i)
    v, i = _value(s, i, n, 0)
    i = _ws(s, i, n)
    if i != n:
        raise _err("extra data", i)
    return v


def _value(s, i, n, depth):
    if i >= n:
        raise _err("value expected", i)
    c = s[i]
    if c == '"':
        return _string(s, i + 1, n)
    if c == "{":
        return _object(s, i + 1, n, depth + 1)
    if c == "[":
        return _array(s, i + 1, n, depth + 1)
    if c == "-" or c in _DIGITS:
        return _number(s, i, n)
    if s.startswith("true", i):
        return True, i + 4
    if s.startswith("false", i):
        return False, i + 5
    if s.startswith("null", i):
        return None, i + 4
    raise _err("value expected", i)


def _object(s, i, n, depth):
    if depth > MAX_DEPTH:
        raise _err("nesting deeper than %d" % MAX_DEPTH, i)
    obj = {}
    i = _ws(s, i, n)
    if i < n and s[i] == "}":
        return obj, i + 1
    while True:
        if i >= n or s[i] != '"':
            raise _err("key expected", i)
        k, i = _string(s, i + 1, n)
        i = _ws(s, i, n)
        if i >= n or s[i] != ":":
            raise _err("':' expected", i)
        v, i = _value(s, _ws(s, i + 1, n), n, depth)
        obj[k] = v
        i = _ws(s, i, n)
        if i < n and s[i] == ",":
            i = _ws(s, i + 1, n)
            continue
        if i < n and s[i] == "}":
            return obj, i + 1
        raise _err("',' or '}' expected", i)


def _array(s, i, n, depth):
    if depth > MAX_DEPTH:
        raise _err("nesting deeper than %d" % MAX_DEPTH, i)
    arr = []
    i = _ws(s, i, n)
    if i < n and s[i] == "]":
        return arr, i + 1
    while True:
        v, i = _value(s, i, n, depth)
        arr.append(v)
        i = _ws(s, i, n)
        if i < n and s[i] == ",":
            i = _ws(s, i + 1, n)
            continue
        if i < n and s[i] == "]":
            return arr, i + 1
        raise _err("',' or ']' expected", i)


def _digits(s, i, n):
    j = i
    while j < n and s[j] in _DIGITS:
        j += 1
    return j


def _number(s, i, n):
    j = i
    if s[j] == "-":
        j += 1
    if j >= n or s[j] not in _DIGITS:
        raise _err("digit expected", j)
    if s[j] == "0":
        j += 1
    else:
        j = _digits(s, j, n)
    is_int = True
    if j < n and s[j] == ".":
        k = _digits(s, j + 1, n)
        if k == j + 1:
            raise _err("digit expected", k)
        j = k
        is_int = False
    if j < n and s[j] in "eE":
        j += 1
        if j < n and s[j] in "+-":
            j += 1
        k = _digits(s, j, n)
        if k == j:
            raise _err("digit expected", k)
        j = k
        is_int = False
    text = s[i:j]
    return (int(text) if is_int else float(text)), j


def _string(s, i, n):
    """i is just past the opening quote; return (str, index past the closing quote)."""
    parts = None
    start = i
    while True:
        q = s.find('"', i)
        if q < 0:
            raise _err("unterminated string", start - 1)
        b = s.find("\\", i, q)
        end = q if b < 0 else b
        for k in range(i, end):
            if ord(s[k]) < 0x20:
                raise _err("control character in string", k)
        if b < 0:
            if parts is None:
                return s[start:q], q + 1
            parts.append(s[i:q])
            return "".join(parts), q + 1
        if parts is None:
            parts = []
        parts.append(s[i:b])
        if b + 1 >= n:
            raise _err("bad escape", b)
        e = s[b + 1]
        if e == "u":
            cp, i = _hex4(s, b + 2, n)
            if 0xD800 <= cp <= 0xDBFF and s.startswith("\\u", i):
                lo, j = _hex4(s, i + 2, n)
                if 0xDC00 <= lo <= 0xDFFF:
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    i = j
            parts.append(chr(cp))
        elif e in _ESC:
            parts.append(_ESC[e])
            i = b + 2
        else:
            raise _err("bad escape", b)


def _hex4(s, i, n):
    if i + 4 > n:
        raise _err("bad \\u escape", i)
    for k in range(i, i + 4):
        if s[k] not in _HEX:
            raise _err("bad \\u escape", i)
    return int(s[i:i + 4], 16), i + 4


def ascii_escape(data):
    """JSON text `data` (bytes) as ASCII: every non-ASCII character written as a \\uXXXX
    escape (UTF-16: a character above U+FFFF as two escapes; a lone surrogate as its own
    escape, which JSON allows). `data` is what json.dumps(...).encode() gives: CPython's
    is ASCII already (returned as it is), MicroPython's json.dumps writes the characters of
    a str as its UTF-8 bytes, a lone surrogate (from a "\\ud800" escape in the request)
    as the 3 bytes ED A0 80, which no UTF-8 decoder accepts. Non-ASCII bytes in json.dumps
    output only occur inside strings, where an escape means the same character. A byte
    that starts no well-formed sequence becomes \\ufffd. Allocates (a reply dict's path,
    never a flat request's)."""
    if not data or max(data) < 0x80:
        return data
    out = bytearray()
    n = len(data)
    i = 0
    while i < n:
        b = data[i]
        if b < 0x80:
            j = i + 1
            while j < n and data[j] < 0x80:
                j += 1
            out += data[i:j]
            i = j
            continue
        if b >= 0xF8 or b < 0xC0:
            k = 0
            cp = 0xFFFD              # a stray continuation byte or no lead byte at all
        elif b >= 0xF0:
            k = 3
            cp = b & 0x07
        elif b >= 0xE0:
            k = 2
            cp = b & 0x0F
        else:
            k = 1
            cp = b & 0x1F
        i += 1
        while k:
            if i >= n or data[i] & 0xC0 != 0x80:
                cp = 0xFFFD          # cut short
                break
            cp = (cp << 6) | (data[i] & 0x3F)
            i += 1
            k -= 1
        if cp > 0x10FFFF:
            cp = 0xFFFD
        if cp >= 0x10000:
            cp -= 0x10000
            out += ("\\u%04x\\u%04x" % (0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF))).encode()
        else:
            out += ("\\u%04x" % cp).encode()
    return bytes(out)
