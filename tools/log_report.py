"""Adherence summary of a downloaded treatment log (the host side of `log`).

    from tools.log_report import adherence, format_adherence
    records = client.read_log()                  # docs/protocol.md, log_read
    print(format_adherence(adherence(records, rx=client.request("rx_read")["rx"])))

Uses the firmware's own rules (treatment_log.counts: a session counts when >= 80 % of
its prescribed time was delivered, or a dose session delivered its dose; schedule.phase_of), so the host and the device never
disagree about which sessions counted. Weeks are 7-day windows from the first dated
counted session; a week's aim is the induction aim while fewer than `induction_sessions`
sessions had counted at its start, the maintenance aim after. Sessions without a
wall-clock start (the host never set the time) count, but cannot be placed in a week.

The record's order is its session number (`seq`), never its date (issue 15): `missing`
lists the numbers absent between the oldest and the newest record read (lost records:
the firmware numbers every session that delivered charge, without gaps), `back_dated`
the records dated earlier than one before them (the clock was moved), `attempts` the
sessions that delivered almost nothing (< 50 µA·min), which the firmware counts in the
next record instead of logging each (records written before that carry 0).
"""

import tools.paths  # noqa: F401  (firmware modules importable)

import schedule
import treatment_log
from records import RX_FACTORY

DAY_S = 24 * 3600


def adherence(records, rx=None, induction_done=False, now=None):
    """Summary dict of `records` (log_read entries: dicts with the protocol's fields)."""
    rx = dict(RX_FACTORY if rx is None else rx)
    recs = sorted(records, key=lambda r: r["seq"])
    counted = [r for r in recs if treatment_log.counts(r)]
    dated = [r for r in counted if r["epoch"]]
    ends = {}
    for r in recs:
        ends[r["end"]] = ends.get(r["end"], 0) + 1
    flows = [100.0 * r["i_mean_ua"] / r["target_ua"] for r in counted if r["target_ua"]]
    out = {
        "sessions": len(recs), "counted": len(counted), "undated": len(counted) - len(dated),
        "ends": ends, "faults": sum(1 for r in recs if r["fault"] not in ("ok", 0)),
        "charge_mamin": sum(r["charge_uamin"] for r in recs) / 1000.0,
        "mean_flow_pct": sum(flows) / len(flows) if flows else None,
        "phase": schedule.phase_of(len(counted), rx, induction_done),
        "weeks": [], "weeks_met": 0, "longest_gap_days": None,
        "first": dated[0]["start"] if dated else None,
        "last": dated[-1]["start"] if dated else None,
        "attempts": sum(r.get("attempts") or 0 for r in recs),
        "missing": missing(recs), "back_dated": back_dated(recs),
    }
    if not dated:
        return out
    end = now if now is not None else dated[-1]["start"] + 1
    gaps = [(b["start"] - a["start"]) / DAY_S for a, b in zip(dated, dated[1:])]
    out["longest_gap_days"] = max(gaps) if gaps else None
    # counted sessions before each dated one (undated sessions count in order of seq)
    before = {}
    n = 0
    for r in counted:
        before[r["seq"]] = n
        n += 1
    t0 = dated[0]["start"]
    k = 0
    while t0 + k * schedule.WEEK_S <= end:
        lo = t0 + k * schedule.WEEK_S
        hi = lo + schedule.WEEK_S
        inside = [r for r in dated if lo <= r["start"] < hi]
        prior = [r for r in dated if r["start"] < lo]
        done = before[prior[-1]["seq"]] + 1 if prior else 0
        induction = schedule.phase_of(done, rx, False) == "induction"
        aim = rx["induction_per_week"] if induction else rx["maintenance_per_week"]
        complete = hi <= end
        week = {"from": lo, "sessions": len(inside), "aim": aim,
                "phase": "induction" if induction else "maintenance",
                "met": len(inside) >= aim, "complete": complete}
        out["weeks"].append(week)
        if complete and week["met"]:
            out["weeks_met"] += 1
        k += 1
    return out


def missing(recs):
    """[(first, last)] ranges of session numbers absent between the oldest and the newest
    of `recs` (sorted by seq)."""
    out = []
    for a, b in zip(recs, recs[1:]):
        if b["seq"] > a["seq"] + 1:
            out.append((a["seq"] + 1, b["seq"] - 1))
    return out


def back_dated(recs):
    """Session numbers of the dated records (sorted by seq) that start before a dated
    record with a lower number did."""
    out = []
    top = None
    for r in recs:
        if not r.get("epoch"):
            continue
        if top is not None and r["start"] < top:
            out.append(r["seq"])
        top = r["start"] if top is None or r["start"] > top else top
    return out


def format_adherence(s):
    """The summary as a few lines of text."""
    lines = ["sessions: %d logged, %d counted (>= 80 %% of the prescribed time), %d undated"
             % (s["sessions"], s["counted"], s["undated"]),
             "phase now: %s" % s["phase"]]
    if s["ends"]:
        lines.append("endings: " + ", ".join("%s %d" % (k or "none", v)
                                             for k, v in sorted(s["ends"].items(), key=str)))
    lines.append("faults: %d; delivered charge %.1f mA*min" % (s["faults"], s["charge_mamin"]))
    if s["mean_flow_pct"] is not None:
        lines.append("mean current reached: %.0f %% of target" % s["mean_flow_pct"])
    full = [w for w in s["weeks"] if w["complete"]]
    if full:
        lines.append("weeks meeting the aim: %d of %d" % (s["weeks_met"], len(full)))
    for w in s["weeks"]:
        lines.append("  week from %s: %d/%d %s%s" % (
            time_text(w["from"]), w["sessions"], w["aim"], w["phase"],
            "" if w["complete"] else " (in progress)"))
    if s["longest_gap_days"] is not None:
        lines.append("longest gap between sessions: %.1f days" % s["longest_gap_days"])
    if s.get("attempts"):
        lines.append("attempts (sessions that delivered almost nothing, not logged one by "
                     "one): %d" % s["attempts"])
    if s.get("missing"):
        lines.append("records missing (lost): " + ", ".join(
            "%d" % a if a == b else "%d-%d" % (a, b) for a, b in s["missing"]))
    if s.get("back_dated"):
        lines.append("dated before an earlier session (the clock was moved): " +
                     ", ".join("%d" % q for q in s["back_dated"]))
    return "\n".join(lines)


def time_text(epoch):
    import time
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))
