"""The reference front-end (hardware/frontend/) as numbers, plant parameters and testbenches.

CPython host only. Three jobs:

* `VALUES`: every component value, read from hardware/frontend/values.inc (the one copy;
  each line there names its source). Units: SI (ohm, F, V, A, s).
* `derived()` / `plant_kwargs()`: the plant model's parameters (simulation/plant.py)
  derived from those values; each derivation is written next to its formula and in
  docs/frontend.md §5. host_tests/test_frontend_spice.py holds them against ngspice.
* `bench()`: an ngspice testbench around the FRONTEND subcircuit (hardware/frontend/
  frontend.lib): MCU pins, compliance supply and a patient load, all as step-wise
  (piecewise-linear) stimuli; `run_bench()` simulates it (simulation/ngspice_run.py).
"""

import math
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HW_DIR = os.path.join(ROOT, "hardware", "frontend")
VALUES_FILE = os.path.join(HW_DIR, "values.inc")
LIB_FILE = os.path.join(HW_DIR, "frontend.lib")

_SUFFIX = {"meg": 1e6, "g": 1e9, "t": 1e12, "k": 1e3, "m": 1e-3, "u": 1e-6,
           "n": 1e-9, "p": 1e-12, "f": 1e-15}
_PARAM = re.compile(r"^\.param\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([-+0-9.eE]+)([a-zA-Z]*)")


def spice_number(mantissa, suffix=""):
    """'3.3', 'k' -> 3300.0 (SPICE scale suffixes; 'meg' before 'm'; case-insensitive)."""
    v = float(mantissa)
    s = suffix.lower()
    for k in ("meg", "g", "t", "k", "m", "u", "n", "p", "f"):
        if s.startswith(k):
            return v * _SUFFIX[k]
    return v


def read_values(path=VALUES_FILE):
    """{NAME: value (SI units)} from the `.param NAME=value ; comment` lines of `path`."""
    out = {}
    with open(path) as f:
        for line in f:
            m = _PARAM.match(line.strip())
            if m:
                out[m.group(1)] = spice_number(m.group(2), m.group(3))
    return out


VALUES = read_values()


# ---- derivations: circuit values -> plant parameters --------------------------------
def derived(values=None):
    """Quantities derived from the component values (dict; units in each key's name).

    ref_tau_ms     Elmore delay (first moment) of the unbuffered two-section RC ladder:
                   R1*C1 + R1*C2 + R2*C2 = 3RC = 0.99 ms; a one-pole model with this
                   time constant has the same area between step and response.
    ref_poles_ms   the ladder's two exact time constants (roots of s^2 RC^2... for equal
                   sections: tau = RC / 0.382 and RC / 2.618): 0.86 and 0.13 ms.
    ref_fs_ua      source current at full-scale PWM: V_LOGIC / R_SET (boards/pico.py).
    mirror_gain    1:1 PNP mirror, I_out / I_set = 1 / (1 + 2 / beta) (two base
                   currents taken from the set current); -1.3 % at beta 150. The Early
                   effect of the output transistor is left out: measured in ngspice it
                   adds 0 % at ~40 V on the electrode and +1.9 % at ~7 V (VAF 100 V);
                   calibration removes both.
    c_out_nf       capacitance charged to the rail on an open circuit: C_OUT + C_CABLE.
    r_series_ohm   resistance outside the load when the source is railed (mirror output
                   saturated): R_E + R_LIM + R_SHUNT + the enable MOSFET's ~1.2 ohm.
    v_sat_v        output PNP saturation voltage, hard-saturated: 0.15 V (2N5401
                   datasheet Vce(sat) <= 0.2 V at 10 mA / 1 mA).
    v_th_v         comparator threshold I_TRIP * R_SHUNT.
    rail_max_v     V_RAIL * (1 + RAIL_TOL): LT8362 feedback reference +-1.5 % plus two
                   1 % feedback resistors, rounded up to 3 %.
    i_fault_max_ma the passive bound: rail_max / (R_E + R_LIM + R_SHUNT + R_on + R_LOAD_MIN),
                   R_LOAD_MIN = 640 ohm (body hand to hand, docs/requirements.md, the plant model, low end):
                   a shorted output stage leaves only these resistances in the path.
    """
    v = VALUES if values is None else values
    r1, c1, r2, c2 = v["R_F1"], v["C_F1"], v["R_F2"], v["C_F2"]
    # poles of 1 / (a s^2 + b s + 1), a = R1C1R2C2, b = R1C1 + R1C2 + R2C2
    a = r1 * c1 * r2 * c2
    b = r1 * c1 + r1 * c2 + r2 * c2
    disc = math.sqrt(b * b - 4 * a)
    tau1 = (b + disc) / 2.0
    tau2 = (b - disc) / 2.0
    beta = v["BF_PNP"]
    r_on_en = 1.2
    r_series = v["R_E"] + v["R_LIM"] + v["R_SHUNT"] + r_on_en
    return {
        "ref_tau_ms": b * 1e3,
        "ref_poles_ms": (tau1 * 1e3, tau2 * 1e3),
        "ref_fs_ua": v["V_LOGIC"] / v["R_SET"] * 1e6,
        "mirror_gain": 1.0 / (1.0 + 2.0 / beta),
        "c_out_nf": (v["C_OUT"] + v["C_CABLE"]) * 1e9,
        "r_series_ohm": r_series,
        "r_on_en_ohm": r_on_en,
        "v_sat_v": 0.15,
        "v_th_v": v["I_TRIP"] * v["R_SHUNT"],
        "r_load_min_ohm": R_LOAD_MIN_OHM,
        "rail_max_v": v["V_RAIL"] * (1.0 + RAIL_TOL),
        "i_fault_max_ma": v["V_RAIL"] * (1.0 + RAIL_TOL) / (r_series + R_LOAD_MIN_OHM) * 1e3,
    }


