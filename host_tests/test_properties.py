"""Property tests: random loads, contact events and faults; invariants on the true current.

Examples are derandomized (reproducible in CI); each is also reproducible from its
plant seed. A failing example prints the scenario, which `python -m tools.simulate`
replays.
"""

import json

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

import safety
from harness import check_all, check_off_after_trip, profile_of, run

# No shrink phase: a failing example is printed whole (note) and replays as a
# scenario file; shrinking a 24,000-step simulation takes minutes.
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow])


def _num(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 3))


profiles = st.fixed_dictionaries({
    "target_ma": _num(2, 25),
    "duration_s": st.just(300),
    "ramp_up_s": st.integers(10, 60),
    "ramp_down_s": st.integers(5, 30),
    "reverse_polarity": st.booleans(),
})

plants = st.fixed_dictionaries({
    "compliance_v": _num(30, 60),
    "water_ohm": _num(10, 500),
    "body_ohm": _num(640, 770),
    "skin_ohm": _num(300, 9000),
    "skin_uf": _num(0.05, 5),
    "offset_v": _num(1.2, 3.0),
    "source_gain_error": _num(-0.05, 0.05),
    "source_offset_ua": _num(-100, 100),
    "adc_noise_lsb": _num(0, 3),
    "adc_dnl": st.booleans(),
})


def _benign_event(t):
    return st.one_of(
        st.builds(lambda c: {"t_s": t, "contact": c}, st.booleans()),
        st.builds(lambda r, o: {"t_s": t, "skin_ohm": r, "over_s": o}, _num(300, 9000), _num(0, 60)),
        st.builds(lambda r: {"t_s": t, "water_ohm": r}, _num(10, 500)),
        st.builds(lambda a: {"t_s": t, "lift_area": a, "over_s": 1}, _num(0.1, 1.0)),
        st.builds(lambda v, o: {"t_s": t, "compliance_v": v, "over_s": o}, _num(30, 60), _num(0, 5)),
        st.just({"t_s": t, "command": "stop"}),
    )


def _events(event_for, n_max):
    times = st.lists(_num(0.1, 110), max_size=n_max).map(sorted)
    return times.flatmap(lambda ts: st.tuples(*[event_for(t) for t in ts]).map(list))


@st.composite
def scenarios(draw, event_for=_benign_event, n_max=8):
    events = [{"t_s": draw(_num(0, 5)), "contact": True}] + draw(_events(event_for, n_max))
    return {"profile": draw(profiles), "plant": draw(plants), "events": events, "end_s": 120,
            "seed": draw(st.integers(1, 2 ** 20)),
            "clock_start_us": draw(st.sampled_from([0, (1 << 30) - 50 * 1000000]))}


@SETTINGS
@given(scenarios())
def test_invariants_hold_over_random_loads_and_contact_events(s):
    note(json.dumps(s))
    tr = run(s)
    check_all(tr, profile_of(s))
    # the plant itself stays physical: no electrode voltage above the compliance rail
    # (plus ADC noise), whatever the events did to the load
    top = max(s["plant"]["compliance_v"], max([e.get("compliance_v", 0) for e in s["events"]]))
    assert max(tr.col("electrode_mv")) <= top * 1000 + 200


@SETTINGS
@given(scenarios(event_for=lambda t: st.builds(
    lambda c: {"t_s": t, "contact": c}, st.booleans()), n_max=6))
def test_benign_sessions_never_fault(s):
    """Contact in and out on realistic loads must pause and resume, never trip."""
    note(json.dumps(s))
    tr = run(s)
    assert tr.bench.ctrl.safety.fault == 0, "false trip: %s" % safety.NAMES[tr.bench.ctrl.safety.fault]


_FAULTS = ["adc_stuck_low", "adc_stuck_high", "v_stuck_low", "v_stuck_high", "enable_stuck_on",
           "source_dead", "source_runaway"]


def _fault_event(t):
    return st.one_of(
        _benign_event(t),
        st.builds(lambda f: {"t_s": t, "fault": f}, st.sampled_from(_FAULTS)),
        st.builds(lambda b: {"t_s": t, "short": b}, st.booleans()),
        st.builds(lambda o: {"t_s": t, "source_offset_ua": o}, _num(-3000, 15000)),
    )


@SETTINGS
@given(scenarios(event_for=_fault_event, n_max=6))
def test_output_off_within_one_period_of_any_trip_condition(s):
    note(json.dumps(s))
    tr = run(s)
    check_off_after_trip(tr, profile_of(s))
