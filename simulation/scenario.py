"""Scenarios: a validated description of a session and its events, run in virtual time.

Runs under CPython and MicroPython. `validate(dict)` refuses unknown keys, wrong types
and impossible values with a `ScenarioError` naming the key; `Bench` couples the
firmware's controller to the plant through the `sim` board on a virtual clock;
`run(scenario, on_row)` plays the events and hands one trace row per control step to
`on_row`. Nothing here sleeps.
"""

import limits
import session as sm
import sim as board
from calibration import Calibration
from controller import Controller
from hal import Hal
from plant import Plant
import profiles
from profiles import Profile
from ticks import ticks_add

TRACE_COLUMNS = ("t_s", "state", "target_ua", "measured_ua", "true_ua", "enabled",
                 "peak_ua", "electrode_mv", "true_load_ohm", "ref_code", "polarity", "limited",
                 "density_ratio")

# key -> (type(s), low, high); None bounds mean unbounded
PROFILE_KEYS = {
    "target_ma": ((int, float), 1.0, limits.CEILING_UA / 1000),
    "duration_s": (int, limits.MIN_DURATION_S, limits.MAX_DURATION_S),
    "ramp_up_s": (int, limits.MIN_RAMP_MS // 1000, 120),
    "ramp_down_s": (int, 5, 60),
    "reverse_polarity": (bool, None, None),
    "mode": (str, None, None),                 # "dc" (default), "pulsed", "dose"
    "pulse_hz": (int, limits.PULSE_HZ_MIN, limits.PULSE_HZ_MAX),
    "duty_pct": (int, limits.DUTY_MIN_PCT, limits.DUTY_MAX_PCT),
    "dose_uamin": (int, 1000, limits.DOSE_CAP_UAMIN),
}
SCENARIO_MODES = ("dc", "pulsed", "dose")      # the calibration hold is a service mode
PLANT_KEYS = {
    "compliance_v": ((int, float), 25.0, 100.0),
    "water_ohm": ((int, float), 0.0, 5000.0),
    "body_ohm": ((int, float), 0.0, 2000.0),
    "skin_ohm": ((int, float), 1.0, 100000.0),
    "skin_uf": ((int, float), 0.001, 100.0),
    "offset_v": ((int, float), 0.0, 5.0),
    "nonlinear": (bool, None, None),
    "skin_drift": ((int, float), 0.0, 0.9),
    "drift_tau_s": ((int, float), 1.0, 3600.0),
    "ref_tau_ms": ((int, float), 0.01, 50.0),
    "source_gain_error": ((int, float), -0.2, 0.2),
    "source_offset_ua": ((int, float), -1000.0, 1000.0),
    "adc_bits": (int, 8, 16),
    "adc_noise_lsb": ((int, float), 0.0, 50.0),
    "adc_i_gain_error": ((int, float), -0.2, 0.2),
    "adc_i_offset_lsb": ((int, float), -100.0, 100.0),
    "adc_v_gain_error": ((int, float), -0.2, 0.2),
    "adc_v_offset_lsb": ((int, float), -100.0, 100.0),
    "adc_dnl": (bool, None, None),
    "c_out_nf": ((int, float), 0.0, 1000.0),
}
# wider ranges where an event injects a hardware fault rather than sets up a plant
EVENT_RANGES = {"source_offset_ua": ((int, float), -20000.0, 20000.0),
                "source_gain_error": ((int, float), -0.9, 2.0)}
# lift_area above 1: the hand deeper than usual (hands shifting, issue 13's benign list)
LIFT_AREA_MAX = 1.25
# event keys that ramp a plant parameter (with optional "over_s")
RAMPED = ("skin_ohm", "water_ohm", "body_ohm", "compliance_v", "lift_area", "source_gain_error",
          "source_offset_ua")
FAULTS = ("adc_stuck_low", "adc_stuck_high", "v_stuck_low", "v_stuck_high",
          "enable_stuck_on", "source_dead", "source_runaway", "clear")
COMMANDS = ("start", "stop", "pause", "resume", "reset")
TOP_KEYS = ("profile", "plant", "events", "end_s", "start_s", "seed", "clock_start_us")
# what an event may hold (t_s, over_s and one action)
EVENT_KEYS = ("t_s", "over_s", "contact", "short", "fault", "command") + RAMPED


class ScenarioError(ValueError):
    def __init__(self, key, message):
        super().__init__(key + ": " + message)
        self.key = key


def _typed(key, value, spec):
    types, lo, hi = spec
    expected = "true or false" if types is bool else "an integer" if types is int \
        else "a string" if types is str else "a number"
    if isinstance(value, bool) and types is not bool:
        raise ScenarioError(key, "must be %s, not true/false" % expected)
    if not isinstance(value, types):
        raise ScenarioError(key, "must be %s" % expected)
    if value != value:
        raise ScenarioError(key, "must be %s, not NaN" % expected)
    if lo is not None and not (lo <= value <= hi):
        raise ScenarioError(key, "%s outside %s..%s" % (value, lo, hi))
    return value


def _unknown(key, name, known):
    """The error for an unknown key, naming the nearest known one where one is close
    (difflib under CPython; MicroPython has none and just names the key)."""
    try:
        import difflib
        near = difflib.get_close_matches(name, sorted(known), 1, 0.75)
    except ImportError:
        near = []
    return ScenarioError(key, "unknown key" + (" (did you mean %s?)" % near[0] if near else ""))


def validate(scn):
    """Return a normalised copy of scenario `scn` or raise ScenarioError."""
    if not isinstance(scn, dict):
        raise ScenarioError("scenario", "must be a JSON object")
    for k in scn:
        if k not in TOP_KEYS:
            raise _unknown(k, k, TOP_KEYS)
    prof = scn.get("profile", {})
    if not isinstance(prof, dict):
        raise ScenarioError("profile", "must be an object")
    for k in prof:
        if k not in PROFILE_KEYS:
            raise _unknown("profile." + k, k, PROFILE_KEYS)
        _typed("profile." + k, prof[k], PROFILE_KEYS[k])
    plant = scn.get("plant", {})
    if not isinstance(plant, dict):
        raise ScenarioError("plant", "must be an object")
    for k in plant:
        if k not in PLANT_KEYS:
            raise _unknown("plant." + k, k, PLANT_KEYS)
        _typed("plant." + k, plant[k], PLANT_KEYS[k])
    end_s = _typed("end_s", scn.get("end_s", 0), ((int, float), 0.005, 7200.0)) \
        if "end_s" in scn else None
    if end_s is None:
        raise ScenarioError("end_s", "missing")
    start_s = _typed("start_s", scn.get("start_s", 0), ((int, float), 0.0, 7200.0))
    if start_s >= end_s:
        raise ScenarioError("start_s", "must be before end_s (%s)" % end_s)
    _typed("seed", scn.get("seed", 1), (int, 0, 2 ** 30))
    _typed("clock_start_us", scn.get("clock_start_us", 0), (int, 0, 2 ** 30 - 1))
    events = scn.get("events", [])
    if not isinstance(events, list):
        raise ScenarioError("events", "must be a list")
    out = []
    for n in range(len(events)):
        out.append(_event("events[%d]" % n, events[n]))
    out.sort(key=lambda e: e["t_s"])
    profile_from(prof)   # raises on an impossible profile
    res = dict(scn)
    res["events"] = out
    res["start_s"] = start_s
    return res


def _event(where, ev):
    if not isinstance(ev, dict):
        raise ScenarioError(where, "must be an object")
    if "t_s" not in ev:
        raise ScenarioError(where + ".t_s", "missing")
    _typed(where + ".t_s", ev["t_s"], ((int, float), 0.0, 7200.0))
    acts = 0
    for k in ev:
        key = where + "." + k
        v = ev[k]
        if k == "t_s":
            continue
        if k == "over_s":
            _typed(key, v, ((int, float), 0.0, 600.0))
            continue
        acts += 1
        if k == "contact" or k == "short":
            _typed(key, v, (bool, None, None))
        elif k == "lift_area":
            _typed(key, v, ((int, float), 0.01, LIFT_AREA_MAX))
        elif k in RAMPED:
            _typed(key, v, EVENT_RANGES.get(k) or PLANT_KEYS[k])
        elif k == "fault":
            if v not in FAULTS:
                raise ScenarioError(key, "unknown fault (one of %s)" % ", ".join(FAULTS))
        elif k == "command":
            if v not in COMMANDS:
                raise ScenarioError(key, "unknown command (one of %s)" % ", ".join(COMMANDS))
        else:
            raise _unknown(key, k, EVENT_KEYS)
    if acts != 1:
        raise ScenarioError(where, "needs exactly one action besides t_s/over_s")
    return ev


def profile_from(prof):
    mode = prof.get("mode", "dc")
    if mode not in SCENARIO_MODES:
        raise ScenarioError("profile.mode", "unknown mode %r (one of %s)" % (
            mode, ", ".join(SCENARIO_MODES)))
    pulsed = mode == "pulsed"
    if pulsed and ("pulse_hz" not in prof or "duty_pct" not in prof):
        raise ScenarioError("profile", "mode pulsed needs pulse_hz and duty_pct")
    for k in ("pulse_hz", "duty_pct"):
        if k in prof and not pulsed:
            raise ScenarioError("profile." + k, "only with mode pulsed")
    if mode == "dose" and "dose_uamin" not in prof:
        raise ScenarioError("profile", "mode dose needs dose_uamin")
    if "dose_uamin" in prof and mode != "dose":
        raise ScenarioError("profile.dose_uamin", "only with mode dose")
    p = Profile(
        target_ua=int(round(prof.get("target_ma", 15) * 1000)),
        duration_s=prof.get("duration_s", 600),
        ramp_up_s=prof.get("ramp_up_s", 30),
        ramp_down_s=prof.get("ramp_down_s", 15),
        reverse=prof.get("reverse_polarity", False),
        mode=profiles.MODE_NAMES.index(mode),
        pulse_hz=prof.get("pulse_hz", 0),
        duty_pct=prof.get("duty_pct", 100),
        dose_uamin=prof.get("dose_uamin", 0))
    try:
        return p.validate()
    except ValueError as e:
        raise ScenarioError("profile", str(e))


class Bench:
    """Firmware controller + sim board + plant on a virtual clock."""

    def __init__(self, plant=None, clock_start_us=0, cal=None, **plant_args):
        hw = board.build(plant, **plant_args)
        self.plant = hw.plant
        self.hw = hw
        self.hal = Hal(hw, board, cal or Calibration())
        self.ctrl = Controller(self.hal, board)
        self.period_us = board.CONTROL_PERIOD_US
        self.dt_s = self.period_us / 1000000
        self.now_us = clock_start_us
        self.k = 0

    def step(self):
        """One control period: the firmware's tick, then the plant under its output."""
        self.ctrl.tick(self.now_us)
        self.plant.step(self.dt_s)
        self.now_us = ticks_add(self.now_us, self.period_us)
        self.k += 1


class _Ramp:
    def __init__(self, name, start, end, k0, k1):
        self.name = name
        self.start = start
        self.end = end
        self.k0 = k0
        self.k1 = k1


def run(scn, on_row=None, bench=None):
    """Play a validated scenario; call on_row(tuple in TRACE_COLUMNS order) each step.

    Returns the Bench (its controller and plant hold the final state).
    """
    plant_args = dict(scn.get("plant", {}))
    b = bench or Bench(seed=scn.get("seed", 1), clock_start_us=scn.get("clock_start_us", 0),
                       **plant_args)
    p = b.plant
    ctrl = b.ctrl
    profile = profile_from(scn.get("profile", {}))
    per_s = 1000000 // b.period_us
    events = scn["events"]
    n_ev = len(events)
    e = 0
    ramps = []
    start_k = int(scn.get("start_s", 0) * per_s + 0.5)
    end_k = int(scn["end_s"] * per_s + 0.5)
    names = sm.NAMES
    p.density_ref_ua = float(profile.target_ua)    # the density is relative to the target
    for k in range(end_k):
        if k == start_k:
            _start(ctrl, profile)
        while e < n_ev and events[e]["t_s"] * per_s <= k + 1e-9:
            _apply(events[e], b, profile, ramps, k, per_s)
            e += 1
        if ramps:
            for r in ramps:
                f = (k - r.k0) / (r.k1 - r.k0) if r.k1 > r.k0 else 1.0
                if f >= 1.0:
                    f = 1.0
                setattr(p, r.name, r.start + (r.end - r.start) * f)
            ramps[:] = [r for r in ramps if k < r.k1]
        b.step()
        if on_row is not None:
            on_row((k / per_s, names[ctrl.session.state], ctrl.session.sp_ua if ctrl.hal.enabled else 0,
                    ctrl.i_ua, p.true_ua, 1 if ctrl.hal.enabled else 0, p.peak_ua, ctrl.v_mv,
                    _load_ohm(p), ctrl.hal.ref_code, p.polarity, 1 if p.limited else 0,
                    p.density_ratio))
    return b


def _load_ohm(p):
    if p.short:
        return 1.0
    if not p.contact:
        return -1.0
    return p.water_ohm + p.body_ohm + p.skin_now(p._i)


def _apply(ev, b, profile, ramps, k, per_s):
    p = b.plant
    for key in ev:
        v = ev[key]
        if key == "t_s" or key == "over_s":
            continue
        if key == "contact":
            p.contact = v
        elif key == "short":
            p.short = v
        elif key in RAMPED:
            ramps[:] = [r for r in ramps if r.name != key]   # a new value replaces a ramp
            over = ev.get("over_s", 1.0 if key == "lift_area" else 0.0)
            n = int(over * per_s + 0.5)
            if n <= 0:
                setattr(p, key, v)
            else:
                ramps.append(_Ramp(key, getattr(p, key), v, k, k + n))
        elif key == "fault":
            if v == "clear":
                p.faults = {}
            else:
                p.faults[v] = True
        elif key == "command":
            if v == "start":
                _start(b.ctrl, profile)
            elif v == "stop":
                b.ctrl.stop()
            elif v == "pause":
                b.ctrl.pause()
            elif v == "resume":
                b.ctrl.resume()
            else:
                b.ctrl.reset()


def _start(ctrl, profile):
    """Start like the user's button: ignored while a session runs or a fault is latched."""
    st = ctrl.session.state
    if (st == sm.IDLE or st == sm.DONE) and not ctrl.safety.fault:
        ctrl.start(profile)
