"""firmware/safety.py with a fake HAL: every fault code, the latch, and that check() cuts
the output itself (the fake HAL counts off() calls).

MicroPython-compatible: run by mptest on CPython, the unix and the WebAssembly ports.
"""

import limits
import safety
from safety import (F_ENVELOPE, F_HARD_CAP, F_HW_TRIP, F_OVERCURRENT, F_OVERRUN,
                    F_PLAUSIBILITY, F_SENSOR, F_SHORT, OK, Safety)

PERIOD_US = 5000
DT_MS = 5
PLAUS_CODE = 300     # reference codes above which a command must show current
TREAT_CODE = 2000
TRIP_UA = 16500      # 15 mA prescription x 1.1


class Board:
    COMPLIANCE_MV = 40000
    V_FS_MV = 66000


class FakeHal:
    def __init__(self):
        self.enabled = False
        self.ref_code = 0
        self.tripped = False
        self.offs = 0
        self.duty_pct = 100    # pulse gate duty applied (100 = DC)

    def hw_tripped(self):
        return self.tripped

    def off(self):
        self.offs += 1
        self.enabled = False
        self.ref_code = 0

    def on(self, code=5000):
        self.enabled = True
        self.ref_code = code


def armed(cap_ms=600000):
    hal = FakeHal()
    s = Safety(hal, Board(), PERIOD_US)
    s.arm(TRIP_UA, cap_ms, PLAUS_CODE, TREAT_CODE)
    return hal, s


