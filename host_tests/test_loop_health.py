"""Loop health visible from outside: main.run's late periods and worst period, the
`status` fields (docs/protocol.md), and HostIO reading without blocking or garbage.

In virtual time: a poll that holds the loop for a given time makes exactly the periods
late that the slack (health.LATE_SLACK_US) says it should.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

import health  # noqa: E402
import main  # noqa: E402
import session as sm  # noqa: E402
from hostio import HostIO  # noqa: E402
from protorig import Rig  # noqa: E402


def _loop(rig, stalls):
    """main.run for len(stalls) periods; poll k holds the loop stalls[k] µs."""
    b = rig.bench
    k = [0]

    def poll():
        b.now_us += stalls[k[0]]
        k[0] += 1

    def sleep(us):
        b.plant.step(us / 1e6)
        b.now_us += us
    h = health.LoopHealth()
    assert main.run(rig.ctrl, rig.ticks, sleep, poll=poll, max_steps=len(stalls),
                    health=h) == len(stalls)
    return h


def test_late_periods_and_the_worst_period_are_counted():
    rig = Rig(skin_ohm=1000.0)
    slack = health.LATE_SLACK_US
    period = rig.ctrl.period_us
    # on time; within the slack past the due time (not late); 2 ms past it (late)
    stalls = [0] * 10 + [period + slack - 100] + [0] * 10 + [period + 2000] + [0] * 10
    h = _loop(rig, stalls)
    assert h.late == 1, h.late
    assert h.worst_us == period + 2000, h.worst_us
    h2 = _loop(rig, [0] * 50)
    assert h2.late == 0 and h2.worst_us == period


def test_status_carries_loop_health_and_heap():
    rig = Rig(skin_ohm=1000.0)
    rig.app.health.late = 3
    rig.app.health.worst_us = 7400
    rig.ctrl.safety.overruns = 2
    s = rig.ok("status")
    assert s["loop_late"] == 3 and s["loop_worst_us"] == 7400 and s["overruns"] == 2
    assert s["heap_free"] == -1 and s["heap_largest"] == -1 and s["heap_largest_s"] == -1
    assert s["build_tries"] == 1
    rig.app.health.build_tries = 2             # main.build fell back once
    assert rig.ok("status")["build_tries"] == 2


def test_the_heap_is_measured_at_boot_and_after_a_sessions_record_never_by_a_request():
    """health.measure (a collection and a search: ~30 ms on an RP2040) runs in a quiet
    poll after boot and once a session's record is written, never for a `status`."""
    rig = Rig(skin_ohm=1000.0)
    h = rig.app.health
    at = []

    def measure(now_s):
        at.append(rig.ctrl.session.state)
        h.due = False
    h.measure = measure
    rig.step(3)
    assert at == [sm.IDLE] and not h.due, at
    for _ in range(3):
        rig.ok("status")
        rig.step(3)
    assert at == [sm.IDLE], at
    rig.ok("start", target_ua=10000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.step(round(70e6 / rig.ctrl.period_us))      # 70 s: a treatment's record
    rig.ok("stop")
    assert rig.until(sm.DONE, 90)
    # the session's end poll: its record written, then the heap measured
    assert at == [sm.IDLE, sm.DONE] and not h.due and not rig.app.recorder.pending, at
    assert rig.app.store.log.count == 1
    rig.ok("status")
    rig.step(3)
    assert at == [sm.IDLE, sm.DONE], at


def test_status_overruns_are_the_monitors():
    rig = Rig(skin_ohm=1000.0)
    rig.ok("start", target_ua=10000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    b = rig.bench
    b.now_us += 3 * rig.ctrl.period_us          # one late step, seen by the monitor
    rig.step()
    assert rig.ok("status")["overruns"] == rig.ctrl.safety.overruns == 1


def test_hostio_reads_what_waits_and_never_blocks():
    r, w = os.pipe()
    r2, w2 = os.pipe()
    with open(r, "rb", buffering=0) as fin, open(w2, "wb", buffering=0) as fout:
        io = HostIO(stdin=fin, stdout=fout)
        buf = bytearray(8)
        assert io.readinto(buf) == 0          # nothing waiting: returns at once
        os.write(w, b"abcdefghij")
        assert io.readinto(buf) == 8 and bytes(buf) == b"abcdefgh"
        assert io.readinto(buf) == 2 and bytes(buf[:2]) == b"ij"
        assert io.writable()
        io.write(b"x\n")
        assert os.read(r2, 8) == b"x\n"
        os.close(w)
        assert io.readinto(buf) == 0          # writer gone: still no wait
    os.close(r2)


def test_build_frees_the_spare_then_the_reserve_when_the_heap_is_cut_up(monkeypatch):
    """On the emulated Pico loading hostio.mpy once found no 1,280-byte block in 77 KB
    free beside the import-time reserve. build() then frees the spare block right after
    the reserve and builds the graph again (the reserve kept: a largest block of 48 KB,
    not 5 KB); failing that, frees the reserve too; a third failure is raised."""
    calls = []

    class Graph:
        health = health.LoopHealth()

    def wire_failing(n):
        def wire():
            calls.append((main._reserve is not None, main._spare is not None))
            if len(calls) <= n:
                raise MemoryError("memory allocation failed, allocating 1280 bytes")
            return Graph
        return wire
    for fails, seen in ((0, [(True, True)]),
                        (1, [(True, True), (True, False)]),
                        (2, [(True, True), (True, False), (False, False)])):
        del calls[:]
        monkeypatch.setattr(main, "_wire", wire_failing(fails))
        monkeypatch.setattr(main, "_reserve", bytearray(16))
        monkeypatch.setattr(main, "_spare", bytearray(8))
        assert main.build() is Graph
        assert calls == seen and main.build_tries == fails + 1, (fails, calls)
        assert Graph.health.build_tries == fails + 1     # status reports it
        assert main._reserve is None and main._spare is None

    del calls[:]
    monkeypatch.setattr(main, "_wire", wire_failing(1))
    monkeypatch.setattr(main, "_reserve", bytearray(16))
    monkeypatch.setattr(main, "_spare", None)        # a source flash has no spare
    assert main.build() is Graph and calls == [(True, False), (False, False)]

    def never():
        raise MemoryError("still no room")
    monkeypatch.setattr(main, "_wire", never)
    monkeypatch.setattr(main, "_reserve", bytearray(16))
    monkeypatch.setattr(main, "_spare", bytearray(8))
    try:
        main.build()
    except MemoryError as e:
        assert "still no room" in str(e)
    else:
        raise AssertionError("the last MemoryError must reach the caller")
