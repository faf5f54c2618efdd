"""Delivery, false-fault and comfort invariants (issue 12), judged on the plant's truth.

Each `measure_*` takes a trace (host_tests/harness.Trace or the soak runner's, with the
per-step columns below) and returns `(worst, message)`: `worst` is the size of the worst
violation (0 when there is none; µA, or 1 for a yes/no invariant) and `message` says
where. `check_*` asserts on it. Nothing here looks at what the firmware measured.

Per-step columns a trace must offer (`trace.col(name)` or attributes):
    t_s, state, enabled, true_ua                 (scenario.TRACE_COLUMNS)
    trace.contact[k]      hands in and no short (the plant's event state)
    trace.allowed[k]      µA the rail allows at the present load (`allowed_ua`)
    trace.goal[k]         the session's target, µA (set_target moves it)

The numbers and their sources:
- DELIVERY_PCT 97: ARCHITECTURE §4 "Delivery" / issue 12 (a).
- RECOVERY_S 1.0: our stated recovery time after a fall of what the rail allows (issue
  12 allows at most 3 s); what the soak measured is in docs/design.md.
- JOLT_UA 500 within JOLT_S 0.1: issue 12 (c).
- The comfort slope: the profile's ramp (target / ramp_up_s, ramp at least 10 s,
  limits.MIN_RAMP_MS), the slope the firmware itself ramps at.
- DELIVERY_TOL_UA 20: two LSB of the sim board's 12-bit current ADC (33 mA full scale,
  8 µA per LSB) plus the regulator's one-step dither: below it 97 % of a probe-level
  current is not a meaningful difference.
"""

import limits

DT_S = 0.005
DELIVERY_PCT = 97
DELIVERY_TOL_UA = 20
RECOVERY_S = 1.0
JOLT_UA = 500
JOLT_S = 0.1
JUDGED = ("RAMP_UP", "TREAT")         # delivery: the states that promise a current


def allowed_ua(p, guess_ua=10000.0):
    """What the rail lets through the plant's present load at steady state, µA.

    Solves I = (rail - polarization) / (R_series + R_skin(I)) (the skin's resistance
    depends on the current: plant.skin_now) by Newton's method from `guess_ua`. The
    polarization is the plant's present value (it builds up with the current, τ 5 s).
    Returns 0 with no contact; a large number for a short (nothing limits but the trip).
    """
    if p.short:
        return 1.0e9
    if not p.contact:
        return 0.0
    drive = (p.compliance_v - p._vpol) * 1.0e6       # µV
    if drive <= 0.0:
        return 0.0
    rs = p.water_ohm + p.body_ohm
    i = guess_ua if guess_ua > 1.0 else 1000.0
    for _ in range(20):
        r = rs + p.skin_now(i)
        f = i * r - drive
        h = i * 1.0e-3 + 1.0
        fp = ((i + h) * (rs + p.skin_now(i + h)) - i * r) / h
        if fp <= 0.0:
            fp = r
        step = f / fp
        i -= step
        if i < 1.0:
            i = 1.0
        if abs(step) < 0.5:
            break
    return i


class Truth:
    """Collects, per step, what the invariants need from the plant and the session.

    `add(bench)` after each `bench.step()`. What the rail allows is recomputed only when
    the load, the rail or the polarization moved (Newton from the last value)."""

    def __init__(self):
        self.contact = []
        self.allowed = []
        self.goal = []
        self._key = None
        self._a = 10000.0

    def add(self, bench):
        p = bench.plant
        key = (p.contact, p.short, p.compliance_v, p.water_ohm, p.body_ohm, p.skin_ohm,
               p.lift_area, p.r_factor, round(p._vpol, 2), round(p._contact_s, 0)
               if p.skin_drift else 0)
        if key != self._key:
            self._key = key
            a = allowed_ua(p, self._a)
            if a > 1.0 and a < 1.0e8:
                self._a = a
            self._last = a
        self.contact.append(p.contact and not p.short)
        self.allowed.append(self._last)
        self.goal.append(bench.ctrl.session.target_ua)


def _slope_per_step(profile):
    ramp_s = max(profile.ramp_up_s, limits.MIN_RAMP_MS / 1000.0)
    return profile.target_ua / ramp_s * DT_S


