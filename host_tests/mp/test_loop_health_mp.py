"""Loop health and the periodic path's garbage, on MicroPython (and CPython where it applies).

* telemetry (telemetry.TelLine) is the JSON of its fields, DC and pulsed;
* viperput's machine code writes the same bytes as its bytecode twins in telemetry.py
  (where the interpreter compiles viper: the unix port; the others use the twins);
* the app's poll in TREAT with 50 Hz telemetry allocates nothing, not even the first line
  of each length (the old dict + json.dumps path left ~400 bytes per line);
* the status reply written by replyline.FieldReply is the JSON of its fields (and
  falls back to the dict when a value is unknown to it); on MicroPython, answering status
  from a dict request in TREAT allocates only the checked fields' dict (one small block:
  16 bytes on a 32-bit board, 32 on the 64-bit unix port; from a flat request, nothing:
  test_flat_requests_mp.py);
* health.LoopHealth.measure finds a block that can really be allocated, no larger
  than the free heap, after collecting a session's garbage (MicroPython only; where the
  heap grows on demand it measures the free heap only);
* main.run with the heap locked around the step: an allocation inside the step faults
  the session with the output off, and the heap is unlocked afterwards, from any lock
  depth the exception left (main.release_heap).
"""

import json

import health
import main
import mptest
import safety
import session as sm
from protorig import Rig
from telemetry import TelLine


def test_telemetry_line_is_the_json_of_its_fields():
    t = TelLine(sm.NAMES, safety.NAMES)
    got = json.loads(bytes(t.encode(123456, sm.TREAT, 15000, 14987, 22480, False, 0, -1)))
    assert got == {"t": "tel", "ms": 123456, "state": "TREAT", "sp_ua": 15000,
                   "i_ua": 14987, "v_mv": 22480, "lim": False, "fault": "ok"}, got
    got = json.loads(bytes(t.encode(0, sm.FAULT, 0, -73, 0, True, safety.F_OVERRUN, 20000)))
    assert got == {"t": "tel", "ms": 0, "state": "FAULT", "sp_ua": 0, "i_ua": -73,
                   "v_mv": 0, "lim": True, "fault": "overrun", "peak_ua": 20000}, got
    assert bytes(t.encode(7, 0, 0, 0, 0, False, 0, -1)).endswith(b"}\n")


def test_viper_put_writes_what_its_bytecode_twins_write():
    import telemetry
    if telemetry._fput is telemetry._put:
        raise mptest.Skip("no native emitter on this interpreter: the bytecode twins run")
    for x in (0, 1, 9, 10, 11, 99, 100, 12345, 999999, 1000000, 2 ** 30 - 1,
              -1, -9, -10, -12345, -(2 ** 30 - 1)):
        a = bytearray(b"#" * 24)
        b = bytearray(b"#" * 24)
        ea = telemetry._fput_int(a, 3, x)
        eb = telemetry._put_int(b, 3, x)
        assert (ea, a) == (eb, b), (x, ea, a, eb, b)
        assert bytes(a[3:ea]) == str(x).encode(), (x, a)
    for src in (b"", b"x", b',"state":', b'"WAIT_CONTACT"'):
        a = bytearray(b"#" * 24)
        b = bytearray(b"#" * 24)
        assert telemetry._fput(a, 2, src, len(src)) == telemetry._put(b, 2, src, len(src))
        assert a == b and bytes(a[2:2 + len(src)]) == src, (src, a, b)
    for k, v, x in ((b',"state":', b'"TREAT"', 0), (b"", b"null", -123), (b',"a":', b"", 2 ** 30 - 1)):
        a = bytearray(b"#" * 40)
        b = bytearray(b"#" * 40)
        assert telemetry._fput_kv(a, 1, k, len(k), v, len(v)) == \
            telemetry._put_kv(b, 1, k, len(k), v, len(v))
        assert a == b and bytes(a[1:1 + len(k) + len(v)]) == k + v, (k, v, a)
        a = bytearray(b"#" * 40)
        b = bytearray(b"#" * 40)
        assert telemetry._fput_kint(a, 1, k, len(k), x) == telemetry._put_kint(b, 1, k, len(k), x)
        assert a == b and bytes(a[1:1 + len(k)]) == k, (k, x, a)


