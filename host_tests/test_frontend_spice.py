"""The reference front-end (hardware/frontend/) in ngspice, held against the plant model.

What is checked (docs/frontend.md §5 has the numbers these bounds come from):
- the reference path's step response (real 50 kHz PWM) against the plant's one-pole filter
  with the derived time constant;
- an open circuit: the rail on the electrode, no current; the re-contact spike with and
  without the firmware's cut-first order;
- the comparator's trip-to-off time with no MCU action, and its latch;
- the output with the MCU in reset or its pins floating;
- every listed single fault stays under the passive bound;
- plant vs ngspice on a set of waveforms (hands in and out, load steps, rail sag).

ngspice comes from Debian (.ci/run installs it). Without it these tests skip locally with
the reason, and FAIL under CI=true: a check that did not run is never reported as passed.
The board-consistency test at the end needs no simulator and always runs.
"""

import os

import numpy as np
import pytest

import frontend_ref as fr
import ngspice_run
import limits
from plant import Plant

import pico as pico_board   # boards/pico.py (constants only)

FRAC_15MA = 15000.0 / fr.derived()["ref_fs_ua"]   # PWM fraction for 15 mA (hands default)


@pytest.fixture(scope="module")
def spice_dir(tmp_path_factory):
    """A work folder for the netlists and raw files; the ngspice gate (skip or fail)."""
    if not ngspice_run.available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("ngspice is not installed under CI: .ci/run must install it "
                        "(apt-get install ngspice)")
        pytest.skip("ngspice not installed (Debian: apt-get install ngspice); "
                    "these front-end checks run in CI")
    return str(tmp_path_factory.mktemp("spice"))


def _at(tr, t, key="i(v_im)"):
    return float(np.interp(t, tr["time"], tr[key]))


def _max_in(tr, t0, t1, key="i(v_im)"):
    m = (tr["time"] >= t0) & (tr["time"] <= t1)
    return float(tr[key][m].max())


# ---- 1. reference path -----------------------------------------------------------------
def test_reference_step_matches_plant_filter(spice_dir):
    """Real PWM (50 kHz, duty for 15 mA from t = 2 ms) through the two RC sections, vs the
    plant's one-pole filter with ref_tau_ms = 3RC (the ladder's Elmore delay)."""
    t_on = 0.002
    tr = fr.run_bench(spice_dir, "ref_step", t_stop_s=0.013,
                      pwm=(FRAC_15MA, pico_board.PWM_FREQ_HZ, t_on),
                      rs=[(0.0, 1000.0)], rk=[(0.0, 1500.0)], t_max_s=0.2e-6)
    t = tr["time"]
    vref = tr["v(xfe.vref)"] / fr.VALUES["V_LOGIC"]        # fraction of full scale
    p = Plant(**fr.plant_kwargs(1000.0, 1500.0, 0.5))
    p.enable = 1
    p.contact = True
    dt = 50e-6
    code = int(round(FRAC_15MA * 65535))
    worst = 0.0
    at_period = {}
    for k in range(1, int(round(0.011 / dt)) + 1):
        p.ref_code = code
        p.step(dt)
        tk = t_on + k * dt
        diff = abs(_at(tr, tk, "v(xfe.vref)") / fr.VALUES["V_LOGIC"] - p._ref_f) / FRAC_15MA
        worst = max(worst, diff)
        for n in (1, 2):     # the firmware samples once per 5 ms control period
            if abs(k * dt - n * pico_board.CONTROL_PERIOD_US * 1e-6) < dt / 2:
                at_period[n] = diff
    # continuous: a one-pole model of a two-pole ladder (measured 7.3 % of the step)
    assert worst <= 0.10, worst
    # where the firmware looks, one and two control periods after the step (0.4 %, 0.1 %)
    assert at_period[1] <= 0.005 and at_period[2] <= 0.005, at_period
    # ripple at 50 kHz on the filtered reference (docs/boards.md: ~0.2 mV amplitude)
    m = t > 0.012
    ripple_mv = (vref[m].max() - vref[m].min()) * fr.VALUES["V_LOGIC"] * 1e3
    assert ripple_mv < 1.0, ripple_mv
    # and the source follows: 15 mA x mirror gain, less the divider's ~40 µA
    i_end = float(tr["i(v_im)"][-1]) * 1e3
    assert abs(i_end - 15.0 * fr.derived()["mirror_gain"]) < 0.1, i_end


