"""A flat JSON request read in place, as machine code (MicroPython's viper emitter).

A flat request is one JSON object whose members are all scalars a board reads without
allocating: integers of at most 10 digits within -(2**31 - 1)..2**31 - 1, true, false,
null and strings of printable ASCII without escapes (0x20..0x7E but '"' and '\\'); keys
are such strings too. Nothing else is flat, even when it is valid JSON: a fraction,
an exponent, a leading zero (then invalid anyway), an escape, a non-ASCII byte, a nested
value, more than `max_members` members, bytes after the object. The protocol reads a
line that is not flat with jsonstrict (which gives the exact error), and what is flat
here is read the same by jsonstrict (host tests hold the two to that).

    scan(buf, n, out, max_members) -> members, or -1 when buf[0:n] is not flat
        out (array "i", 6 * max_members): per member key start, key end, kind, a, b,
        and key_hash of the key: kind 0 the integer b * 100000 + a (a: its last five
        digits, b: the rest, both with its sign: small ints on a 32-bit port, where
        2**30 and more is a heap int); 1 a string buf[a:b]; 2 true; 3 false; 4 null.
    key_hash(buf, s, e) -> a small int (< 2**20: every step stays a small int on a 32-bit
        port) of buf[s:e], for a table of names
    same(buf, s, e, name, m) -> 1 when buf[s:e] is the m bytes of `name`
    less(buf, s1, e1, s2, e2) -> 1 when buf[s1:e1] sorts before buf[s2:e2] (bytes order)
    copy(dst, dp, src, sp, n) -> dp + n, having copied src[sp:sp + n] to dst[dp:] (no
        slice: the protocol's input into its line buffer)
    plain(s, n) -> 1 when the first n bytes of s (a str of n characters, or bytes) are
        printable ASCII but '"' and '\\': a str of n characters then is those n bytes

`buf` must hold at least n + 1 bytes (the scan reads one byte past a value's digits).
Bytecode twins with the same contract are in flattwin.py for ports without the native
emitter (the WebAssembly port, CPython); a board runs this module as source
(tools/manifest.py NATIVE_SOURCE).
"""

import micropython


@micropython.viper
def scan(buf: ptr8, n: int, out: ptr32, max_members: int) -> int:
    # one loop, one state: the machine code stays small (the board compiles it into one
    # heap block at import). 0 '{'; 1 a key or '}'; 2 a key; 3 ':'; 4 a value;
    # 5 ',' or '}'; 6 after the object (only whitespace)
    state = 0
    m = 0
    i = 0
    while i < n:
        c = buf[i]
        if c == 32 or c == 9 or c == 13 or c == 10:
            i += 1
            continue
        if state == 0:
            if c != 123:
                return -1
            state = 1
            i += 1
        elif c == 125 and (state == 1 or state == 5):
            state = 6
            i += 1
        elif c == 34 and (state == 1 or state == 2 or state == 4):
            a = i + 1
            i = a
            h = 0
            while i < n and buf[i] != 34:
                c = buf[i]
                if c < 32 or c > 126 or c == 92:
                    return -1
                h = (h * 31 + c) & 0xFFFFF
                i += 1
            if i >= n:
                return -1
            i += 1
            o = m * 6
            if state == 4:
                out[o + 2] = 1
                out[o + 3] = a
                out[o + 4] = i - 1
                m += 1
                state = 5
            else:
                if m >= max_members:
                    return -1
                out[o] = a
                out[o + 1] = i - 1
                out[o + 5] = h
                state = 3
        elif state == 3:
            if c != 58:
                return -1
            state = 4
            i += 1
        elif state == 5:
            if c != 44:
                return -1
            state = 2
            i += 1
        elif state == 4:
            o = m * 6
            kind = 0
            v = 0
            hi = 0
            if c == 45 or (c >= 48 and c <= 57):    # an integer
                neg = c == 45
                if neg:
                    i += 1
                if i >= n or buf[i] < 48 or buf[i] > 57:
                    return -1
                if buf[i] == 48:
                    i += 1
                else:
                    ds = i
                    while i < n and buf[i] >= 48 and buf[i] <= 57:
                        d = buf[i] - 48
                        if v > 214748364 or (v == 214748364 and d > 7):
                            return -1             # above 2**31 - 1
                        v = v * 10 + d
                        i += 1
                    # the last five digits apart from the rest: two small ints
                    j = i - 5
                    if j > ds:
                        v = 0
                        k = ds
                        while k < j:
                            hi = hi * 10 + buf[k] - 48
                            k += 1
                        while k < i:
                            v = v * 10 + buf[k] - 48
                            k += 1
                if i < n and (buf[i] == 46 or buf[i] == 101 or buf[i] == 69):
                    return -1                     # '.', 'e', 'E': not an integer
                if neg:
                    v = 0 - v
                    hi = 0 - hi
            else:                                 # true, false, null
                w = ptr8(b"true")
                k = 4
                kind = 2
                if c == 102:
                    w = ptr8(b"false")
                    k = 5
                    kind = 3
                elif c == 110:
                    w = ptr8(b"null")
                    kind = 4
                elif c != 116:
                    return -1
                if i + k > n:
                    return -1
                j = 0
                while j < k:
                    if buf[i + j] != w[j]:
                        return -1
                    j += 1
                i += k
            out[o + 2] = kind
            out[o + 3] = v
            out[o + 4] = hi
            m += 1
            state = 5
        else:
            return -1
    return m if state == 6 else -1


@micropython.viper
def key_hash(buf: ptr8, s: int, e: int) -> int:
    h = 0
    while s < e:
        h = (h * 31 + buf[s]) & 0xFFFFF
        s += 1
    return h


@micropython.viper
def same(buf: ptr8, s: int, e: int, name: ptr8, m: int) -> int:
    if e - s != m:
        return 0
    i = 0
    while i < m:
        if buf[s + i] != name[i]:
            return 0
        i += 1
    return 1


@micropython.viper
def less(buf: ptr8, s1: int, e1: int, s2: int, e2: int) -> int:
    while s1 < e1 and s2 < e2:
        if buf[s1] != buf[s2]:
            return 1 if buf[s1] < buf[s2] else 0
        s1 += 1
        s2 += 1
    return 1 if s1 == e1 and s2 < e2 else 0


@micropython.viper
def plain(s: ptr8, n: int) -> int:
    i = 0
    while i < n:
        c = s[i]
        if c < 32 or c > 126 or c == 34 or c == 92:
            return 0
        i += 1
    return 1


@micropython.viper
def copy(dst: ptr8, dp: int, src: ptr8, sp: int, n: int) -> int:
    i = 0
    while i < n:
        dst[dp + i] = src[sp + i]
        i += 1
    return dp + n
