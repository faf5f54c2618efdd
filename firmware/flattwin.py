"""flatscan.py's bytecode twins: the same contract, for ports without the native emitter
(the WebAssembly port, CPython). flatreq.py imports this module only where flatscan.py
does not compile, so a board never holds both; host tests hold the two to the same
results (host_tests/mp/test_flat_requests_mp.py).
"""

INT = 0
STR = 1
TRUE = 2
FALSE = 3
NULL = 4


def _skip(buf, i, n):
    while i < n and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13 or buf[i] == 10):
        i += 1
    return i


def _word(buf, i, n, w):
    """True when the bytes `w` are at buf[i:] (no slice: nothing allocated)."""
    if i + len(w) > n:
        return False
    for k in range(len(w)):
        if buf[i + k] != w[k]:
            return False
    return True


def _plain_end(buf, i, n):
    """The index of the closing quote of a plain string from i, or -1."""
    while i < n and buf[i] != 34:
        c = buf[i]
        if c < 32 or c > 126 or c == 92:
            return -1
        i += 1
    return i if i < n else -1


def scan(buf, n, out, max_members):
    i = _skip(buf, 0, n)
    if i >= n or buf[i] != 123:
        return -1
    i = _skip(buf, i + 1, n)
    m = 0
    if i < n and buf[i] == 125:
        return m if _skip(buf, i + 1, n) == n else -1
    while True:
        if m >= max_members or i >= n or buf[i] != 34:
            return -1
        ks = i + 1
        ke = _plain_end(buf, ks, n)
        if ke < 0:
            return -1
        i = _skip(buf, ke + 1, n)
        if i >= n or buf[i] != 58:
            return -1
        i = _skip(buf, i + 1, n)
        if i >= n:
            return -1
        c = buf[i]
        kind = INT
        a = 0
        b = 0
        if c == 34:
            a = i + 1
            b = _plain_end(buf, a, n)
            if b < 0:
                return -1
            i = b + 1
            kind = STR
        elif c == 45 or 48 <= c <= 57:
            neg = c == 45
            if neg:
                i += 1
            if i >= n or not 48 <= buf[i] <= 57:
                return -1
            v = 0
            if buf[i] == 48:
                i += 1
            else:
                while i < n and 48 <= buf[i] <= 57:
                    d = buf[i] - 48
                    if v > 214748364 or (v == 214748364 and d > 7):
                        return -1
                    v = v * 10 + d
                    i += 1
            if i < n and (buf[i] == 46 or buf[i] == 101 or buf[i] == 69):
                return -1
            b = v // 100000                # as flatscan.scan: two small ints
            a = v - b * 100000
            if neg:
                a = -a
                b = -b
        elif _word(buf, i, n, b"true"):
            i += 4
            kind = TRUE
        elif _word(buf, i, n, b"false"):
            i += 5
            kind = FALSE
        elif _word(buf, i, n, b"null"):
            i += 4
            kind = NULL
        else:
            return -1
        o = 6 * m
        out[o + 5] = key_hash(buf, ks, ke)
        out[o] = ks
        out[o + 1] = ke
        out[o + 2] = kind
        out[o + 3] = a
        out[o + 4] = b
        m += 1
        i = _skip(buf, i, n)
        if i < n and buf[i] == 44:
            i = _skip(buf, i + 1, n)
            continue
        if i < n and buf[i] == 125:
            return m if _skip(buf, i + 1, n) == n else -1
        return -1


def key_hash(buf, s, e):
    h = 0
    while s < e:
        h = (h * 31 + buf[s]) & 0xFFFFF
        s += 1
    return h


def same(buf, s, e, name, m):
    if e - s != m:
        return 0
    for i in range(m):
        if buf[s + i] != name[i]:
            return 0
    return 1


def less(buf, s1, e1, s2, e2):
    while s1 < e1 and s2 < e2:
        if buf[s1] != buf[s2]:
            return 1 if buf[s1] < buf[s2] else 0
        s1 += 1
        s2 += 1
    return 1 if s1 == e1 and s2 < e2 else 0


def copy(dst, dp, src, sp, n):
    for i in range(n):
        dst[dp + i] = src[sp + i]
    return dp + n


def plain(s, n):
    for i in range(n):
        c = s[i]
        c = c if isinstance(c, int) else ord(c)
        if c < 32 or c > 126 or c == 34 or c == 92:
            return 0
    return 1
