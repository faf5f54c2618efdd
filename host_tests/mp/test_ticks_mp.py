"""firmware/ticks.py: wrapping tick arithmetic, on CPython (emulated 2**30 period) and the VMs.

The VMs' own period: 2**62 on the unix port, 2**30 on the WebAssembly port and the boards.
The controller must time a step across the wrap exactly like any other step.
MicroPython-compatible: run by mptest (see docs/micropython_vm.md).
"""

import sys

import ticks


def _period():
    return ticks.ticks_add(0, -1) + 1


def test_period_is_a_power_of_two():
    p = _period()
    assert p > 0 and p & (p - 1) == 0, p
    if sys.platform == "webassembly" or sys.implementation.name != "micropython":
        assert p == 1 << 30, p      # boards, the wasm port and the CPython emulation
    elif sys.platform == "linux":
        assert p == 1 << 62, p      # MicroPython unix port


def test_add_and_diff_across_the_wrap():
    p = _period()
    half = p >> 1
    for t in (0, 1, p - 1, p - 5000, half - 1, half):
        for d in (0, 1, -1, 5000, -5000, 123456, -123456, half - 1, -half + 1):
            u = ticks.ticks_add(t, d)
            assert 0 <= u < p, (t, d, u)
            assert ticks.ticks_diff(u, t) == d, (t, d, u)
            assert ticks.ticks_diff(t, u) == -d, (t, d, u)
    assert ticks.ticks_add(p - 1, 1) == 0
    assert ticks.ticks_diff(0, p - 1) == 1
    assert ticks.ticks_diff(p - 1, 0) == -1


def test_diff_is_signed_half_period():
    p = _period()
    half = p >> 1
    # exactly half a period apart reads as the negative end of the range
    assert ticks.ticks_diff(half, 0) == -half
    assert ticks.ticks_diff(half - 1, 0) == half - 1
    assert ticks.ticks_diff(half + 1, 0) == -half + 1


def test_ticks_us_is_in_range():
    p = _period()
    a = ticks.ticks_us()
    b = ticks.ticks_us()
    assert 0 <= a < p and 0 <= b < p
    assert 0 <= ticks.ticks_diff(b, a) < 1000000


def test_controller_steps_evenly_across_the_wrap():
    # A virtual clock that starts 100 periods before the wrap: every step is 5 ms long,
    # none is an overrun, the treatment timer runs evenly.
    import scenario
    from profiles import Profile

    p = _period()
    bench = scenario.Bench(clock_start_us=p - 100 * 5000)
    bench.plant.contact = True
    bench.ctrl.start(Profile(target_ua=10000, duration_s=300, ramp_up_s=10, ramp_down_s=5))
    wrapped = False
    for _ in range(400):
        before = bench.now_us
        bench.step()
        if bench.now_us < before:
            wrapped = True
    assert wrapped
    s = bench.ctrl.safety
    assert s.worst_dt_us == 5000, s.worst_dt_us
    assert s.overruns == 0 and s.fault == 0
    assert bench.ctrl.session.state_ms > 0