# ---- 2. open circuit and re-contact ---------------------------------------------------------
def test_open_circuit_rails_with_no_current(spice_dir):
    """Hands out, 15 mA commanded: the electrode reads the rail, the firmware's open
    circuit rule sees it (above OPEN_V_PCT of the board's compliance), no current."""
    tr = fr.run_bench(spice_dir, "open", t_stop_s=0.02, ref=[(0.0, FRAC_15MA)],
                      rs=[(0.0, fr.OPEN_OHM)])
    v_el = float(tr["v(vsense)"][-1]) * pico_board.DIVIDER_RATIO
    assert v_el >= 0.95 * fr.VALUES["V_RAIL"], v_el
    assert v_el * 1000 > pico_board.COMPLIANCE_MV * limits.OPEN_V_PCT // 100
    assert v_el * 1000 < pico_board.V_FS_MV       # not a saturated ADC
    assert abs(float(tr["i(v_im)"][-1])) < 1e-6
    i_sense_ua = float(tr["v(isense)"][-1]) / pico_board.SHUNT_OHM * 1e6
    assert i_sense_ua < limits.OPEN_UA
    # the plant says the same: the output at its compliance
    p = Plant(**fr.plant_kwargs(fr.OPEN_OHM, 1500.0, 0.5))
    p.enable, p.contact, p.ref_code = 1, False, int(round(FRAC_15MA * 65535))
    p.step(0.005)
    assert abs(p.v_load - v_el) <= 0.05 * v_el, (p.v_load, v_el)


def _recontact_no_cut(spice_dir):
    t_c = 0.010
    return t_c, fr.run_bench(spice_dir, "recontact_nocut", t_stop_s=0.012,
                             ref=[(0.0, FRAC_15MA)],
                             rs=fr.steps(fr.OPEN_OHM, [(t_c, 1000.0)]),
                             rk=[(0.0, 1500.0)], t_max_s=0.1e-6)


def test_recontact_spike_without_cut_first(spice_dir):
    """The source left at 15 mA on an open circuit: the output capacitance sits at the
    rail and discharges into the hand on re-contact. The charge it adds is C_OUT+C_CABLE
    times the fall of the output node, from the rail to I*(R_LIM + load) (within 25 %).
    The plant counts the fall down to the skin voltage, not to I*R: it overestimates
    this charge (conservative; docs/frontend.md §5), which is asserted, not hidden."""
    t_c, tr = _recontact_no_cut(spice_dir)
    peak_ma = _max_in(tr, t_c, t_c + 100e-6) * 1e3
    t = tr["time"]
    m = (t >= t_c) & (t <= t_c + 50e-6)
    i_ss = _at(tr, t_c + 1e-3)      # the source's settled current
    q_spice_uc = float(np.trapezoid(tr["i(v_im)"][m] - i_ss, t[m])) * 1e6
    d = fr.derived()
    v_open = _at(tr, t_c - 1e-6, "v(xfe.out)")
    r_path = fr.VALUES["R_LIM"] + 1000.0 + fr.VALUES["R_SHUNT"] + d["r_on_en_ohm"]
    q_expect_uc = d["c_out_nf"] * 1e-9 * (v_open - i_ss * r_path) * 1e6
    # plant: same load, hands in after 10 ms open with 15 mA commanded
    p = Plant(**fr.plant_kwargs(1000.0, 1500.0, 0.5))
    p.enable, p.contact, p.ref_code = 1, False, int(round(FRAC_15MA * 65535))
    dt = 1e-4
    for _ in range(100):
        p.step(dt)
    i_before = p._i
    p.contact = True
    p.step(dt)
    q_plant_uc = (p.true_ua - (i_before + p._i) * 0.5) * 1e-6 * dt * 1e6   # µA*s -> µC
    assert peak_ma > 20.0, peak_ma                 # the hazard is real without the cut
    assert abs(q_spice_uc - q_expect_uc) <= 0.25 * q_expect_uc, (q_spice_uc, q_expect_uc)
    assert q_spice_uc <= q_plant_uc <= 3.0 * q_spice_uc, (q_spice_uc, q_plant_uc)
    # the comparator (1 µs filter) does not take the spike for a failed source
    assert float(tr["v(tripo)"].max()) < 1.0


