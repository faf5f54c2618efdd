"""Bytes and decimal digits into a bytearray, as machine code (MicroPython's viper emitter).

The telemetry line (telemetry.py) is written every 100 ms while current flows. In
bytecode its digit loops and copies take ~660 µs on an RP2040, the largest share of the
loop's worst poll; as viper code they take a fraction of that. Same contract as the
bytecode twins in telemetry.py (`_put`, `_put_int`), which host tests hold these to:
    put(buf, p, src, n)   copies src[0:n] to buf[p:p + n]; returns p + n
    put_int(buf, p, x)    the decimal digits of int x (|x| < 2**30) at buf[p:]; returns
                          the end
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
