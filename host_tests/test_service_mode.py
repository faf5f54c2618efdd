"""Service mode and the locked prescription (issue 6, items 1-2), on CPython.

* every service-only command of the command table is refused in patient mode, with every
  valid field combination, in several states, and nothing changes (records, files,
  calibration in use);
* brute force of the technician code is slowed as designed: guesses in 1 h and 24 h of
  virtual time (also when the attacker reboots after every miss);
* the prescription's per-profile caps: `start` with a catalogue profile, its defaults,
  every refusal, the format-1 record still loading, `adjust` within the cap, status and
  telemetry fields.
The same service-mode protocol tests also run on the MicroPython VMs (mp/test_auth_mp.py).
"""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

import auth  # noqa: E402
import commands  # noqa: E402
import records  # noqa: E402
import session as sm  # noqa: E402
import storage  # noqa: E402
from fakefs import FakeFs  # noqa: E402
from protorig import CAL, RX_GROUPS, Rig  # noqa: E402

RX = dict(records.RX_FACTORY, target_ua=10000, hands_max_ua=12000, feet_max_ua=18000,
          drug_max_ua=3000, dose_uamin=30000, min_duration_s=400, max_duration_s=1200,
          ramp_up_s=20, reverse_allowed=False)

# a valid request body for every service-only command (a new one must be added here)
SERVICE_VALID = {
    "cal_read": {}, "rx_read": {}, "log_clear": {},
    "cal_write": dict(CAL, i_gain=17000),
    "rx_write": dict(RX, target_ua=9000),
    "service_code": {"code": "Tech4711"},
    "cal_hold": {"ua": 5000}, "cal_sample": {},
}


def _service_only():
    table = commands.Commands(None).table
    return sorted(k for k in table if table[k][2] & commands._SERVICE)


def _combos(fields):
    """Every valid combination worth sending: all of them, each alone, each left out, and
    for the prescription its rx_write groups; only those that fit in one line."""
    keys = sorted(fields)
    sets = [keys, []] + [[k] for k in keys] + [[j for j in keys if j != k] for k in keys]
    if "hands_max_ua" in fields:
        sets += [list(g) for g in RX_GROUPS]
    out = []
    for s in sets:
        req = {"id": 3}
        for k in s:
            req[k] = fields[k]
        if req not in out:
            out.append(req)
    return out


def _patient_rigs():
    idle = Rig(service=False)
    idle.store.log.append(_log_rec())
    yield "idle", idle
    treat = Rig(service=False, skin_ohm=1000.0)
    treat.ok("start", target_ua=8000, duration_s=300)
    assert treat.until(sm.TREAT, 60)
    yield "treating", treat
    left = Rig(service=False)
    left.ok("service_enter", code=auth.FACTORY_CODE)
    left.ok("service_exit")
    yield "after service_exit", left
    timed = Rig(service=False)
    timed.ok("service_enter", code=auth.FACTORY_CODE)
    timed.skip(301)
    yield "after the timeout", timed


def _log_rec():
    from test_treatment_log import rec
    return rec(1)


def test_every_service_only_command_is_refused_in_patient_mode():
    names = _service_only()
    assert names == sorted(SERVICE_VALID), "add the new service-only command to SERVICE_VALID"
    assert {"cal_read", "cal_write", "rx_read", "rx_write", "log_clear", "service_code"} <= set(names)
    sent = 0
    for state, rig in _patient_rigs():
        for cmd in names:
            for req in _combos(SERVICE_VALID[cmd]):
                req["cmd"] = cmd
                line = json.dumps(req, separators=(",", ":")).encode()
                if len(line) > 256:
                    continue
                before = rig.snapshot()
                files = rig.fs.snapshot()
                in_use = rig.app.cal_in_use.__dict__.copy()
                got = rig.send_line(line)
                assert len(got) == 1 and got[0]["ok"] is False, (state, line, got)
                assert got[0]["error"]["code"] == "E_DENIED", (state, line, got)
                assert "service" in got[0]["error"]["msg"]
                assert rig.snapshot() == before and rig.fs.snapshot() == files, (state, line)
                assert rig.app.cal_in_use.__dict__ == in_use
                sent += 1
            # the same request is accepted in service mode (so the walk tests real requests)
    assert sent > 100
    svc = Rig()
    for cmd in names:
        if cmd != "log_clear":
            svc.ok(cmd, **SERVICE_VALID[cmd]) if cmd != "rx_write" else svc.write_rx(
                SERVICE_VALID[cmd])
        if cmd == "cal_hold":              # a hold is a session: end it for the writes
            svc.ok("stop")
            assert svc.until(sm.DONE, 30)


# ---- brute force of the technician code --------------------------------------------------

