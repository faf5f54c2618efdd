"""Treatment phase and the next due session, from the log and the prescription.

Induction: aim `induction_per_week` sessions a week (3 by default) until the user marks the
induction done (settings) or `induction_sessions` sessions counted (12 by default);
then maintenance: `maintenance_per_week` (1 by default). A session counts when at least
80 % of its prescribed time was delivered (treatment_log.counts).

The next session is due one interval (a week / sessions per week) after the newest
counted session with a wall-clock start. Without wall-clock time (the host never set
it) the due time is unknown (None), except that the very first session is due at once.
Pure integer logic; the host's adherence report (tools/log_report.py) reuses it.
"""

WEEK_S = 7 * 24 * 3600


def phase_of(counted, rx, induction_done):
    return "maintenance" if induction_done or counted >= rx["induction_sessions"] else "induction"


def compute(counted, recent, rx, induction_done, now_s):
    """`counted`: sessions counted in the log; `recent`: [(seq, epoch start)] of the newest
    counted sessions with a wall-clock start; `now_s`: epoch seconds or None (unknown)."""
    phase = phase_of(counted, rx, induction_done)
    per_week = rx["maintenance_per_week"] if phase == "maintenance" else rx["induction_per_week"]
    interval = WEEK_S // per_week
    last = None
    for _, t in recent:
        if last is None or t > last:
            last = t
    week = None
    if now_s is not None:
        week = 0
        for _, t in recent:
            if now_s - WEEK_S < t <= now_s:
                week += 1
    if last is not None:
        next_due = last + interval
    elif counted == 0:
        next_due = now_s            # nothing yet: due now (None when time is unknown)
    else:
        next_due = None             # sessions exist, but none has a wall-clock date
    if counted == 0:
        due = True
    elif next_due is None or now_s is None:
        due = None
    else:
        due = now_s >= next_due
    return {"phase": phase, "counted": counted, "induction_sessions": rx["induction_sessions"],
            "induction_done": bool(induction_done), "per_week": per_week, "interval_s": interval,
            "last": last, "next_due": next_due, "due": due, "this_week": week}
