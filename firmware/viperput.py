"""Bytes and decimal digits into a bytearray, as machine code (MicroPython's viper emitter).

The telemetry line (telemetry.py) is written every 100 ms while current flows. In
bytecode its digit loops and copies take ~660 µs on an RP2040, the largest share of the
loop's worst poll; as viper code they take a fraction of that. Same contract as the
bytecode twins in telemetry.py (`_put`, `_put_int`), which host tests hold these to:
    put(buf, p, src, n)   copies src[0:n] to buf[p:p + n]; returns p + n
    put_int(buf, p, x)    the decimal digits of int x (|x| < 2**30) at buf[p:]; returns
                          the end
    put_kv(buf, p, k, kn, v, vn)   k[0:kn] then v[0:vn] (a reply's key and value in one
                          call: on an RP2040 each call costs ~25 µs); returns the end
    put_kint(buf, p, k, kn, x)     k[0:kn] then the digits of x; returns the end
`buf` must be long enough (no bounds check: viper writes raw memory).

Only ports with the native emitter compile this module (rp2, esp32, unix); elsewhere
importing it raises SyntaxError (the WebAssembly port) or NameError (CPython: `ptr8` is
no builtin there), and telemetry.py keeps its bytecode twins. A board runs it as source
(tools/manifest.py SOURCE_ONLY): compiled on the board, for the board's own CPU.
"""

import micropython


@micropython.viper
def put(buf: ptr8, p: int, src: ptr8, n: int) -> int:
    i = 0
    while i < n:
        buf[p + i] = src[i]
        i += 1
    return p + n


@micropython.viper
def put_int(buf: ptr8, p: int, x: int) -> int:
    if x < 0:
        buf[p] = 45              # '-'
        p += 1
        x = 0 - x
    end = p + 1
    q = x // 10
    while q:
        q = q // 10
        end += 1
    i = end
    while True:
        i -= 1
        buf[i] = 48 + x % 10
        x = x // 10
        if not x:
            break
    return end


@micropython.viper
def put_kv(buf: ptr8, p: int, k: ptr8, kn: int, v: ptr8, vn: int) -> int:
    i = 0
    while i < kn:
        buf[p + i] = k[i]
        i += 1
    p += kn
    i = 0
    while i < vn:
        buf[p + i] = v[i]
        i += 1
    return p + vn


@micropython.viper
def put_kint(buf: ptr8, p: int, k: ptr8, kn: int, x: int) -> int:
    i = 0
    while i < kn:
        buf[p + i] = k[i]
        i += 1
    p += kn
    if x < 0:
        buf[p] = 45              # '-'
        p += 1
        x = 0 - x
    end = p + 1
    q = x // 10
    while q:
        q = q // 10
        end += 1
    i = end
    while True:
        i -= 1
        buf[i] = 48 + x % 10
        x = x // 10
        if not x:
            break
    return end