def _attack(seconds, reboot=False):
    """Wrong guesses an attacker gets in `seconds` of virtual time, guessing the moment the
    lockout ends (and, with `reboot`, power-cycling after every miss at no time cost)."""
    fs = FakeFs()
    store = records.Store(fs).load()
    a = auth.Auth(store.auth, 0)
    a.set_code("Secret99")
    now = 0
    guesses = 0
    while True:
        now += a.locked_s(now)
        if now >= seconds:
            return guesses
        with pytest.raises(ValueError) as e:
            a.check("%06d" % guesses, now)
        assert e.value.code == "E_AUTH"
        guesses += 1
        if reboot:
            a = auth.Auth(records.Store(fs).load().auth, now)


def test_brute_force_is_slowed_as_designed():
    hour, day = _attack(3600), _attack(86400)
    # 3 free, then locks of 2, 4, ... 512 s (1022 s in all), then one guess per 900 s
    assert hour == 14 and day == 106, (hour, day)
    assert _attack(3600, reboot=True) == hour and _attack(86400, reboot=True) == day
    print("brute force: %d guesses in 1 h, %d in 24 h; a 6-digit code takes ~%.0f years "
          "for a 50 %% chance" % (hour, day, 500000 * 900 / 86400 / 365))


def test_locked_refusals_write_nothing():
    rig = Rig(service=False)
    for _ in range(auth.FREE_TRIES):
        assert rig.err("service_enter", code="999999") == "E_AUTH"
    gen = rig.fs.gen
    for _ in range(50):                          # a flood while locked: no flash wear
        assert rig.err("service_enter", code="999999") == "E_LOCKED"
    assert rig.fs.gen == gen


def test_a_failed_counting_write_is_not_checked():
    rig = Rig(service=False)
    rig.fs.fail_after(1)
    before = rig.snapshot(auth=False)
    data, fails = rig.store.auth.data, rig.app.auth.fails
    assert rig.err("service_enter", code=auth.FACTORY_CODE) == "E_STORAGE"
    # the failed write may leave a .new file (fs.gen moved); nothing else changed
    assert rig.snapshot(auth=False) == before
    assert rig.store.auth.data == data and rig.app.auth.fails == fails
    # a torn first record (.new only) reads as corrupt at the next boot: no free tries then
    assert rig.app.service is False and rig.app.auth.fails == 0
    assert Rig(fs=rig.fs, service=False).app.auth.fails in (0, auth.FREE_TRIES)


def test_service_enter_needs_idle():
    rig = Rig(service=False)
    rig.ok("start")
    assert rig.err("service_enter", code=auth.FACTORY_CODE) == "E_STATE"


# ---- the prescription's caps and the catalogue profiles --------------------------------

def test_factory_prescription_profiles():
    rig = Rig()
    r = rig.ok("start", profile="feet")
    assert (r["profile"], r["mode"], r["target_ua"], r["duration_s"]) == ("feet", "dc", 20000, 900)
    s = rig.ok("status")
    assert s["profile"] == "feet" and s["mode"] == "dc" and s["dose_uamin"] is None
    rig.ok("stop")
    assert rig.until(sm.DONE, 60)
    r = rig.ok("start", profile="child")
    assert r["target_ua"] == 8000 and r["ramp_up_s"] == 40
    rig.ok("stop")
    assert rig.until(sm.DONE, 60)
    assert rig.err("start", profile="child", target_ua=8001) == "E_RANGE"
    assert rig.err("start", profile="drug") == "E_DENIED"     # never without a prescription
    assert rig.err("start", profile="elbow") == "E_RANGE"
    assert rig.err("start", profile=3) == "E_TYPE"
    r = rig.ok("start", profile="underarm")
    assert r["mode"] == "pulsed" and r["pulse_hz"] == 4300 and r["peak_ua"] == 20000
    assert rig.err("start", profile="underarm") == "E_STATE"


def test_prescribed_caps_bind_start():
    rig = Rig()
    rig.write_rx(RX)
    assert rig.ok("rx_read")["rx"] == RX
    r = rig.ok("start")
    assert (r["profile"], r["target_ua"], r["duration_s"], r["ramp_up_s"]) == ("hands", 10000, 600, 20)
    rig.ok("stop")
    assert rig.until(sm.DONE, 60)
    for fields, code in (({"target_ua": 12001}, "E_RANGE"),
                         ({"profile": "feet", "target_ua": 18001}, "E_RANGE"),
                         ({"duration_s": 399}, "E_RANGE"), ({"duration_s": 1201}, "E_RANGE"),
                         ({"ramp_up_s": 19}, "E_RANGE"), ({"reverse": True}, "E_DENIED"),
                         ({"dose_uamin": 30000}, "E_RANGE"),           # hands is no dose
                         ({"profile": "drug", "dose_uamin": 30001}, "E_RANGE"),
                         ({"profile": "drug", "target_ua": 3001}, "E_RANGE"),
                         ({"profile": "drug", "dose_uamin": 80001}, "E_RANGE"),
                         ({"profile": "drug", "duration_s": 500}, "E_RANGE")):   # unreachable
        req = dict(fields, cmd="start")
        before = rig.snapshot()
        got = rig.send_line(json.dumps(req).encode())
        assert got[0]["ok"] is False and got[0]["error"]["code"] == code, (fields, got)
        assert rig.snapshot() == before
    r = rig.ok("start", profile="feet")
    assert r["target_ua"] == 18000 and r["duration_s"] == 900 and r["ramp_up_s"] == 30
    rig.ok("stop")
    assert rig.until(sm.DONE, 60)
    r = rig.ok("start", profile="drug", dose_uamin=20000)
    assert r["mode"] == "dose" and r["target_ua"] == 3000 and r["dose_uamin"] == 20000
    assert r["duration_s"] == 1200
    s = rig.ok("status")
    assert s["mode"] == "dose" and s["dose_uamin"] == 20000


