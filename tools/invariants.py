"""The session invariants, judged on the plant's truth: issue 12's delivery, no false
fault and no jolt, and (d) the safety invariants that existed before (docs/requirements.md, safety numbers).

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
- DELIVERY_PCT 97: docs/requirements.md "Delivery is judged on the truth" / issue 12 (a).
- RECOVERY_S 1.0: our stated recovery time after a fall of what the rail allows (issue
  12 allows at most 3 s). The soak and property runs hold it; the shortest value that
  would still hold was not measured.
- JOLT_UA 500 within JOLT_S 0.1: issue 12 (c).
- RAIL_TRANSIENT_S 0.25: limits.ENV_HOLD_US, the same physics as the safety envelope's
  hold: a rail step at compliance dips the current through the skin's capacitance and
  it comes back within ~5 tau (tau = R_skin x C <= 50 ms). Such a dip is the rail
  moving, and it is not a base a rise is judged from (issue 12 (c): the rail itself
  moving is no jolt); the fall into it, down to its bottom, is no jolt either.
- DIP_RISE_UA 50: a rise of the true current by more than this in a step ends a dip's
  fall (the regulator's noise-driven jitter is 3 µA per LSB of ADC noise, see below).
- The comfort slope: the profile's ramp (target / ramp_up_s, ramp at least 10 s,
  limits.MIN_RAMP_MS), the slope the firmware itself ramps at.
- DELIVERY_TOL_UA 20: two LSB of the sim board's 12-bit current ADC (33 mA full scale,
  8 µA per LSB) plus the regulator's one-step dither: below it 97 % of a probe-level
  current is not a meaningful difference.
- NOISE_TOL_UA_PER_LSB 12: the regulator regulates the measured current, so the ADC's
  noise reaches the true current. Measured on the sim board (a 1.09 mA dose profile,
  60 s, the true current less its 41-step moving mean): 2.85 µA standard deviation per
  LSB of noise (0.2 / 3.0 / 5.7 / 8.5 / 11.3 µA at 0 / 1 / 2 / 3 / 4 LSB), lowest
  -9.3 µA per LSB in 5,900 steps; 12 µA per LSB is 4 standard deviations. Added to
  DELIVERY_TOL_UA per LSB of the scenario's `adc_noise_lsb`.
"""

import limits
import safety

