"""Summary of a simulated session, computed from its trace rows alone.

`Summary(columns, dt_s, target_ua)` is fed one row per control step (`add(row)`, rows
in `columns` order, as `scenario.run` hands them out) and `result()` returns a plain
dict (JSON-ready). It looks only at the rows (the plant's true current, the state the
firmware reported, what it measured), never at firmware internals; the few facts a
row does not carry (the latched fault's name, the end reason) are passed in by the
caller from the controller's public attributes. docs/simulator.md describes each key.
"""

STEADY_STATE_STATE = "TREAT"
OVERSHOOT_WINDOW_S = 5.0
# states in which the session drives treatment current (compliance limiting counts here
# only: the open-circuit probe in WAIT_CONTACT/PAUSED rails the source by design)
CARRYING = ("RAMP_UP", "TREAT", "REVERSE", "RAMP_DOWN")


def _r(x, nd):
    return None if x is None else round(x, nd)


class Summary:
    def __init__(self, columns, dt_s, target_ua):
        ix = {name: n for n, name in enumerate(columns)}
        self._t = ix["t_s"]
        self._st = ix["state"]
        self._sp = ix["target_ua"]
        self._meas = ix["measured_ua"]
        self._true = ix["true_ua"]
        self._peak = ix.get("peak_ua")
        self._lim = ix.get("limited")
        self._en = ix["enabled"]
        self._dens = ix.get("density_ratio")
        self.dt_s = dt_s
        self.target_ua = target_ua
        self.steps = 0
        self.state_steps = {}
        self.state_order = []        # states in order of first appearance
        self.transitions = []        # [(t_s, state)] at each change, first row included
        self.pauses = 0
        self.limited_steps = 0
        self.energized_steps = 0
        self.sum_true = 0.0
        self.max_true = 0.0
        self.max_true_t = None
        self.max_peak = 0.0
        self.max_meas = 0
        self.ss_n = 0
        self.ss_meas = 0.0
        self.ss_true = 0.0
        self.first_treat_t = None
        self.os_limited = False
        self.os_max = None
        self.last = None
        self._prev_state = None
        self.max_density = 0.0       # true current density on the least-wetted skin (issue 13)
        self.max_density_t = None
        self.density_steps_15 = 0    # steps above 1.5x, above 2x
        self.density_steps_2 = 0

    def add(self, row):
        self.steps += 1
        st = row[self._st]
        if st != self._prev_state:
            if st not in self.state_steps:
                self.state_steps[st] = 0
                self.state_order.append(st)
            self.transitions.append((row[self._t], st))
            if st == "PAUSED":
                self.pauses += 1
            self._prev_state = st
        self.state_steps[st] += 1
        true = row[self._true]
        self.sum_true += true
        if true > self.max_true:
            self.max_true = true
            self.max_true_t = row[self._t]
        if self._peak is not None and row[self._peak] > self.max_peak:
            self.max_peak = row[self._peak]
        if self._dens is not None:
            d = row[self._dens]
            if d > self.max_density:
                self.max_density = d
                self.max_density_t = row[self._t]
            if d > 1.5:
                self.density_steps_15 += 1
                if d > 2.0:
                    self.density_steps_2 += 1
        meas = row[self._meas]
        if meas > self.max_meas:
            self.max_meas = meas
        limited = self._lim is not None and row[self._lim] and st in CARRYING
        if limited:
            self.limited_steps += 1
        if row[self._en]:
            self.energized_steps += 1
        if st == STEADY_STATE_STATE:
            t = row[self._t]
            if self.first_treat_t is None:
                self.first_treat_t = t
            if t < self.first_treat_t + OVERSHOOT_WINDOW_S - 1e-9:
                if limited:
                    self.os_limited = True
                if self.os_max is None or true > self.os_max:
                    self.os_max = true
            sp = row[self._sp]
            if not limited and sp > 0:
                self.ss_n += 1
                self.ss_meas += abs(meas - sp) / sp
                self.ss_true += abs(true - sp) / sp
        self.last = row

    def result(self, fault=None, end_reason=None, wall_time_s=None, seed=None, profile=None,
               scenario=None):
        dt = self.dt_s
        states = {s: round(self.state_steps[s] * dt, 3) for s in self.state_order}
        fault_t = None
        for t, s in self.transitions:
            if s == "FAULT":
                fault_t = t
                break
        n = self.ss_n
        os_pct = None
        # no overshoot to speak of when the load held the current below target
        if self.os_max is not None and self.target_ua and not self.os_limited:
            os_pct = (self.os_max / self.target_ua - 1.0) * 100.0
        return {
            "scenario": scenario,
            "final_state": self.last[self._st] if self.last is not None else None,
            "fault": fault or None,
            "fault_t_s": _r(fault_t, 3),
            "end_reason": end_reason or None,
            "duration_simulated_s": round(self.steps * dt, 3),
            "wall_time_s": _r(wall_time_s, 3),
            "steps": self.steps,
            "pauses": self.pauses,
            "treat_time_s": round(self.state_steps.get("TREAT", 0) * dt, 3),
            "first_treat_t_s": _r(self.first_treat_t, 3),
            "energized_time_s": round(self.energized_steps * dt, 3),
            "limited_time_s": round(self.limited_steps * dt, 3),
            "max_true_ua": round(self.max_true, 1),
            "max_true_t_s": _r(self.max_true_t, 3),
            "max_peak_ua": round(self.max_peak, 1),
            "max_measured_ua": self.max_meas,
            "max_density_ratio": round(self.max_density, 3),
            "max_density_t_s": _r(self.max_density_t, 3),
            "density_above_1_5_s": round(self.density_steps_15 * dt, 3),
            "density_above_2_s": round(self.density_steps_2 * dt, 3),
            "charge_mamin": round(self.sum_true * dt / 1000.0 / 60.0, 3),
            "steady_state_error_pct": {
                "measured_vs_target": round(self.ss_meas / n * 100.0, 3) if n else None,
                "true_vs_target": round(self.ss_true / n * 100.0, 3) if n else None,
                "rows": n,
            },
            "overshoot_pct": _r(os_pct, 3),
            "state_times_s": states,
            "transitions": [[round(t, 3), s] for t, s in self.transitions],
            "seed": seed,
            "profile": profile,
        }