def test_rx_write_refuses_inconsistent_prescriptions():
    rig = Rig()
    for fields in ({"drug_max_ua": 4001}, {"underarm_max_ua": 12501}, {"hands_max_ua": 999},
                   {"hands_max_ua": 0},                              # the default profile
                   {"profile": "drug"},                              # not allowed
                   {"drug_max_ua": 1000},                            # dose not reachable
                   {"min_duration_s": 900},                          # above duration_s
                   {"profile": "hands", "target_ua": 26000}):
        before = rig.snapshot()
        got = rig.send_line(json.dumps(dict(fields, cmd="rx_write")).encode())
        assert got[0]["error"]["code"] == "E_RANGE", (fields, got)
        assert rig.snapshot() == before
    assert rig.ok("rx_write", profile="feet", target_ua=20000, hands_max_ua=0)["rx"]["profile"] == "feet"


def test_format_1_prescription_still_loads():
    v1 = {"max_target_ua": 12000, "target_ua": 10000, "max_duration_s": 900, "duration_s": 600,
          "ramp_up_s": 10, "ramp_down_s": 10, "reverse_allowed": False, "induction_sessions": 3,
          "induction_per_week": 3, "maintenance_per_week": 1}
    fs = FakeFs()
    fs.files["data/rx.rec"] = bytearray(storage.encode(storage.KIND_RX, v1))
    rig = Rig(fs=fs)
    assert rig.ok("status")["rx"] == "ok"
    r = rig.ok("rx_read")
    assert r["v1"] is True and r["rx"]["hands_max_ua"] == 12000 and r["rx"]["drug_max_ua"] == 0
    assert r["rx"]["underarm_max_ua"] == 0 and r["rx"]["max_duration_s"] == 900
    assert rig.err("start", profile="underarm") == "E_DENIED"
    assert rig.err("start", target_ua=12001) == "E_RANGE"
    assert rig.ok("schedule")["induction_sessions"] == 3
    rig.ok("rx_write", child_max_ua=6000)
    assert rig.ok("rx_read")["v1"] is False
    again = Rig(fs=fs)
    assert again.ok("rx_read")["v1"] is False and again.store.rx.data["child_max_ua"] == 6000
    # a damaged format-1 record is corrupt like any other
    bad = FakeFs()
    bad.files["data/rx.rec"] = bytearray(storage.encode(storage.KIND_RX, dict(v1, target_ua=13000)))
    assert Rig(fs=bad).ok("status")["rx"] == "corrupt"


def test_telemetry_shows_the_peak_in_pulsed_mode():
    rig = Rig(skin_ohm=1000.0)
    rig.ok("telemetry", on=True, hz=10)
    rig.ok("start", profile="underarm")
    assert rig.until(sm.TREAT, 60)
    rig.out[:] = []
    rig.seconds(1)
    lines = list(rig.out)
    tel = [json.loads(x) for x in lines]
    assert tel and all("peak_ua" in t for t in tel)
    assert max(len(x) for x in lines) < 200
    s = rig.ok("status")
    assert s["mode"] == "pulsed" and s["peak_ua"] is not None


def test_adjust_within_the_cap():
    rig = Rig(skin_ohm=1000.0)
    rig.write_rx(RX)
    assert rig.err("adjust", target_ua=9000) == "E_STATE"          # nothing runs
    rig.ok("start", target_ua=8000, duration_s=600)
    assert rig.until(sm.TREAT, 60)
    before = rig.snapshot()
    assert rig.err("adjust", target_ua=12001) == "E_RANGE"
    assert rig.err("adjust", target_ua=26000) == "E_RANGE"
    assert rig.err("adjust", target_ua=9000.0) == "E_BUSY"     # not flat: unread in a session
    assert rig.snapshot() == before
    assert rig.ok("adjust", target_ua=11000)["target_ua"] == 11000
    rig.seconds(10)
    s = rig.ok("status")
    assert s["target_ua"] == 11000
    rig.ok("stop")
    assert rig.until(sm.DONE, 60)
    assert rig.err("adjust", target_ua=9000) == "E_STATE"