def test_status_line_is_the_json_of_its_fields_and_allocates_one_block():
    rig = Rig(skin_ohm=1000.0)
    rig.ok("start", target_ua=10000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    st = rig.app.commands.handle("status", {})
    want = st.as_dict()
    assert want["state"] == "TREAT" and want["i_ua"] > 5000, want
    got = json.loads(bytes(st.line(7)))
    want["id"] = 7
    want["ok"] = True
    assert got == want, (got, want)
    st.fields["time"] = 1764460000            # epoch seconds: beyond the small ints
    st.fields["loop_late"] = -123456
    got = json.loads(bytes(st.line(None)))
    assert got["time"] == 1764460000 and got["loop_late"] == -123456 and got["id"] is None, got
    st.fields["profile"] = "not a known name"   # -> the dict path
    assert st.line(1) is None
    r = rig.ok("status")                        # through the protocol, as a host sees it
    assert r["state"] == "TREAT" and r["target_ua"] == 10000, r
    if not mptest.is_micropython():
        return
    handle = rig.app.commands.handle
    rig.bench.step()
    req = {}

    def answer():
        handle("status", req).encode(3)
    answer()
    a = mptest.allocated_by(answer)
    assert a <= 32, a       # the checked fields' dict: one block


def test_poll_with_telemetry_leaves_no_garbage():
    if not mptest.is_micropython():
        raise mptest.Skip("heap accounting needs MicroPython")
    rig = Rig(skin_ohm=1000.0)
    rig.ok("start", target_ua=10000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.ok("telemetry", on=True, hz=50)
    n = [0]

    def sink(line):                       # a stream consumes the line (no copy kept)
        n[0] += len(line)
    rig.app.proto.write = sink
    poll = rig.app.poll
    sent = rig.app.tel_sent
    worst = 0
    for _ in range(400):
        rig.bench.step()
        a = mptest.allocated_by(poll)
        if a > worst:
            worst = a
    assert rig.app.tel_sent - sent >= 90 and n[0] > 90 * 80, (rig.app.tel_sent - sent, n)
    assert worst == 0, worst


def test_the_heap_measurement_finds_an_allocatable_block():
    if not mptest.is_micropython():
        raise mptest.Skip("the measurement needs MicroPython's gc")
    import gc
    h = health.LoopHealth()
    assert h.due and h.free == -1 and h.largest == -1
    gc.collect()
    free = gc.mem_free()
    h.measure(1)
    assert not h.due and h.free_s == 1 and 0 < h.free, (h.free, free)
    if health.GROWS:                       # WebAssembly: no largest block to find
        assert h.largest == -1 and h.largest_s == -1, (h.largest, h.largest_s)
        return
    assert 1024 <= h.largest <= h.free and h.largest_s == 1, (h.largest, h.free)
    bytearray(h.largest)                   # it can be allocated


def test_the_heap_measurement_collects_a_sessions_garbage_first():
    """After a session the heap is full of garbage the collector (off in a session) never
    reclaimed: uncollected, the largest block on the emulated RP2040 read 3 KB where 19 KB
    were free. The measurement collects first: it reports the heap a new session gets."""
    if not mptest.is_micropython():
        raise mptest.Skip("the measurement needs MicroPython's gc")
    import gc
    h0 = health.LoopHealth()
    h0.measure(0)                          # the heap before the session's garbage
    gc.collect()
    free = gc.mem_free()
    gc.disable()
    try:
        junk = []
        piece = max(240, free // 2000)     # ~1,500 pieces whatever the port's heap
        for _ in range(free * 3 // 4 // (piece + 32)):
            junk.append(bytearray(piece))
        if gc.mem_free() > free // 3:      # the WebAssembly port's heap grows instead
            raise mptest.Skip("this port's heap grows: no garbage can fill it")
        junk = None                        # garbage now, left uncollected
        h = health.LoopHealth()
        h.measure(1)
    finally:
        gc.enable()
    # uncollected, the largest block would be the quarter left free (or a hole)
    assert h.largest >= h0.largest * 3 // 4 and h.largest > free // 4, (
        h.largest, h0.largest, free)


def test_the_measurement_leaves_the_collector_on_whatever_interrupts_it():
    """A tool's Ctrl-C may land in the search's attempt, where the collector is off: left
    off, it stayed off through mpremote's soft reset (MicroPython 1.28, emulated Pico)
    and the flash and the self test after it ran out of heap. An exception that is not
    MemoryError (a TypeError here, as a KeyboardInterrupt would) leaves it on."""

    class Gc:
        on = True

        def isenabled(self):
            return self.on

        def disable(self):
            self.on = False

        def enable(self):
            self.on = True

        def collect(self):
            pass

        def mem_free(self):
            return None                   # bytearray(None) raises TypeError
    h = health.LoopHealth()
    g = Gc()
    h._gc = g
    grows = health.GROWS
    health.GROWS = False                  # the search runs on every port here
    raised = False
    try:
        h.measure(1)
    except TypeError:
        raised = True
    finally:
        health.GROWS = grows
    assert raised and g.on


def test_an_allocation_in_the_step_faults_with_the_heap_locked():
    if not mptest.is_micropython():
        raise mptest.Skip("heap_lock needs MicroPython")
    rig = Rig(skin_ohm=1000.0)
    rig.ok("start", target_ua=10000, duration_s=300)
    assert rig.until(sm.RAMP_UP, 60)
    ctrl = rig.ctrl
    real = ctrl.regulator.step

    def allocating_step(sp, i, v):
        [sp, i, v]                         # a list: heap
        return real(sp, i, v)
    ctrl.regulator.step = allocating_step
    b = rig.bench

    def sleep(us):
        b.now_us += us
        b.plant.step(us / 1e6)
    try:
        main.run(ctrl, rig.ticks, sleep, max_steps=5)
        raised = None
    except MemoryError as e:
        raised = e
    assert raised is not None
    assert ctrl.session.state == sm.FAULT and ctrl.safety.fault == safety.F_EXCEPTION
    assert not ctrl.hal.enabled and ctrl.hal.ref_code == 0
    [1, 2, 3]                              # the heap is unlocked again


def test_release_heap_unlocks_from_any_depth():
    """run's handler leaves the heap unlocked whatever the depth the exception left:
    locked once or twice, or already unlocked (an unlock too many would wrap the depth
    and lock the heap for good)."""
    if not mptest.is_micropython():
        raise mptest.Skip("heap_lock needs MicroPython")
    import micropython
    for depth in (0, 1, 2):
        for _ in range(depth):
            micropython.heap_lock()
        assert main.release_heap() == 0
        [depth]                            # allocates: raises MemoryError if still locked
        micropython.heap_lock()
        assert micropython.heap_unlock() == 0, depth