def summarize(rows, columns, dt_s, target_ua, **info):
    """Summary dict of a whole list of rows (see Summary.result for `info`)."""
    s = Summary(columns, dt_s, target_ua)
    for r in rows:
        s.add(r)
    return s.result(**info)


def format_text(summ):
    """A readable multi-line rendering of a summary dict, for a terminal."""
    p = summ.get("profile") or {}
    lines = []

    def add(label, text):
        lines.append("%-13s %s" % (label, text))

    def ma(ua):
        return "-" if ua is None else "%.2f mA" % (ua / 1000.0)

    def pct(x):
        return "-" if x is None else "%.2f %%" % x

    add("scenario", "%s (seed %s)" % (summ.get("scenario"), summ.get("seed")))
    if p:
        add("profile", "%g mA for %d s, ramps up %d s / down %d s, polarity reversal %s" % (
            p["target_ma"], p["duration_s"], p["ramp_up_s"], p["ramp_down_s"],
            "on" if p["reverse_polarity"] else "off") + (
            ", pulsed %d Hz at %d %% duty (average; peak %g mA)" % (
                p["pulse_hz"], p["duty_pct"], p["target_ma"] * 100 / p["duty_pct"])
            if p.get("mode") == "pulsed" else ", dose %g mA*min" % (p["dose_uamin"] / 1000.0)
            if p.get("mode") == "dose" else ""))
    outcome = summ["final_state"]
    if summ.get("fault"):
        outcome += ", fault %s at t=%.3f s" % (summ["fault"], summ["fault_t_s"]) \
            if summ.get("fault_t_s") is not None else ", fault %s" % summ["fault"]
    if summ.get("end_reason"):
        outcome += ", end reason %s" % summ["end_reason"]
    add("outcome", outcome)
    wall = summ.get("wall_time_s")
    speed = ""
    if wall:
        speed = ", %.0fx real time" % (summ["duration_simulated_s"] / wall)
    add("simulated", "%.3f s in %d steps, wall time %s s%s" % (
        summ["duration_simulated_s"], summ["steps"], "-" if wall is None else "%.2f" % wall,
        speed))
    add("treatment", "TREAT %.1f s (first at %s), pauses %d, compliance limited %.1f s" % (
        summ["treat_time_s"],
        "-" if summ["first_treat_t_s"] is None else "%.1f s" % summ["first_treat_t_s"],
        summ["pauses"], summ["limited_time_s"]))
    add("current", "max true %s (t=%s s), max peak %s, max measured %s" % (
        ma(summ["max_true_ua"]),
        "-" if summ["max_true_t_s"] is None else "%.3f" % summ["max_true_t_s"],
        ma(summ["max_peak_ua"]), ma(summ["max_measured_ua"])))
    if "max_density_ratio" in summ:
        add("density", "max %.2fx of full immersion at the target (t=%s s); above 1.5x %.2f s, "
            "above 2x %.2f s" % (summ["max_density_ratio"], "-" if summ["max_density_t_s"] is None
                                 else "%.3f" % summ["max_density_t_s"],
                                 summ["density_above_1_5_s"], summ["density_above_2_s"]))
    add("charge", "%.3f mA*min (true current)" % summ["charge_mamin"])
    sse = summ["steady_state_error_pct"]
    add("regulation", "steady-state error measured %s, true %s (%d TREAT rows); "
        "first-ramp overshoot %s" % (pct(sse["measured_vs_target"]), pct(sse["true_vs_target"]),
                                    sse["rows"], pct(summ["overshoot_pct"])))
    add("states", ", ".join("%s %.1f s" % (k, v) for k, v in summ["state_times_s"].items()))
    trans = summ.get("transitions") or []
    shown = trans[:12]
    text = " -> ".join("%s@%.1f" % (s, t) for t, s in shown)
    if len(trans) > len(shown):
        text += " -> ... (%d more)" % (len(trans) - len(shown))
    add("sequence", text)
    return "\n".join(lines)