def test_recontact_with_cut_first_order(spice_dir):
    """The firmware's order: contact lost -> enable off, then the reference to 0 (within
    two control periods); the probe rests 200 ms disabled; the hand comes back during
    the rest; the probe then drives 300 µA. No spike: the divider has bled C_OUT."""
    t_open, t_cut, t_back, t_probe = 0.002, 0.012, 0.100, 0.002 + 0.010 + limits.PROBE_REST_MS / 1000.0
    probe = limits.PROBE_UA / fr.derived()["ref_fs_ua"]
    tr = fr.run_bench(spice_dir, "recontact_cut", t_stop_s=t_probe + 0.010,
                      ref=fr.steps(FRAC_15MA, [(t_cut + 1e-6, 0.0), (t_probe, probe)]),
                      en=fr.steps(1.0, [(t_cut, 0.0), (t_probe, 1.0)]),
                      rs=fr.steps(1000.0, [(t_open, fr.OPEN_OHM), (t_back, 1000.0)]),
                      rk=[(0.0, 1500.0)], t_max_s=2e-6)
    v_out_at_back = _at(tr, t_back, "v(xfe.out)")
    assert v_out_at_back < 1.0, v_out_at_back
    # next to nothing flows while the output rests: the leads' 100 pF share their last
    # 0.1 V with the hand (measured 11 pC, 0.11 mA for 1 µs)
    t = tr["time"]
    m = (t >= t_back) & (t < t_probe)
    assert float(np.trapezoid(np.abs(tr["i(v_im)"][m]), t[m])) < 1e-9
    assert _max_in(tr, t_back, t_probe) < 1e-3
    # the probe's own turn-on (measured: 0.38 mA peak, a 25 % overshoot of 0.3 mA as the
    # op-amp leaves its low rail) is the largest current after the re-contact: no spike
    peak_ma = _max_in(tr, t_back, t_probe + 0.010) * 1e3
    assert peak_ma < 0.5, peak_ma
    # the probe current arrives (contact is seen)
    assert _at(tr, t_probe + 0.009) * 1e6 > limits.PROBE_UA * 0.9


# ---- 3. comparator ---------------------------------------------------------------------------
T_TRIP_OFF_MAX_US = 10.0    # stated: output below 1 mA within 10 µs of the current passing 35 mA


def test_comparator_trips_off_on_its_own(spice_dir):
    """A shorted mirror output (failed source) at the lowest body resistance: the current
    passes 35 mA, the comparator latches and opens the enable switch with the MCU still
    holding enable high. Off = below 1 mA."""
    t_en = 0.001
    tr = fr.run_bench(spice_dir, "trip", t_stop_s=0.003, ref=[(0.0, FRAC_15MA)],
                      en=fr.steps(0.0, [(t_en, 1.0)]), rs=[(0.0, fr.R_LOAD_MIN_OHM)],
                      rk=[(0.0, 0.01)], params={"F_QM2_SHORT": 1}, t_max_s=20e-9)
    t, i = tr["time"], tr["i(v_im)"]
    over = np.nonzero(i > fr.VALUES["I_TRIP"])[0]
    assert len(over), "the fault current never reached the trip level: test not meaningful"
    k0 = over[0]
    off = np.nonzero(i[k0:] < 1e-3)[0]
    assert len(off), "the output never went off"
    t_off_us = (t[k0 + off[0]] - t[k0]) * 1e6
    assert t_off_us <= T_TRIP_OFF_MAX_US, t_off_us
    # latched: stays off, tells the MCU, with the enable pin still high
    assert _max_in(tr, t[k0 + off[0]] + 20e-6, 0.003) < 10e-6
    assert float(tr["v(tripo)"][-1]) > 3.0