DT_S = 0.005
DELIVERY_PCT = 97
DELIVERY_TOL_UA = 20
NOISE_TOL_UA_PER_LSB = 12
RECOVERY_S = 1.0
JOLT_UA = 500
JOLT_S = 0.1
JUDGED = ("RAMP_UP", "TREAT")         # delivery: the states that promise a current
RAIL_TRANSIENT_S = limits.ENV_HOLD_US / 1e6   # after a fall of what the rail allows
DIP_RISE_UA = 50                     # a rail dip's bottom: the true current rises again


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
    ideal y, minus DELIVERY_TOL_UA and NOISE_TOL_UA_PER_LSB per LSB of ADC noise:

        y = PROBE_UA when a ramp starts (RAMP_UP entered)
        y = min(goal, allowed, y + comfort slope x dt)   every step

    so a fall of what the rail allows pulls y down at once (the current cannot be above
    the rail), and a rise lets y up only at the comfort slope (a rise may take as long
    as the slope needs). Not judged: within RECOVERY_S of a fall of `allowed` by more
    than 1 % or of the start of a ramp (the probe's 600 µA level hands over to the
    ramp's 300 µA), and while the hands are out (the session pauses: a named cause).
    Returns (worst shortfall below the 97 % line in µA, message)."""
    states = trace.col("state")
    en = trace.col("enabled")
    true = trace.col("true_ua")
    allowed = trace.allowed
    goal = trace.goal
    contact = trace.contact
    slope = _slope_per_step(profile)
    rec = int(RECOVERY_S / DT_S + 0.5)
    tol = DELIVERY_TOL_UA + NOISE_TOL_UA_PER_LSB * getattr(trace.bench.plant, "adc_noise_lsb", 0.0)
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
            if quiet_from < k + rec:
                quiet_from = k + rec     # the probe's 600 µA level hands over to the ramp
        else:
            y += slope
        if a < y:
            y = a
        if goal[k] < y:
            y = goal[k]
        if k < quiet_from:
            continue
        short = y * DELIVERY_PCT / 100.0 - tol - true[k]
        if short > worst:
            worst = short
            where = "t=%.3f s (%s): true %.0f µA < %d %% of %.0f µA (rail allows %.0f)" % (
                k * DT_S, s, true[k], DELIVERY_PCT, y, a)
    return worst, where


def rail_transients(trace):
    """[bool] per step: within RAIL_TRANSIENT_S after a fall of what the rail allows by
    more than 1 % (the current dips through the skin's capacitance there)."""
    allowed = trace.allowed
    n = int(RAIL_TRANSIENT_S / DT_S + 0.5)
    out = []
    until = -1
    prev = None
    for k, a in enumerate(allowed):
        if prev is not None and a < prev * 0.99:
            until = k + n
        prev = a
        out.append(k <= until)
    return out


def rail_dips(trace, transient):
    """[bool] per step: the fall into a rail dip, from the fall of what the rail allows
    down to the dip's bottom (the true current no longer falling by more than
    DIP_RISE_UA). A fall there is the rail moving; a fall after the bottom is judged."""
    true = trace.col("true_ua")
    out = [False] * len(true)
    falling = False
    for k in range(len(true)):
        if not transient[k]:
            falling = False
            continue
        if k == 0 or not transient[k - 1]:
            falling = True                   # a fall of `allowed` starts the dip here
        elif falling and true[k] > true[k - 1] + DIP_RISE_UA:
            falling = False                  # past the bottom
        out[k] = falling
    return out


def worst_change(trace):
    """(µA, t_s): the largest change of the true current within JOLT_S that the rail did
    not force (see measure_jolt), over the windows where the output stayed on with the
    hands in."""
    en = trace.col("enabled")
    true = trace.col("true_ua")
    allowed = trace.allowed
    contact = trace.contact
    dip = rail_transients(trace)
    into = rail_dips(trace, dip)
    w = int(JOLT_S / DT_S + 0.5)
    worst = 0.0
    at = None
    ok_since = None
    bottom = -1                   # where the last rail dip's fall ended
    for k in range(len(true)):
        if into[k]:
            bottom = k + 1
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
        base = [true[j] for j in range(k0, k + 1) if not dip[j]]   # a rail dip is no base
        rise = cur - min(base) if base else 0.0
        a = allowed[k]
        # a fall is judged from the levels since the dip's bottom: the fall into it is the
        # rail moving, and so is being below `allowed` while coming back from it
        if into[k]:
            fall = 0.0
        else:
            top = max(true[max(k0, bottom):k + 1]) if dip[k] else max(win)
            fall = (top if top < a else a) - cur
        d = rise if rise > fall else fall
        if d > worst:
            worst = d
            at = (k * DT_S, "rose" if rise > fall else "fell")
    return worst, at


def measure_jolt(trace):
    """(c) No change of the true current by more than JOLT_UA within JOLT_S, while the
    output stays on with the hands in over the whole window, unless the rail forced it:

        rise:  true(t) - min(true over the window, outside rail dips)  > JOLT_UA
        fall:  max(min(true(s), allowed(t)) over the window) - true(t)  > JOLT_UA

    A fall down to what the rail now allows is the rail moving (load, sag, lift), not
    a jolt; a fall below it is, except the fall into the dip through the skin's
    capacitance that follows a fall of what the rail allows, down to its bottom
    (`rail_dips`). Coming back from such a dip is the rail moving too: a rise is judged
    from the levels outside the RAIL_TRANSIENT_S after a fall (`rail_transients`). A pause or fault cut (output off), the hands leaving
    (contact lost) are outside the judged windows. Returns (worst excess µA, message)."""
    d, at = worst_change(trace)
    if d <= JOLT_UA:
        return 0.0, ""
    return d - JOLT_UA, "t=%.3f s: true current %s %.0f µA within %.0f ms" % (
        at[0], at[1], d, JOLT_S * 1000)


def measure_no_fault(trace):
    """(b) A benign session never ends in FAULT: (1, message) when it latched one."""
    ctrl = trace.bench.ctrl
    if ctrl.safety.fault:
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


# ---- (d) the invariants that existed before issue 12 (docs/requirements.md, safety numbers) ---------------
def check_trip_ceiling(trace, profile, slack_ua=0.0):
    """True current never above min(prescription x 1.1, 30 mA)."""
    trip = limits.trip_level_ua(profile.target_ua)
    worst = max(trace.col("true_ua"))
    assert worst <= trip + slack_ua, "true current %.0f µA above trip %d µA" % (worst, trip)


def check_off_after_trip(trace, profile):
    """Whenever the true current exceeds the trip level, the output is off one period later."""
    trip = limits.trip_level_ua(profile.target_ua)
    true = trace.col("true_ua")
    en = trace.col("enabled")
    for k in range(len(true) - 1):
        if true[k] > trip:
            assert en[k + 1] == 0, "t=%.3f s: %.0f µA > trip, output still on next period" % (
                k * DT_S, true[k])


def check_contact_loss(trace):
    """Contact lost -> the command is down to the probe drive within two periods."""
    target = trace.col("target_ua")
    contact = trace.contact
    lost_at = None
    for k in range(len(target)):
        if not contact[k]:
            if lost_at is None:
                lost_at = k
            if k >= lost_at + 2:
                assert target[k] <= 2 * limits.PROBE_UA, (
                    "t=%.3f s: contact lost at %.3f s, still commanding %d µA" % (
                        k * DT_S, lost_at * DT_S, target[k]))
        else:
            lost_at = None


def check_slew(trace, profile, tol_ua=700.0):
    """No rise of the true current faster than the ramp allows, from any earlier point.

    For all s < t: true(t) - true(s) <= slope * (t - s) + tol. This is what catches a
    jolt after a pause, a reversal, or a compliance-limited stretch that ends in a
    sudden drop of skin resistance (the wind-up shock). `tol` covers the probe step.
    The dip in the RAIL_TRANSIENT_S after a fall of what the rail allows is not a base
    (`rail_transients`).
    """
    ramp_s = max(profile.ramp_up_s, limits.MIN_RAMP_MS / 1000.0)
    slope = profile.target_ua / ramp_s * DT_S        # µA per step
    dip = rail_transients(trace)
    low = None
    for k, i in enumerate(trace.col("true_ua")):
        g = i - slope * k
        if low is None or (g < low[0] and not dip[k]):   # a rail dip is no base
            low = (g, k)
        rise = g - low[0]
        assert rise <= tol_ua, "t=%.3f s: true current rose %.0f µA above the ramp since t=%.3f s" % (
            k * DT_S, rise, low[1] * DT_S)


def check_hard_cap(trace, profile):
    """Treatment time (true current above twice the probe) never beyond the hard cap."""
    on_s = sum(1 for i in trace.col("true_ua") if i > 2 * limits.PROBE_UA) * DT_S
    assert on_s <= profile.hard_cap_ms() / 1000.0, "energized %.1f s > cap" % on_s


def check_polarity_flips(trace):
    """Polarity changes only with the output disabled for >= 200 ms around it."""
    pol = trace.col("polarity")
    en = trace.col("enabled")
    true = trace.col("true_ua")
    off_since = None
    for k in range(len(pol)):
        if en[k] == 0 and off_since is None:
            off_since = k
        if en[k]:
            off_since = None
        if k and pol[k] != pol[k - 1]:
            assert en[k] == 0 and en[k - 1] == 0, "flip at %.3f s with output enabled" % (k * DT_S)
            assert true[k - 1] < 1.0 and true[k] < 1.0, "flip at %.3f s with current flowing" % (k * DT_S)
            assert off_since is not None and (k - off_since) * DT_S >= 0.2, (
                "flip at %.3f s after only %.3f s disabled" % (k * DT_S, (k - off_since) * DT_S))


# Pulsed: the loop holds the measured average at the target, so the peak follows the
# sense channel's accuracy; 1.6 % of the ceiling covers ADC noise and the regulator's
# one-step dither, both multiplied by 100 / duty (5x at 20 %) in the peak: measured worst
# 234 µA at a 25 mA peak, 20 % duty, source +8 % (make bench). The plant has no sense
# gain error unless a test sets one.
PEAK_TOL_UA = 400


def check_peak_ceiling(trace, tol_ua=PEAK_TOL_UA):
    """The source's on-phase (peak) current never above the 25 mA ceiling (+ tol)."""
    worst = max(trace.pulse_peak)
    assert worst <= limits.CEILING_UA + tol_ua, "peak %.0f µA above the ceiling %d µA" % (
        worst, limits.CEILING_UA)


def check_all(trace, profile):
    check_peak_ceiling(trace)
    check_trip_ceiling(trace, profile)
    check_contact_loss(trace)
    check_slew(trace, profile)
    check_hard_cap(trace, profile)
    check_polarity_flips(trace)
