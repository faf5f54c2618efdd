"""User commands (pause, resume, stop) and the session's own bookkeeping (charge, stats)."""

import pytest

import limits
from harness import DT_S, check_all, profile_of, run
from test_safety_numbers import scn


def test_user_pause_ramps_down_then_resume_reramps_from_zero():
    s = scn([{"t_s": 60, "command": "pause"}, {"t_s": 100, "command": "resume"}], 200)
    tr = run(s)
    check_all(tr, profile_of(s))
    t_down = tr.first("RAMP_DOWN")
    t_paused = tr.first("PAUSED")
    assert t_down == pytest.approx(60, abs=0.01)
    assert t_paused - t_down == pytest.approx(15, abs=0.5), "a pause ramps down like a stop"
    assert max(tr.col("true_ua")[int((t_paused + 0.1) / DT_S):int(100 / DT_S)]) == 0
    t_re = tr.first("RAMP_UP", after_s=100)
    assert 100.2 < t_re < 101.5
    assert tr.at(t_re)[4] < 1000
    assert tr.bench.ctrl.session.pauses == 1


def test_timer_stops_during_a_user_pause():
    s = scn([{"t_s": 60, "command": "pause"}, {"t_s": 160, "command": "resume"}], 480)
    tr = run(s)
    t_end = tr.first("RAMP_DOWN", after_s=170)
    # 300 s of treatment timer: ~60 s before the pause, the rest after the resume
    assert t_end == pytest.approx(300 + (160 - 60) + 0.7 + 0.7, abs=1.5)


def test_user_pause_times_out_after_5_min():
    s = scn([{"t_s": 40, "command": "pause"}], 400)
    tr = run(s)
    t_paused = tr.first("PAUSED")
    assert tr.first("DONE") - t_paused == pytest.approx(limits.PAUSE_LIMIT_MS / 1000, abs=0.05)


def test_stop_while_paused_ends_and_resume_is_refused_after():
    s = scn([{"t_s": 40, "command": "pause"}, {"t_s": 70, "command": "stop"},
             {"t_s": 75, "command": "resume"}], 80)
    tr = run(s)
    assert tr.rows[-1][1] == "DONE" and tr.bench.ctrl.session.end_reason == 2


def test_stop_during_a_pause_ramp_down_ends_the_session():
    s = scn([{"t_s": 40, "command": "pause"}, {"t_s": 45, "command": "stop"}], 70)
    tr = run(s)
    assert tr.first("PAUSED") is None and tr.rows[-1][1] == "DONE"


def test_delivered_charge_matches_the_measured_current():
    s = scn([{"t_s": 100, "contact": False}, {"t_s": 110, "contact": True}], 360)
    tr = run(s)
    ses = tr.bench.ctrl.session
    meas = tr.col("measured_ua")
    en = tr.col("enabled")
    # what the firmware measured while its output was applied, integrated on the host
    integral_uamin = sum(m for m, e in zip(meas, en) if e and m > 0) * DT_S / 60
    assert ses.charge_uamin == pytest.approx(integral_uamin, rel=0.002)
    true_mamin = sum(tr.col("true_ua")) * DT_S / 60 / 1000
    assert ses.charge_uamin / 1000 == pytest.approx(true_mamin, rel=0.01)
    assert 14800 < ses.i_min_ua <= ses.i_max_ua < 15200


def test_watchdog_is_armed_at_the_first_session_start_only():
    import scenario
    import sim
    b = scenario.Bench()
    armed = []

    def arm():
        wdt = sim.watchdog()
        armed.append(wdt)
        b.hal.set_watchdog(wdt)
    b.ctrl.arm_watchdog = arm      # what main passes to Controller(...)
    for _ in range(10):
        b.step()
    assert armed == [], "no watchdog while idle: flashing must stay possible"
    b.plant.contact = True
    b.ctrl.start(profile_of(scn([], 1)))
    b.ctrl.stop()
    for _ in range(10):
        b.step()
    b.ctrl.reset()
    b.ctrl.start(profile_of(scn([], 1)))
    assert len(armed) == 1 and armed[0].feeds == 10


def test_idle_states_keep_no_growing_counter():
    # weeks powered on between sessions: a counter past 2**30 would be a bigint on a
    # 32-bit board, and the step would start to allocate
    import session as sm
    ses = sm.Session(40000)
    for state in (sm.IDLE, sm.DONE, sm.FAULT):
        ses.state = state
        for _ in range(1000):
            ses.update(10 ** 6, 0, 0, False)
        assert ses.state_ms < 1000