def test_comparator_latch_holds_until_enable_drops(spice_dir):
    """An over-current (injected: the reference driven to 130 % of full scale for 3 ms, as a
    faulted reference would, into 300 Ω: electrodes nearly touching) trips it; the
    command then returns to a normal 10 mA but the latch keeps the output off until the
    enable input goes low and high again."""
    ten = 10000.0 / fr.derived()["ref_fs_ua"]
    tr = fr.run_bench(spice_dir, "latch", t_stop_s=0.014,
                      ref=fr.steps(ten, [(0.002, 1.3), (0.005, ten)]),
                      en=fr.steps(1.0, [(0.008, 0.0), (0.009, 1.0)]),
                      rs=[(0.0, 300.0)], rk=[(0.0, 0.01)], t_max_s=1e-6)
    # 10 mA x mirror gain; the Early effect adds up to ~2 % at this low electrode voltage
    i_10 = _at(tr, 0.0019) * 1e3
    assert i_10 == pytest.approx(10.0 * fr.derived()["mirror_gain"], rel=0.03)
    assert _at(tr, 0.005, "v(tripo)") > 3.0                # tripped during the over-current
    assert _max_in(tr, 0.002, 0.005) < fr.VALUES["I_TRIP"] * 1.1   # and cut near 35 mA
    assert _max_in(tr, 0.0055, 0.0079) < 10e-6            # latched off, no MCU action
    assert _at(tr, 0.0079, "v(tripo)") > 3.0
    assert _at(tr, 0.0085, "v(tripo)") < 0.3              # enable low clears it
    assert _at(tr, 0.0135) * 1e3 == pytest.approx(i_10, rel=0.005)   # and it runs again


# ---- 4. MCU in reset / pins floating -----------------------------------------------------------
@pytest.mark.parametrize("case", ["reset_all_floating", "en_floating_ref_full",
                                  "ref_floating_en_high"])
def test_output_with_mcu_in_reset_or_pins_floating(spice_dir, case):
    """Hands in at the lowest body resistance. A floating pin leaks 1 µA (RP2040 pad
    maximum) the worst way. Off = < 1 µA; a floating reference with enable high may
    pass the pull-down's 10 mV (< 0.1 mA, under the firmware's 150 µA open threshold)."""
    kw = dict(rs=[(0.0, fr.R_LOAD_MIN_OHM)], rk=[(0.0, 100.0)])
    if case == "reset_all_floating":
        tr = fr.run_bench(spice_dir, case, t_stop_s=0.02, en_float=True, pwm_float=True, **kw)
        limit = 1e-6
    elif case == "en_floating_ref_full":
        tr = fr.run_bench(spice_dir, case, t_stop_s=0.02, en_float=True,
                          ref=[(0.0, 1.0)], **kw)
        limit = 1e-6
    else:
        tr = fr.run_bench(spice_dir, case, t_stop_s=0.02, pwm_float=True, **kw)
        limit = 100e-6
    assert float(np.abs(tr["i(v_im)"]).max()) < limit


