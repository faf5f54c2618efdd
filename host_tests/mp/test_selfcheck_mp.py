"""Self-check of the MicroPython test machinery (tools/mpvm + mptest), run on every interpreter.

Also pins the facts the firmware tests rely on: tick wrap periods, word size, that integer
loops allocate nothing and float arithmetic does, and that heap_lock turns an allocation
into MemoryError.  MicroPython-compatible: run by mptest on the unix and webassembly ports.
"""

import gc
import sys

import mptest

try:
    import micropython
except ImportError:
    micropython = None

WASM = sys.platform == "webassembly"
UNIX = mptest.is_micropython() and sys.platform == "linux"


def _need_micropython():
    if not mptest.is_micropython():
        raise mptest.Skip("MicroPython only")


def test_small_int_arithmetic():
    x = 0
    for i in range(100):
        x = (x * 31 + i) & 0xFFFF
    assert x == 9266, x
    assert -7 // 2 == -4 and -7 % 2 == 1
    assert (1 << 29) - 1 == 536870911


def test_big_int():
    big = 2**70 + 1
    assert big % 1000 == 425, big % 1000
    assert (big >> 69) == 2
    assert int("123456789012345678901234567890") // 10**20 == 1234567890


def test_word_size():
    _need_micropython()
    if WASM:
        assert sys.maxsize == 2**31 - 1, sys.maxsize  # 32-bit objects, like an MCU
    elif UNIX:
        assert sys.maxsize == 2**63 - 1, sys.maxsize
    else:
        raise mptest.Skip("unknown port " + sys.platform)


def test_ticks_wrap():
    import time

    if not hasattr(time, "ticks_add"):
        raise mptest.Skip("no time.ticks_add on " + sys.implementation.name)
    period = time.ticks_add(0, -1) + 1
    assert period & (period - 1) == 0, period  # a power of two
    if WASM:
        assert period == 2**30, period
    elif UNIX:
        assert period == 2**62, period
    half = period // 2
    t = period - 5
    assert time.ticks_add(t, 10) == 5
    assert time.ticks_diff(5, t) == 10
    assert time.ticks_diff(t, 5) == -10
    for d in (0, 1, -1, 1000, -1000, half - 1, -half + 1):
        assert time.ticks_diff(time.ticks_add(t, d), t) == d, d
    try:
        time.ticks_add(t, half)  # deltas must lie strictly inside +-period/2
        assert False, "ticks_add accepted half a period"
    except OverflowError:
        pass
    # half a period ahead, reached in two steps, reads as half a period behind
    assert time.ticks_diff(time.ticks_add(time.ticks_add(t, half - 1), 1), t) == -half


def _int_loop(n):
    acc = 0
    i = 0
    while i < n:
        acc = (acc + i * 3) & 0xFFFF
        i += 1
    return acc


def _float_loop(n):
    x = 0.5
    for _ in range(n):
        x = x * 1.0001
    return x


def test_int_loop_allocates_nothing():
    if not hasattr(gc, "mem_alloc"):
        raise mptest.Skip("no gc.mem_alloc on " + sys.implementation.name)
    grown = mptest.allocated_by(_int_loop, 1000)
    assert grown == 0, grown


def test_float_ops_allocate():
    # Floats are boxed heap objects on both ports (as on most MCU builds), so a float op in a
    # loop allocates: proves the heap measurement above can see an allocation at all.
    if not hasattr(gc, "mem_alloc"):
        raise mptest.Skip("no gc.mem_alloc on " + sys.implementation.name)
    grown = mptest.allocated_by(_float_loop, 100)
    assert grown >= 100 * 8, grown


def test_heap_lock_raises_memory_error():
    _need_micropython()
    raised = False
    micropython.heap_lock()
    try:
        try:
            buf = bytearray(16)
        except MemoryError:
            raised = True
    finally:
        micropython.heap_unlock()  # exactly once per heap_lock(): more hangs the wasm port
    assert raised
