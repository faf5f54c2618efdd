"""The control step allocates nothing on the heap, in every state (MicroPython only).

heap_walk.walk() drives the controller on the sim board through WAIT_CONTACT (probing open,
then closed), RAMP_UP, PAUSED (contact lost: probing open, then closed), TREAT (compliance
limited), REVERSE (ramp down, dead time, flip, probe), PAUSED (a hand lifted: the density
guard, then the probe seeing the area back), RAMP_DOWN, DONE, IDLE and FAULT, and
measures each `ctrl.tick(now)` alone (the plant steps outside the measured region) in two
independent ways: gc.mem_alloc() around the tick with the collector disabled, and
micropython.heap_lock() around it (any allocation raises MemoryError at the line that
allocates). Floats are boxed on both ports, as on the ESP32/STM32 boards, so a float op
in the step shows up here. Skipped on CPython.
heap_walk.walk_modes() does the same for the modes: pulsed (with set_target up and down,
and the gate back to DC at DONE), dose (with the dose-triggered ramp down) and the
calibration hold (open loop, set_target).
"""

import sys

import heap_walk
import mptest
import session as sm


def _need_micropython():
    if not mptest.is_micropython():
        raise mptest.Skip("heap accounting needs MicroPython (here " + sys.implementation.name + ")")


def _check(cov):
    missing = cov.missing()
    assert not missing, "states not covered: %s\n%s" % (missing, cov.report())
    # the transitions made inside a tick (start, stop and reset are commands between ticks)
    got = [sm.NAMES[x] for x in cov.states]
    assert got == ["RAMP_UP", "PAUSED", "RAMP_UP", "TREAT", "REVERSE", "RAMP_UP", "TREAT",
                   "PAUSED", "RAMP_UP", "TREAT", "DONE", "RAMP_UP", "FAULT"], got
    assert cov.limited > 100, cov.limited      # the compliance-limited path ran too


def test_bytes_per_tick_are_zero():
    # mem_alloc around the tick. Named to run first (mptest runs tests sorted by name): on
    # wasm every allocation of the run stays on the heap, and mem_alloc scans all of it.
    _need_micropython()
    # every tick on unix; on wasm (no collection inside a run: mem_alloc slows down as the
    # heap grows) each 16th tick plus the first 100 ms of every state
    every = 16 if sys.platform == "webassembly" else 1
    cov = heap_walk.walk(heap_walk.measure_mem_alloc, every=every)
    _check(cov)
    assert cov.total() == 0, "the control step allocated:\n" + cov.report()


def test_tick_allocates_nothing_heap_locked():
    # every tick, both ports: an allocation raises MemoryError at the line that allocates
    _need_micropython()
    cov = heap_walk.walk(heap_walk.measure_heap_lock)
    _check(cov)
    assert cov.measured_transitions == cov.transitions


def _check_modes(cov):
    missing = heap_walk.missing_modes(cov)
    assert not missing, "mode states not covered: %s\n%s" % (missing, cov.report())
    got = [sm.NAMES[x] for x in cov.states]
    # pulsed and cal: stopped by command; dose: the dose starts the ramp down itself
    assert got == ["RAMP_UP", "TREAT", "DONE", "RAMP_UP", "TREAT", "RAMP_DOWN", "DONE",
                   "RAMP_UP", "TREAT", "DONE"], got
    assert cov.gate_duty_after == 1.0, cov.gate_duty_after     # the gate is back to DC


def test_bytes_per_tick_are_zero_in_every_mode():
    # pulsed (with set_target up and down), dose (with the dose-triggered ramp down),
    # calibration hold (open loop, set_target): mem_alloc around each tick
    _need_micropython()
    every = 16 if sys.platform == "webassembly" else 1
    cov = heap_walk.walk_modes(heap_walk.measure_mem_alloc, every=every)
    _check_modes(cov)
    assert cov.total() == 0, "the control step allocated:\n" + cov.report()


def test_tick_allocates_nothing_heap_locked_in_every_mode():
    _need_micropython()
    cov = heap_walk.walk_modes(heap_walk.measure_heap_lock)
    _check_modes(cov)


class _Allocating:
    """A controller whose tick also does one float op (floats are boxed: it allocates)."""

    def __init__(self, ctrl):
        self.ctrl = ctrl
        self.x = 0.0

    def tick(self, now):
        self.ctrl.tick(now)
        self.x = self.x * 1.5 + 0.25


def test_measurement_sees_an_allocation():
    # the same measurement around a tick that allocates (a float op in a wrapper) reports it
    _need_micropython()
    import scenario
    w = _Allocating(scenario.Bench().ctrl)
    n = heap_walk.measure_mem_alloc(w, 0)
    assert n > 0, n
    try:
        heap_walk.measure_heap_lock(w, 5000)
    except MemoryError:
        pass
    else:
        raise AssertionError("heap_lock did not catch the allocation")


def test_walk_covers_every_state_cpython():
    # the walk's coverage without heap accounting, so that CPython checks the script too
    if mptest.is_micropython():
        raise mptest.Skip("covered by the measured walks")

    def plain(ctrl, now):
        ctrl.tick(now)
        return 0

    _check(heap_walk.walk(plain))
    _check_modes(heap_walk.walk_modes(plain))
