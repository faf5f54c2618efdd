"""The calibration hold on the device (cal_hold / cal_sample, firmware/calhold.py).

In-process in virtual time (protorig.Rig: sim board, plant, fake flash, app). The plant
is a 1 kΩ resistor on a unit with a +5 % source gain error; the hold drives the
reference open loop, so the true current shows that error, and the sampler's raw means
must match what the plant's ADCs produce.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

from protorig import Rig  # noqa: E402

RESISTOR = {"nonlinear": False, "offset_v": 0.0, "skin_ohm": 1.0, "water_ohm": 0.0,
            "body_ohm": 999.0}


def rig(**kw):
    args = dict(RESISTOR, source_gain_error=0.05)
    args.update(kw)
    return Rig(service=False, **args)


def enter(r):
    assert r.ok("service_enter", code="000000")["service"] is True


def test_hold_drives_open_loop_and_samples_raw_codes():
    r = rig()
    enter(r)
    got = r.ok("cal_hold", ua=10000)
    assert got["i_fs_ua"] == 33000 and got["ref_fs_ua"] == 33000
    assert r.until(3, 30)          # TREAT
    r.seconds(2)
    s = r.ok("cal_sample")
    assert s["state"] == "TREAT" and s["n"] > 200
    ref = s["ref_code"]
    assert abs(ref - 10000 * 65536 // 33000) <= 2          # identity reference calibration
    true_ua = r.bench.plant.true_ua
    assert true_ua == pytest.approx(10500, rel=0.002)       # open loop: the unit's +5 %
    i_mean = s["i_sum"] / s["n"]
    assert i_mean * 33000 / 65536 == pytest.approx(true_ua, rel=0.003)
    assert s["v_sum"] / s["n"] * 66000 / 65536 == pytest.approx(true_ua, rel=0.005)  # 1 kΩ
    # the next point: the hold moves at the ramp slope, the sampler starts again
    r.ok("cal_hold", ua=20000)
    assert r.ok("cal_sample")["n"] == 0
    peak = 0.0
    for _ in range(int(6 / 0.005)):
        r.step()
        peak = max(peak, r.bench.plant.true_ua)
    assert r.ok("cal_sample")["n"] > 0
    assert peak < 20000 * 1.05 + 100 + 50                  # no overshoot on the way
    assert r.bench.plant.true_ua == pytest.approx(21000, rel=0.002)


def test_hold_keeps_service_mode_is_not_logged_and_blocks_treatment():
    r = rig()
    enter(r)
    r.ok("cal_hold", ua=5000)
    assert r.until(3, 30)
    r.seconds(1)
    assert r.ok("status")["service"] is True
    assert r.err("start") == "E_STATE"
    r.ok("stop")
    assert r.until(6, 30)          # DONE
    r.seconds(1)
    assert r.app.store.log.count == 0 and not r.app.recorder.pending
    r.ok("service_exit")
    assert r.err("cal_hold", ua=5000) == "E_DENIED"
    assert r.err("cal_sample") == "E_DENIED"


def test_a_silent_technician_ends_the_hold():
    r = rig()
    enter(r)
    r.ok("cal_hold", ua=5000)
    assert r.until(3, 30)
    r.seconds(r.app.SERVICE_IDLE_MS / 1000 + 1)
    assert r.app.service is False
    assert r.until(6, 30)          # ramped down to DONE


def test_a_treatment_cannot_be_turned_into_a_hold():
    r = rig()
    r.ok("start", target_ua=5000, ramp_up_s=30)
    assert r.until(2, 30)
    r.app.service = True           # even with service mode forced on in-process
    assert r.err("cal_hold", ua=5000) == "E_STATE"