R_LOAD_MIN_OHM = 640.0   # ohm, body hand to hand, low end (docs/requirements.md, the plant model)
RAIL_TOL = 0.03          # compliance supply tolerance (see derived(): rail_max_v)
I_FAULT_BOUND_MA = 40.0  # stated single-fault bound (docs/frontend.md §4)


def plant_kwargs(rs_ohm, rk_ohm, ck_uf, i_set_ua=0.0, rail_v=None, values=None):
    """Plant(**kwargs) for the circuit driving a load of water+body `rs_ohm` in series with
    skin `rk_ohm` || `ck_uf`, linear and without polarization (what the testbench has).

    The plant has one series resistance and one rail: when railed its current is
    (compliance_v - v_skin) / water_ohm. The circuit's is (V_RAIL - v_sat - I_set*R_E
    - v_skin) / (rs + r_series): the output PNP's base current (about I_set in hard
    saturation) also flows in its emitter resistor. So water_ohm carries r_series and
    compliance_v the rail less those drops. The plant's electrode voltage then includes
    R_E + R_LIM, which the divider does not see: `electrode_v()` removes it.
    """
    v = VALUES if values is None else values
    d = derived(v)
    rail = v["V_RAIL"] if rail_v is None else rail_v
    return dict(
        compliance_v=rail - d["v_sat_v"] - i_set_ua * 1e-6 * v["R_E"],
        water_ohm=rs_ohm + d["r_series_ohm"], body_ohm=0.0, skin_ohm=rk_ohm, skin_uf=ck_uf,
        offset_v=0.0, nonlinear=False, ref_fs_ua=d["ref_fs_ua"], ref_tau_ms=d["ref_tau_ms"],
        source_gain_error=d["mirror_gain"] - 1.0, c_out_nf=d["c_out_nf"],
        i_fs_ua=v["V_LOGIC"] / v["R_SHUNT"] * 1e6, v_fs_mv=v["V_LOGIC"] * 20000.0)


def electrode_v(plant, values=None):
    """The divider's view (V, electrode A to ground) of a plant built by plant_kwargs."""
    v = VALUES if values is None else values
    return plant.v_load - plant._i * 1e-6 * (v["R_E"] + v["R_LIM"])


# ---- testbenches ----------------------------------------------------------------------
OPEN_OHM = 1e9    # a load resistance that stands for an open circuit (hands out)


def steps(initial, changes, edge_s=1e-6):
    """PWL points: `initial` from t=0, then each (t_s, value) in `changes` reached over
    `edge_s` (a step with a 1 µs edge unless told)."""
    pts = [(0.0, initial)]
    last = initial
    for t, val in changes:
        pts.append((t, last))
        pts.append((t + edge_s, val))
        last = val
    return pts


def _pwl(name, node, points):
    body = " ".join("%.9g %.9g" % (t, v) for t, v in points)
    return "%s %s 0 PWL(%s)" % (name, node, body)