def test_polarity_relay_reverses_the_load_current(spice_dir):
    """GP14 high: the relay swaps the electrodes, the current through the load reverses,
    the shunt (ground side) still reads it positive. The firmware's order: output off,
    reference 0, flip, >= 200 ms, back on (limits.DEAD_TIME_MS)."""
    t_off, t_flip = 0.010, 0.012
    t_on = t_off + limits.DEAD_TIME_MS / 1000.0
    tr = fr.run_bench(spice_dir, "polarity", t_stop_s=t_on + 0.015,
                      ref=fr.steps(FRAC_15MA, [(t_off + 1e-6, 0.0), (t_on, FRAC_15MA)]),
                      en=fr.steps(1.0, [(t_off, 0.0), (t_on, 1.0)]),
                      pol=fr.steps(0.0, [(t_flip, 1.0)]),
                      rs=[(0.0, 1000.0)], rk=[(0.0, 1500.0)], t_max_s=20e-6)
    i_before, i_after = _at(tr, t_off - 1e-4) * 1e3, _at(tr, t_on + 0.014) * 1e3
    assert i_before == pytest.approx(15.0 * fr.derived()["mirror_gain"], rel=0.02)
    assert i_after == pytest.approx(-i_before, rel=0.01)
    sense_ma = _at(tr, t_on + 0.014, "v(isense)") / fr.VALUES["R_SHUNT"] * 1e3
    assert sense_ma == pytest.approx(-i_after, rel=0.01)
    # nothing flows through the relay contacts while they move (3 ms after t_flip)
    m = (tr["time"] > t_flip) & (tr["time"] < t_flip + 0.010)
    assert float(np.abs(tr["i(v_im)"][m]).max()) < 10e-6


@pytest.mark.parametrize("duty,freq", [(0.5, 1000), (0.2, 10000), (0.8, 10000)])
def test_pulse_gate_average_matches_plant(spice_dir, duty, freq):
    """Pulsed mode: GP18 gates the reference (analog switch). 15 mA peak commanded; the
    average current over 10 gate-periods-or-more matches the plant's (gate_duty) within
    5 %, and the filtered sense channel's average equals it. The sense ripple (τ 1 ms) is
    measured: at 10 kHz it stays under 0.5 mA p-p; at 1 kHz it is ~3.6 mA p-p (not
    asserted: docs/frontend.md §5 lists it as an open problem for pulsed mode)."""
    tr = fr.run_bench(spice_dir, "gate_%g_%d" % (duty, freq), t_stop_s=0.03,
                      ref=[(0.0, FRAC_15MA)], gate=(duty, freq),
                      rs=[(0.0, 1000.0)], rk=[(0.0, 1500.0)], t_max_s=0.5e-6)
    t = tr["time"]
    m = (t >= 0.02) & (t <= 0.03)
    span = float(t[m][-1] - t[m][0])
    i_avg_ma = float(np.trapezoid(tr["i(v_im)"][m], t[m])) / span * 1e3
    sense = tr["v(isense)"][m] / fr.VALUES["R_SHUNT"] * 1e3
    sense_avg_ma = float(np.trapezoid(sense, t[m])) / span
    p = Plant(**fr.plant_kwargs(1000.0, 1500.0, 0.5))
    p.enable, p.contact, p.ref_code = 1, True, int(round(FRAC_15MA * 65535))
    p.gate_duty, p.gate_hz = duty, freq
    for _ in range(60):
        p.step(0.0005)
    plant_ma = p.true_ua / 1000.0
    assert abs(i_avg_ma - plant_ma) <= max(REL_TOL * i_avg_ma, ABS_TOL_MA), (i_avg_ma, plant_ma)
    assert sense_avg_ma == pytest.approx(i_avg_ma, rel=0.01)
    if freq >= 10000:
        assert float(sense.max() - sense.min()) < 0.5


