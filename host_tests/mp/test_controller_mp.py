"""firmware/controller.py and main.run on the sim board (scenario.Bench): the order inside a
step, commands, the fault path, the polarity flip, the loop's exception handling.

MicroPython-compatible: run by mptest on CPython, the unix and the WebAssembly ports.
"""

import limits
import main
import safety
import scenario
import session as sm
from profiles import Profile


def bench(**plant):
    b = scenario.Bench(**plant)
    b.plant.contact = True
    return b


def profile(**kw):
    args = {"target_ua": 10000, "duration_s": 300, "ramp_up_s": 10, "ramp_down_s": 5}
    args.update(kw)
    return Profile(**args)


def until(b, state, max_steps):
    n = 0
    while b.ctrl.session.state != state:
        assert n < max_steps, "no %s within %d steps (in %s)" % (
            sm.NAMES[state], max_steps, sm.NAMES[b.ctrl.session.state])
        b.step()
        n += 1
    return n


def test_session_reaches_target_on_the_sim_board():
    b = bench(skin_ohm=1000.0)
    b.ctrl.start(profile())
    until(b, sm.TREAT, 4000)
    for _ in range(400):
        b.step()
    assert abs(b.ctrl.i_ua - 10000) <= 100, b.ctrl.i_ua
    assert abs(b.plant.true_ua - 10000) <= 200, b.plant.true_ua
    assert b.hal.enabled and b.plant.enable


def test_invalid_profile_changes_nothing():
    b = bench()
    for bad in (profile(target_ua=30000), profile(duration_s=10), profile(ramp_up_s=1)):
        try:
            b.ctrl.start(bad)
        except ValueError:
            pass
        else:
            raise AssertionError("accepted %r" % bad.__dict__)
        assert b.ctrl.session.state == sm.IDLE
        assert b.ctrl.safety.trip_ua == limits.TRIP_ABS_UA


def test_arming_follows_the_prescription():
    b = bench()
    b.ctrl.start(profile(target_ua=15000))
    assert b.ctrl.safety.trip_ua == limits.trip_level_ua(15000) == 16500
    assert b.ctrl.regulator.ceiling_ua == 16500
    assert b.ctrl.safety.cap_ms == profile(target_ua=15000).hard_cap_ms()


def test_fault_cuts_the_output_in_the_same_tick():
    b = bench(skin_ohm=1000.0)
    b.ctrl.start(profile())
    until(b, sm.TREAT, 4000)
    b.plant.faults["source_runaway"] = True       # the pass device fails: full scale
    n = 0
    while b.ctrl.i_ua <= b.ctrl.safety.trip_ua:
        b.step()
        n += 1
        assert n < 10
    # the tick that measured the overcurrent has already cut the output
    assert b.ctrl.safety.fault == safety.F_OVERCURRENT
    assert b.ctrl.session.state == sm.FAULT
    assert not b.hal.enabled and b.hal.ref_code == 0
    assert b.plant.enable == 0 and b.plant.ref_code == 0
    b.step()
    assert b.plant.true_ua == 0.0


def test_fault_latched_start_refused_reset_only_from_fault_or_done():
    b = bench(skin_ohm=1000.0)
    b.ctrl.start(profile())
    until(b, sm.TREAT, 4000)
    b.ctrl.reset()                                # not from TREAT: nothing happens
    assert b.ctrl.session.state == sm.TREAT and b.hal.enabled
    b.plant.short = True
    until(b, sm.FAULT, 20)
    assert b.ctrl.safety.fault == safety.F_SHORT
    b.plant.short = False
    try:
        b.ctrl.start(profile())
    except ValueError:
        pass
    else:
        raise AssertionError("start accepted with a fault latched")
    for _ in range(100):
        b.step()
        assert not b.hal.enabled and b.ctrl.session.state == sm.FAULT
    feeds = b.hw.wdt.feeds
    b.step()
    assert b.hw.wdt.feeds == feeds + 1            # the watchdog is fed in FAULT too
    b.ctrl.reset()
    assert b.ctrl.session.state == sm.IDLE and b.ctrl.safety.fault == safety.OK
    assert not b.hal.enabled
    for _ in range(10):
        b.step()
        assert not b.hal.enabled
    b.ctrl.start(profile())
    until(b, sm.RAMP_UP, 400)


def test_done_disarms_and_stays_off():
    b = bench(skin_ohm=1000.0)
    b.ctrl.start(profile())
    until(b, sm.TREAT, 4000)
    b.ctrl.stop()
    assert b.ctrl.session.state == sm.RAMP_DOWN
    until(b, sm.DONE, 5 * 200 + 10)
    b.step()
    assert b.ctrl.safety.trip_ua == limits.TRIP_ABS_UA and b.ctrl.safety.cap_ms == 0
    assert not b.hal.enabled and b.hal.ref_code == 0
    assert b.ctrl.session.end_reason == sm.END_STOPPED


def test_polarity_flips_only_with_the_output_off():
    b = bench(skin_ohm=1000.0)
    p = profile(reverse=True)
    b.ctrl.start(p)
    until(b, sm.REVERSE, 200 * 160)
    flips = 0
    off = 0
    pol = b.plant.polarity
    while b.ctrl.session.state != sm.TREAT:
        b.step()
        if b.plant.polarity != pol:
            flips += 1
            pol = b.plant.polarity
            assert b.plant.enable == 0 and b.plant.ref_code == 0
            assert off * 5 >= limits.DEAD_TIME_MS, off
        off = 0 if b.plant.enable else off + 1
    assert flips == 1 and b.hal.polarity == 1


def test_loop_exception_cuts_output_first():
    b = bench(skin_ohm=1000.0)
    b.ctrl.start(profile())
    until(b, sm.TREAT, 4000)
    clock = [b.now_us]

    def ticks_us():
        return clock[0]

    def sleep_us(us):
        clock[0] += us
        b.plant.step(b.dt_s)

    calls = [0]

    def poll():
        calls[0] += 1
        if calls[0] == 50:
            raise RuntimeError("poll failed")

    try:
        main.run(b.ctrl, ticks_us, sleep_us, poll=poll)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the exception was swallowed")
    assert calls[0] == 50
    assert not b.hal.enabled and b.hal.ref_code == 0 and b.plant.enable == 0
    assert b.ctrl.safety.fault == safety.F_EXCEPTION
    assert b.ctrl.session.state == sm.FAULT


def test_main_run_keeps_the_period_and_restarts_after_an_overrun():
    b = bench()
    clock = [1000]
    ticks = []
    sleeps = []

    def ticks_us():
        return clock[0]

    def sleep_us(us):
        sleeps.append(us)
        clock[0] += us

    def poll():
        ticks.append(clock[0])
        clock[0] += 20000 if len(ticks) == 5 else 100    # step 5 is 4 periods late

    n = main.run(b.ctrl, ticks_us, sleep_us, poll=poll, max_steps=10)
    assert n == 10
    for k in range(1, 5):
        assert ticks[k] - ticks[k - 1] == 5000, ticks
    assert ticks[5] - ticks[4] == 20000, ticks         # no catch-up burst after the overrun
    for k in range(6, 10):
        assert ticks[k] - ticks[k - 1] == 5000, ticks
    assert len(sleeps) == 9 and min(sleeps) > 0