def check(s, i_ua, v_mv, dt_us=PERIOD_US):
    return s.check(dt_us, dt_us // 1000, i_ua, v_mv)


def ramp_to(hal, s, target_ua, r_ohm=2000, per_step=10):
    """A legitimate ramp (2 mA/s, under the 2.5 mA/s envelope); returns the last fault."""
    hal.on()
    i = limits.OPEN_UA    # from where current shows (below, a treatment command is implausible)
    f = OK
    while i < target_ua and not f:
        i += per_step
        f = check(s, i, i * r_ohm // 1000 + 2000)
    return f


def assert_tripped(hal, s, f, code, offs_before):
    assert f == code, (safety.NAMES[f], safety.NAMES[code])
    assert s.fault == code
    assert hal.offs == offs_before + 1, (hal.offs, offs_before)
    assert not hal.enabled and hal.ref_code == 0


def test_codes_distinct_and_named():
    codes = (OK, F_OVERCURRENT, F_ENVELOPE, F_SHORT, F_SENSOR, F_PLAUSIBILITY, F_OVERRUN,
             F_HARD_CAP, F_HW_TRIP, safety.F_EXCEPTION)
    assert len(set(codes)) == len(codes)
    for c in codes:
        assert safety.NAMES[c]
    assert safety.NAMES[OK] == "ok"


def test_normal_treatment_is_quiet():
    hal, s = armed()
    assert ramp_to(hal, s, 15000) == OK
    for _ in range(2000):
        assert check(s, 15000, 32000) == OK
    assert hal.offs == 0 and hal.enabled and s.fault == OK
    assert s.overruns == 0 and s.worst_dt_us == PERIOD_US


def test_overcurrent_enabled_and_disabled():
    for enabled in (True, False):
        hal, s = armed()
        if enabled:
            assert ramp_to(hal, s, TRIP_UA - 200) == OK
        else:
            hal.ref_code = 0
        assert check(s, TRIP_UA, 30000) == OK      # at the level: not yet
        f = check(s, TRIP_UA + 1, 30000)
        assert_tripped(hal, s, f, F_OVERCURRENT, 0)


def test_trip_level_never_above_absolute():
    hal = FakeHal()
    s = Safety(hal, Board(), PERIOD_US)
    s.arm(45000, 600000, PLAUS_CODE, TREAT_CODE)
    assert s.trip_ua == limits.TRIP_ABS_UA
    assert s.trip_ua == limits.TRIP_ABS_UA
    assert s.check(PERIOD_US, DT_MS, limits.TRIP_ABS_UA + 1, 30000) == F_OVERCURRENT
    # disarmed (no session): the absolute level applies
    s2 = Safety(FakeHal(), Board(), PERIOD_US)
    assert s2.trip_ua == limits.TRIP_ABS_UA


def test_hw_trip():
    hal, s = armed()
    assert ramp_to(hal, s, 5000) == OK
    hal.tripped = True
    f = check(s, 5000, 12000)
    assert_tripped(hal, s, f, F_HW_TRIP, 0)


def test_envelope_jump():
    # a jump from 2 mA to 5 mA in one step: far faster than any legitimate ramp
    hal, s = armed()
    assert ramp_to(hal, s, 2000) == OK
    base = limits.ENV_SLOPE_UA_S * PERIOD_US // 1000000
    assert check(s, 2000 + base + limits.ENV_MARGIN_UA - 10, 9000) == OK   # within margin
    f = check(s, 5000, 12000)
    assert_tripped(hal, s, f, F_ENVELOPE, 0)


def test_envelope_follows_the_lowest_recent_level():
    # after the current fell (e.g. a limited phase) for longer than the hold, the
    # envelope starts again from there
    hal, s = armed()
    assert ramp_to(hal, s, 10000) == OK
    for _ in range(limits.ENV_HOLD_US // PERIOD_US + 2):
        assert check(s, 1000, 4000) == OK
    f = check(s, 10000, 22000)
    assert f == F_ENVELOPE


def test_envelope_lets_a_short_dip_come_back_to_the_level_held():
    # a rail step at compliance dips the current through the skin's capacitance for a
    # few tens of ms; it may come back to the level it held, not above it
    hal, s = armed()
    assert ramp_to(hal, s, 10000) == OK
    for _ in range(limits.ENV_HOLD_US // PERIOD_US - 2):
        assert check(s, 500, 2000) == OK
    assert check(s, 9000, 20000) == OK                  # back to (below) the level held
    assert check(s, 10000 + limits.ENV_MARGIN_UA - 10, 22000) == OK
    hal2, s2 = armed()
    assert ramp_to(hal2, s2, 10000) == OK
    for _ in range(10):
        assert check(s2, 500, 2000) == OK
    f = check(s2, 10000 + limits.ENV_MARGIN_UA + 100, 22000)   # above the level held
    assert_tripped(hal2, s2, f, F_ENVELOPE, 0)


def test_fastest_legitimate_ramp_passes():
    hal, s = armed()
    per_step = limits.ENV_SLOPE_UA_S * PERIOD_US // 1000000   # 12 µA per 5 ms
    assert ramp_to(hal, s, 15000, per_step=per_step) == OK
    assert hal.offs == 0


def test_short_circuit():
    hal, s = armed()
    assert ramp_to(hal, s, 5000) == OK
    ohm = limits.SHORT_OHM
    assert check(s, 5000, 5000 * ohm // 1000) == OK           # exactly at the minimum
    f = check(s, 5000, 5000 * (ohm - 10) // 1000)
    assert_tripped(hal, s, f, F_SHORT, 0)


def test_short_needs_some_current():
    # tiny currents give no reliable R: no short judged below 200 µA
    hal, s = armed()
    hal.on(PLAUS_CODE - 1)
    for _ in range(100):
        assert check(s, 150, 10) == OK


def test_sensor_voltage_full_scale():
    hal, s = armed()
    f = check(s, 0, Board.V_FS_MV - 1)
    assert_tripped(hal, s, f, F_SENSOR, 0)


def test_sensor_current_while_disabled():
    hal, s = armed()
    over = limits.DISABLED_MAX_UA + 1
    assert check(s, over, 0) == OK             # one sample may be a glitch
    assert check(s, 0, 0) == OK                # and the count restarts
    assert check(s, over, 0) == OK
    f = check(s, over, 0)                      # two in a row: a sensor fault
    assert_tripped(hal, s, f, F_SENSOR, 0)


def test_plausibility_at_treatment_command():
    # commanded >= 1 mA, nothing read, electrode not railed: a blind current sensor
    hal, s = armed()
    hal.on(TREAT_CODE)
    assert check(s, 0, 3000) == OK
    assert check(s, 0, 3000) == OK
    f = check(s, 0, 3000)
    assert_tripped(hal, s, f, F_PLAUSIBILITY, 0)


def test_plausibility_at_probe_command_is_slower():
    hal, s = armed()
    hal.on(PLAUS_CODE)
    n = 0
    f = OK
    while not f:
        f = check(s, 0, 3000)
        n += 1
        assert n < 1000
    assert f == F_PLAUSIBILITY
    assert 10 < n <= 50, n


def test_plausibility_not_on_open_circuit_or_low_command():
    hal, s = armed()
    hal.on(TREAT_CODE)
    open_mv = Board.COMPLIANCE_MV * limits.OPEN_V_PCT // 100
    for _ in range(200):
        assert check(s, 0, open_mv) == OK      # railed: an open circuit, the session's job
    hal.on(PLAUS_CODE - 1)
    for _ in range(200):
        assert check(s, 0, 3000) == OK         # below the judged command


def test_overrun():
    hal, s = armed()
    assert ramp_to(hal, s, 5000) == OK
    # late but within two periods: counted, not a fault
    assert check(s, 5000, 12000, dt_us=PERIOD_US * 3 // 2 + 1) == OK
    assert s.overruns == 1
    assert check(s, 5000, 12000, dt_us=2 * PERIOD_US) == OK
    f = check(s, 5000, 12000, dt_us=2 * PERIOD_US + 1)
    assert_tripped(hal, s, f, F_OVERRUN, 0)
    assert s.worst_dt_us == 2 * PERIOD_US + 1


def test_overrun_without_current_is_not_a_fault():
    hal, s = armed()
    assert check(s, 0, 0, dt_us=100 * PERIOD_US) == OK
    assert s.overruns == 1


def test_hard_cap():
    hal, s = armed(cap_ms=2000)
    assert ramp_to(hal, s, 1000, per_step=10) == OK   # 100 steps, 80 of them energized
    f = OK
    n = 0
    while not f:
        f = check(s, 1000, 4000)
        n += 1
        assert n < 1000
    assert f == F_HARD_CAP
    assert s.energized_ms > 2000
    assert s.energized_ms <= 2000 + DT_MS
    assert hal.offs == 1 and not hal.enabled


def test_latched_until_reset_and_cut_every_step():
    hal, s = armed()
    assert ramp_to(hal, s, 5000) == OK
    f = check(s, 20000, 30000)
    assert f == F_OVERCURRENT and hal.offs == 1
    for k in range(5):
        hal.on()   # whatever else tries to switch on again...
        assert check(s, 0, 0) == F_OVERCURRENT
        assert hal.offs == 2 + k and not hal.enabled   # ...is cut again at the next check
    s.reset()
    assert s.fault == OK
    assert hal.offs == 6 and not hal.enabled   # reset does not switch anything on
    assert check(s, 0, 0) == OK


def test_disarm():
    hal, s = armed(cap_ms=1000)
    s.disarm()
    assert s.trip_ua == limits.TRIP_ABS_UA and s.cap_ms == 0 and s.energized_ms == 0
    hal.on(TREAT_CODE)
    for _ in range(10):
        assert check(s, 0, 3000) == OK   # no plausibility judgement without a session