def bench(t_stop_s, ref=None, pwm=None, en=None, en_float=False, pwm_float=False, pol=0.0,
          rail=None, rs=None, rk=None, ck_uf=0.5, vpol_v=0.0, params=None, t_max_s=None,
          saves=None, gate=None):
    """An ngspice testbench (netlist text) of `t_stop_s` seconds.

    ref       PWL points (t_s, fraction of full scale 0..1): the PWM's average, applied
              to the filter as a voltage V_LOGIC * fraction (ripple: use `pwm`)
    pwm       (duty 0..1, freq_hz, t_on_s): a real PWM pin from t_on_s (0 before)
    en        PWL points (t_s, 0/1) for GP15 (driven through 50 ohm)
    en_float / pwm_float   leave the pin floating, with 1 µA pad leakage out of it
              (RP2040 datasheet: input leakage max 1 µA) as the worst case
    pol       GP14 level 0/1 (or PWL points)
    rail      PWL points (t_s, volts) of the compliance supply (V_RAIL if None)
    rs, rk    PWL points (t_s, ohms): water+body in series, skin in parallel with ck_uf
    params    overrides of values.inc (e.g. {"F_Q1_SHORT": 1})
    gate      (duty 0..1, freq_hz): the pulse gate GP18 as a PWM; None = floating (its
              pull-up: DC, as from reset)
    """
    v = dict(VALUES)
    v.update(params or {})
    lines = ["* testbench written by simulation/frontend_ref.py"]
    lines += [".param %s=%.9g" % (k, val) for k, val in sorted(v.items())]
    lines.append(".include %s" % LIB_FILE)
    lines.append("XFE PWM EN POL TRIPO ISENSE VSENSE ELA ELB RAIL V33 GATE FRONTEND")
    lines.append("V_33 V33 0 DC %.9g" % v["V_LOGIC"])
    rail = rail or [(0.0, v["V_RAIL"])]
    lines.append(_pwl("V_RAIL", "RAIL", rail))
    if pwm_float:
        lines.append("I_PWMLK PWM 0 DC 1u")
    elif pwm is not None:
        duty, freq, t_on = pwm
        per = 1.0 / freq
        lines.append("V_PWM PWM 0 PULSE(0 %.9g %.9g 10n 10n %.9g %.9g)"
                     % (v["V_LOGIC"], t_on, duty * per, per))
    else:
        pts = [(t, f * v["V_LOGIC"]) for t, f in (ref or [(0.0, 0.0)])]
        lines.append(_pwl("V_PWM", "PWM", pts))
    if en_float:
        lines.append("I_ENLK 0 EN DC 1u")       # 1 µA pushed into the pin: worst case
    else:
        pts = [(t, x * v["V_LOGIC"]) for t, x in (en or [(0.0, 1.0)])]
        lines.append(_pwl("V_EN", "ENP", pts))
        lines.append("R_ENPIN ENP EN 50")
    if gate is not None:
        g_duty, g_freq = gate
        g_per = 1.0 / g_freq
        lines.append("V_GATE GATE 0 PULSE(0 %.9g 0 20n 20n %.9g %.9g)"
                     % (v["V_LOGIC"], g_duty * g_per - 20e-9, g_per))
    pol_pts = pol if isinstance(pol, list) else [(0.0, pol)]
    lines.append(_pwl("V_POL", "POL", [(t, x * v["V_LOGIC"]) for t, x in pol_pts]))
    # patient load: electrode A - [water+body] - [skin R || C] - [polarization] - B
    lines.append("V_IM ELA LA0 DC 0")
    lines.append(_pwl("V_RSCTL", "RSCTL", rs or [(0.0, 1000.0)]))
    lines.append(_pwl("V_RKCTL", "RKCTL", rk or [(0.0, 1500.0)]))
    lines.append("B_RS LA0 LA I = V(LA0, LA) / V(RSCTL)")
    lines.append("B_RK LA LB I = V(LA, LB) / V(RKCTL)")
    lines.append("C_K LA LB %.9g" % (ck_uf * 1e-6))
    lines.append("R_GMIN LA0 LB 1e10")
    lines.append("R_GMIN2 LA LB 1e10")
    lines.append("V_POLZ LB ELB DC %.9g" % vpol_v)
    t_max = t_max_s or min(t_stop_s / 2000.0, 20e-6)
    # the latch is bistable: power comes up with it clear (the comparator's RC and the
    # enable being low at reset clear it on a board); without this the operating point
    # may pick the latched state
    lines.append(".ic v(xfe.lat)=0")
    lines.append(".options reltol=1e-4 abstol=1e-9 vntol=1e-5 method=gear")
    lines.append(".tran %.9g %.9g 0 %.9g" % (t_max, t_stop_s, t_max))
    base = ["v(xfe.vref)", "i(v_im)", "v(xfe.outp)", "v(xfe.out)", "v(vsense)",
            "v(isense)", "v(tripo)", "v(xfe.lat)", "v(xfe.gen)", "v(xfe.ret)", "v(xfe.sht)", "v(ela)", "v(elb)"]
    lines.append(".save " + " ".join(base + list(saves or [])))
    lines.append(".end")
    return "\n".join(lines) + "\n"


def run_bench(workdir, name, **kw):
    """bench(**kw), simulated: {trace: numpy array} (see simulation/ngspice_run.py).
    The patient current is 'i(v_im)' (A, electrode A into the load)."""
    import ngspice_run
    return ngspice_run.run(bench(**kw), workdir, name=name)
