"""The peers' regulation algorithms (issue 12), on the same plant, for `make bench`.

Each baseline drives the `sim` board's HAL directly (read current, set the source's
current, enable) at its own rate, with its own ramp and no contact probe, bumpless logic
or safety monitor: what the peers' devices do. Host-side only (floats are fine here).

- `OpenLoop`: the setpoint through the nominal source gain (no feedback), at 200 Hz.
- `POnly`: command = setpoint + Kp x error, Kp 0.5, at 100 Hz.
- `PIFeedForward`: command = setpoint + Kp x error + I, Kp 0.5, Ki 0.1 per step, the
  integrator clamped to ±3 mA, at 50 Hz, with its own 30 s up / 5 s down ramps.

The gains are round values of our choosing, stable at each loop's rate on this plant
(the peers' own gains are not published); issue 12 quotes its author's measurements of
these algorithms, `make bench` prints what these settings give.
"""

import scenario
from tools import invariants


class _Base:
    period_steps = 1          # control at every Nth 5 ms step
    ramp_up_s = None          # None: the profile's
    ramp_down_s = None

    def __init__(self, hal, target_ua, ramp_up_s, ramp_down_s, duration_s):
        self.hal = hal
        self.target = target_ua
        self.up = target_ua / float(self.ramp_up_s or ramp_up_s)
        self.down = target_ua / float(self.ramp_down_s or ramp_down_s)
        self.duration_s = duration_s
        self.sp = 0.0
        self.t = 0.0
        self.k = 0
        self.state = "RAMP_UP"
        hal.set_enabled(True)

    def tick(self, dt_s):
        """One 5 ms step; the control law runs every `period_steps`."""
        self.t += dt_s
        if self.t >= self.duration_s and self.state != "DONE":
            self.state = "RAMP_DOWN"
        if self.state == "RAMP_UP":
            self.sp = min(self.target, self.sp + self.up * dt_s)
            if self.sp >= self.target:
                self.state = "TREAT"
        elif self.state == "RAMP_DOWN":
            self.sp = max(0.0, self.sp - self.down * dt_s)
            if self.sp <= 0.0:
                self.state = "DONE"
                self.hal.off()
                return
        self.k += 1
        if self.k % self.period_steps:
            return
        i = self.hal.read_current_ua()
        u = self.law(self.sp, i, dt_s * self.period_steps)
        self.hal.set_current_ua(int(max(0.0, min(u, 33000.0))))


class OpenLoop(_Base):
    name = "open loop"

    def law(self, sp, i, dt):
        return sp


class POnly(_Base):
    name = "P-only 100 Hz"
    period_steps = 2
    KP = 0.5

    def law(self, sp, i, dt):
        return sp + self.KP * (sp - i)


class PIFeedForward(_Base):
    name = "PI+FF 50 Hz"
    period_steps = 4
    ramp_up_s = 30
    ramp_down_s = 5
    KP = 0.5
    KI = 0.1
    I_MAX = 3000.0

    def __init__(self, *a):
        _Base.__init__(self, *a)
        self.integ = 0.0

    def law(self, sp, i, dt):
        e = sp - i
        self.integ = max(-self.I_MAX, min(self.I_MAX, self.integ + self.KI * e))
        return sp + self.KP * e + self.integ


ALGORITHMS = (OpenLoop, POnly, PIFeedForward)


def run(cls, scn):
    """Play scenario `scn` (validated) with baseline `cls`; return a trace like
    tools.trace_run.run's (same columns, contact, allowed, goal)."""
    from tools.trace_run import Trace
    prof = scenario.profile_from(scn.get("profile", {}))
    b = scenario.Bench(seed=scn.get("seed", 1), **scn.get("plant", {}))
    p = b.plant
    per_s = 1000000 // b.period_us
    dt = b.dt_s
    events = scn["events"]
    ctrl = None
    truth = invariants.Truth()
    rows = []
    e = 0
    ramps = []
    for k in range(int(scn["end_s"] * per_s + 0.5)):
        while e < len(events) and events[e]["t_s"] * per_s <= k + 1e-9:
            scenario._apply(events[e], b, prof, ramps, k, per_s)
            e += 1
        for r in ramps:
            f = min(1.0, (k - r.k0) / (r.k1 - r.k0)) if r.k1 > r.k0 else 1.0
            setattr(p, r.name, r.start + (r.end - r.start) * f)
        ramps[:] = [r for r in ramps if k < r.k1]
        if ctrl is None and p.contact:
            ctrl = cls(b.hal, prof.target_ua, prof.ramp_up_s, prof.ramp_down_s, prof.duration_s)
        if ctrl is not None:
            ctrl.tick(dt)
        p.step(dt)
        st = ctrl.state if ctrl is not None else "WAIT_CONTACT"
        on = 1 if b.hal.enabled else 0
        rows.append((k / per_s, st, int(ctrl.sp) if ctrl else 0, 0, p.true_ua, on, p.peak_ua, 0,
                     0.0, b.hal.ref_code, 0, 1 if p.limited else 0))
        truth.contact.append(p.contact and not p.short)
        truth.allowed.append(invariants.allowed_ua(p, truth.allowed[-1] if truth.allowed
                                                   and truth.allowed[-1] > 1 else 10000.0))
        truth.goal.append(prof.target_ua)
    t = Trace(rows, b, scn)
    t.contact = truth.contact
    t.allowed = truth.allowed
    t.goal = truth.goal
    return t