# ---- 5. single faults ------------------------------------------------------------------------
FAULTS = {
    "F_Q1_SHORT": "pass MOSFET drain-source short",
    "F_QM2_SHORT": "mirror output PNP collector-emitter short",
    "F_RSET_SHORT": "R_SET short",
    "F_OPA_HIGH": "op-amp output stuck high",
    "F_SHUNT_SHORT": "shunt short (sense and comparator blind)",
    "F_QEN_SHORT": "enable MOSFET short",
    "RAIL_60V": "compliance supply at 60 V (boost feedback fault), source healthy",
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_single_fault_current_below_passive_bound(spice_dir, fault):
    """Each fault alone, with the comparator removed and the firmware's reference at full
    scale (worst case), the rail at its +3 % tolerance and the load at its minimum
    (640 Ω body, skin shorted): the current stays under the derived passive bound, which
    is under the stated 40 mA."""
    d = fr.derived()
    params = {"F_CMP_OFF": 1}
    rail = d["rail_max_v"]
    if fault == "RAIL_60V":
        rail = 60.0
    else:
        params[fault] = 1
    tr = fr.run_bench(spice_dir, "fault_" + fault, t_stop_s=0.01, ref=[(0.0, 1.0)],
                      rs=[(0.0, fr.R_LOAD_MIN_OHM)], rk=[(0.0, 0.01)],
                      rail=[(0.0, rail)], params=params)
    i_max_ma = float(tr["i(v_im)"].max()) * 1e3
    assert i_max_ma <= d["i_fault_max_ma"] + 0.01, (fault, i_max_ma)
    assert i_max_ma <= fr.I_FAULT_BOUND_MA


def test_compliance_at_the_electrode(spice_dir):
    """15 mA (hands default) into a load that needs the board's COMPLIANCE_MV (40 V) on the
    electrode: delivered within 1 % of the unloaded current."""
    i_nom_ma = 15.0 * fr.derived()["mirror_gain"]
    r = pico_board.COMPLIANCE_MV / i_nom_ma - pico_board.SHUNT_OHM - 1.2
    tr = fr.run_bench(spice_dir, "compliance", t_stop_s=0.02, ref=[(0.0, FRAC_15MA)],
                      rs=[(0.0, r)], rk=[(0.0, 0.01)])
    v_el = float(tr["v(xfe.outp)"][-1])
    i = float(tr["i(v_im)"][-1]) * 1e3
    assert v_el >= pico_board.COMPLIANCE_MV / 1000.0 * 0.99, v_el
    assert i >= i_nom_ma * 0.99, i


# ---- 6. plant vs ngspice on a set of waveforms ----------------------------------------------------
REL_TOL = 0.05      # 5 % of the ngspice current ...
ABS_TOL_MA = 0.1    # ... or 0.1 mA, whichever is larger (near 0 mA: the divider's 40 µA,
#                     about 10 ADC steps of 9.8 µA)
V_REL_TOL, V_ABS_TOL = 0.05, 1.0   # electrode voltage: 5 % or 1 V


def _piecewise(initial, changes):
    def f(t):
        val = initial
        for tc, v in changes:
            if t >= tc:
                val = v
        return val
    return f


WAVEFORMS = {
    # name: (t_stop, rs initial, rs changes, rk initial, rk changes, rail (t0, t1, v0, v1))
    "hands_in": (0.04, fr.OPEN_OHM, [(0.010, 1000.0)], 1500.0, [], None),
    "hands_out": (0.04, 1000.0, [(0.010, fr.OPEN_OHM)], 1500.0, [], None),
    "load_steps": (0.06, 1000.0, [(0.010, 3000.0), (0.030, 600.0)], 1500.0,
                   [(0.045, 3000.0)], None),
    "rail_sag": (0.06, 1500.0, [], 1000.0, [], (0.010, 0.030, 50.0, 36.0)),
}


@pytest.mark.parametrize("name", sorted(WAVEFORMS))
def test_plant_matches_ngspice(spice_dir, name):
    """15 mA commanded, skin 0.5 µF, events at the listed times; the plant (parameters from
    frontend_ref.plant_kwargs) is stepped at 0.1 ms and compared at every step end."""
    t_stop, rs0, rs_ch, rk0, rk_ch, sag = WAVEFORMS[name]
    ck = 0.5
    v_rail = fr.VALUES["V_RAIL"]
    if sag:
        ta, tb, va, vb = sag
        rail_pts = [(0.0, va), (ta, va), (tb, vb)]

        def rail_f(t):
            return va if t < ta else vb if t > tb else va + (t - ta) / (tb - ta) * (vb - va)
    else:
        rail_pts = [(0.0, v_rail)]

        def rail_f(t):
            return v_rail
    tr = fr.run_bench(spice_dir, "wave_" + name, t_stop_s=t_stop, ref=[(0.0, FRAC_15MA)],
                      rs=fr.steps(rs0, rs_ch), rk=fr.steps(rk0, rk_ch), ck_uf=ck,
                      rail=rail_pts, t_max_s=5e-6)
    rs_f, rk_f = _piecewise(rs0, rs_ch), _piecewise(rk0, rk_ch)
    i_set = 15000.0 * fr.derived()["mirror_gain"]
    p = Plant(**fr.plant_kwargs(rs0, rk0, ck, i_set_ua=i_set, rail_v=rail_f(0.0)))
    p.enable, p.ref_code = 1, int(round(FRAC_15MA * 65535))
    p.contact = rs0 < fr.OPEN_OHM
    dt = 1e-4
    for _ in range(500):      # the testbench starts from its operating point: settle
        p.step(dt)
    worst_i = worst_v = 0.0
    for k in range(1, int(round(t_stop / dt)) + 1):
        tm = (k - 0.5) * dt
        kw = fr.plant_kwargs(rs_f(tm), rk_f(tm), ck, i_set_ua=i_set, rail_v=rail_f(tm))
        p.water_ohm, p.skin_ohm, p.compliance_v = kw["water_ohm"], kw["skin_ohm"], kw["compliance_v"]
        p.contact = rs_f(tm) < fr.OPEN_OHM
        p.step(dt)
        t = k * dt
        i_sp = _at(tr, t) * 1e3
        i_pl = p._i / 1000.0
        err = abs(i_sp - i_pl) / max(REL_TOL * abs(i_sp), ABS_TOL_MA)
        v_sp = _at(tr, t, "v(xfe.outp)")
        v_pl = fr.electrode_v(p)
        err_v = abs(v_sp - v_pl) / max(V_REL_TOL * abs(v_sp), V_ABS_TOL)
        worst_i, worst_v = max(worst_i, err), max(worst_v, err_v)
    # 1.0 = exactly at the bound
    assert worst_i <= 1.0, (name, worst_i)
    assert worst_v <= 1.0, (name, worst_v)


# ---- 7. the circuit is the Pico board file's (no simulator needed) ------------------------------------
def test_circuit_values_are_the_pico_boards():
    """The netlist's values are boards/pico.py's physical constants, and the derived
    plant parameters follow from them."""
    v = fr.VALUES
    assert v["R_F1"] == v["R_F2"] == pico_board.RC_R_OHM
    assert v["C_F1"] == v["C_F2"] == pytest.approx(pico_board.RC_C_NF * 1e-9)
    assert v["R_SET"] == pico_board.SOURCE_R_OHM
    assert v["R_SHUNT"] == pico_board.SHUNT_OHM
    assert v["V_LOGIC"] * 1000 == pico_board.PWM_HIGH_MV == pico_board.ADC_REF_MV
    ratio = (v["R_DIV_TOP"] + v["R_DIV_BOT"]) / v["R_DIV_BOT"]
    assert ratio == pytest.approx(pico_board.DIVIDER_RATIO, rel=0.005)
    assert v["I_TRIP"] * 1e6 == pytest.approx(pico_board.HW_TRIP_UA)
    d = fr.derived()
    assert d["ref_fs_ua"] == pytest.approx(pico_board.REF_FS_UA)
    assert d["ref_tau_ms"] == pytest.approx(3 * pico_board.RC_R_OHM * pico_board.RC_C_NF * 1e-6)
    assert sum(d["ref_poles_ms"]) == pytest.approx(d["ref_tau_ms"])
    assert d["ref_poles_ms"][0] * d["ref_poles_ms"][1] == pytest.approx(
        (pico_board.RC_R_OHM * pico_board.RC_C_NF * 1e-6) ** 2)
    # the rail stays a safety extra-low voltage and above the board's compliance
    assert pico_board.COMPLIANCE_MV / 1000.0 < v["V_RAIL"] and d["rail_max_v"] < 60.0
    assert d["i_fault_max_ma"] <= fr.I_FAULT_BOUND_MA
    assert fr.I_FAULT_BOUND_MA * 1000 > pico_board.HW_TRIP_UA > pico_board.REF_FS_UA