def measure_delivery(trace, profile):
    """(a) In RAMP_UP and TREAT the true current is at least 97 % of the comfort-limited
    ideal y, minus DELIVERY_TOL_UA:

        y = PROBE_UA when a ramp starts (RAMP_UP entered)
        y = min(goal, allowed, y + comfort slope x dt)   every step

    so a fall of what the rail allows pulls y down at once (the current cannot be above
    the rail), and a rise lets y up only at the comfort slope (a rise may take as long
    as the slope needs). Not judged: within RECOVERY_S of a fall of `allowed` by more
    than 1 %, and while the hands are out (the session pauses: a named cause).
    Returns (worst shortfall below the 97 % line in µA, message)."""
    states = trace.col("state")
    en = trace.col("enabled")
    true = trace.col("true_ua")
    allowed = trace.allowed
    goal = trace.goal
    contact = trace.contact
    slope = _slope_per_step(profile)
    rec = int(RECOVERY_S / DT_S + 0.5)
    y = None
    quiet_from = 0
    worst = 0.0
    where = ""
    prev_a = None
    for k in range(len(true)):
        s = states[k]
        a = allowed[k]
        if prev_a is not None and a < prev_a * 0.99:
            quiet_from = k + rec
        prev_a = a
        if s not in JUDGED or not en[k] or not contact[k]:
            y = None
            continue
        if y is None:
            y = float(limits.PROBE_UA)
        else:
            y += slope
        if a < y:
            y = a
        if goal[k] < y:
            y = goal[k]
        if k < quiet_from:
            continue
        short = y * DELIVERY_PCT / 100.0 - DELIVERY_TOL_UA - true[k]
        if short > worst:
            worst = short
            where = "t=%.3f s (%s): true %.0f µA < %d %% of %.0f µA (rail allows %.0f)" % (
                k * DT_S, s, true[k], DELIVERY_PCT, y, a)
    return worst, where


def measure_jolt(trace):
    """(c) No change of the true current by more than JOLT_UA within JOLT_S, while the
    output stays on with the hands in over the whole window, unless the rail forced it:

        rise:  true(t) - min(true over the window)                      > JOLT_UA
        fall:  max(min(true(s), allowed(t)) over the window) - true(t)  > JOLT_UA

    A fall down to what the rail now allows is the rail moving (load, sag, lift), not
    a jolt; a fall below it is. A pause or fault cut (output off), the hands leaving
    (contact lost) are outside the judged windows. Returns (worst excess µA, message)."""
    en = trace.col("enabled")
    true = trace.col("true_ua")
    allowed = trace.allowed
    contact = trace.contact
    w = int(JOLT_S / DT_S + 0.5)
    worst = 0.0
    where = ""
    ok_since = None
    for k in range(len(true)):
        if not en[k] or not contact[k]:
            ok_since = None
            continue
        if ok_since is None:
            ok_since = k
        k0 = k - w
        if k0 < ok_since:
            continue
        win = true[k0:k + 1]
        cur = true[k]
        rise = cur - min(win)
        a = allowed[k]
        top = max(win)
        fall = (top if top < a else a) - cur
        d = rise if rise > fall else fall
        if d > JOLT_UA and d - JOLT_UA > worst:
            worst = d - JOLT_UA
            where = "t=%.3f s: true current %s %.0f µA within %.0f ms" % (
                k * DT_S, "rose" if rise > fall else "fell", d, JOLT_S * 1000)
    return worst, where


def measure_no_fault(trace):
    """(b) A benign session never ends in FAULT: (1, message) when it latched one."""
    ctrl = trace.bench.ctrl
    if ctrl.safety.fault:
        import safety
        t = trace.first("FAULT")
        return 1, "FAULT %s at t=%.3f s" % (safety.NAMES[ctrl.safety.fault], t or -1)
    return 0, ""


def check_delivery(trace, profile):
    worst, where = measure_delivery(trace, profile)
    assert worst == 0, "delivery: " + where


def check_jolt(trace):
    worst, where = measure_jolt(trace)
    assert worst == 0, "jolt: " + where


def check_no_fault(trace):
    worst, where = measure_no_fault(trace)
    assert worst == 0, "false fault: " + where
