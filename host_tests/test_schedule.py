"""Treatment phase, next due session (firmware/schedule.py) and the host's adherence summary
(tools/log_report.py)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

import schedule  # noqa: E402
import treatment_log as tl  # noqa: E402
from fakefs import FakeFs  # noqa: E402
from protorig import Rig  # noqa: E402
from records import RX_FACTORY  # noqa: E402
from tools.log_report import adherence, format_adherence  # noqa: E402

DAY = 86400
T0 = 1750000000


def test_induction_then_maintenance_by_count():
    rx = dict(RX_FACTORY)
    s = schedule.compute(0, [], rx, False, T0)
    assert s["phase"] == "induction" and s["due"] is True and s["next_due"] == T0
    assert s["per_week"] == 3 and s["interval_s"] == 7 * DAY // 3
    recent = [(k, T0 - (10 - k) * 2 * DAY) for k in range(11)]
    s = schedule.compute(11, recent, rx, False, T0)
    assert s["phase"] == "induction" and s["last"] == T0
    assert s["next_due"] == T0 + 7 * DAY // 3 and s["due"] is False and s["this_week"] == 4
    s = schedule.compute(12, recent, rx, False, T0 + 3 * DAY)
    assert s["phase"] == "maintenance" and s["per_week"] == 1
    assert s["next_due"] == T0 + 7 * DAY and s["due"] is False
    assert schedule.compute(12, recent, rx, False, T0 + 7 * DAY)["due"] is True


def test_user_marks_induction_done_and_prescription_sets_the_count():
    rx = dict(RX_FACTORY, induction_sessions=20, maintenance_per_week=2)
    assert schedule.compute(15, [], rx, False, T0)["phase"] == "induction"
    s = schedule.compute(3, [], rx, True, T0)
    assert s["phase"] == "maintenance" and s["interval_s"] == 7 * DAY // 2


def test_unknown_time():
    rx = dict(RX_FACTORY)
    s = schedule.compute(0, [], rx, False, None)
    assert s["due"] is True and s["next_due"] is None and s["this_week"] is None
    s = schedule.compute(2, [], rx, False, None)
    assert s["due"] is None and s["next_due"] is None
    s = schedule.compute(2, [(1, T0)], rx, False, None)
    assert s["next_due"] == T0 + 7 * DAY // 3 and s["due"] is None


def test_log_feeds_the_schedule_and_survives_a_reboot():
    fs = FakeFs()
    log = tl.TreatmentLog(fs, "data/log")
    from test_treatment_log import rec
    for k in range(5):
        log.append(rec(k, start=T0 + k * 2 * DAY))
    log.append(rec(5, start=T0 + 11 * DAY, delivered_s=100))     # stopped early: not counted
    log.append(rec(6, start=T0 + 12 * DAY, epoch=False))          # no wall clock
    log2 = tl.TreatmentLog(fs, "data/log")
    log2.load()
    assert log2.counted == log.counted == 6
    assert log2.recent == log.recent and max(t for _, t in log2.recent) == T0 + 8 * DAY
    rig = Rig(fs=fs)
    rig.ok("time_set", epoch=T0 + 9 * DAY)
    s = rig.ok("schedule")
    assert s["counted"] == 6 and s["last"] == T0 + 8 * DAY and s["this_week"] == 3  # 4, 6, 8 d


def _r(seq, day, delivered=600, end="completed", fault="ok", epoch=True):
    return {"seq": seq, "start": T0 + int(day * DAY), "epoch": epoch, "target_ua": 15000,
            "duration_s": 600, "delivered_s": delivered, "charge_uamin": 140000,
            "i_mean_ua": 14500, "end": end, "fault": fault}


def test_adherence_summary():
    recs = [_r(1, 0), _r(2, 2), _r(3, 4),                  # week 1: 3 -> met
            _r(4, 7), _r(5, 9, delivered=60, end="stopped"),  # week 2: 1 counted -> missed
            _r(6, 14), _r(7, 16), _r(8, 18),                # week 3: met
            _r(9, 19, end="fault", fault="overcurrent", delivered=100),
            _r(10, 22, epoch=False)]
    rx = dict(RX_FACTORY, induction_sessions=6)
    s = adherence(recs, rx=rx, now=T0 + 30 * DAY)
    assert s["sessions"] == 10 and s["counted"] == 8 and s["undated"] == 1
    assert s["faults"] == 1 and s["ends"] == {"completed": 8, "stopped": 1, "fault": 1}
    weeks = s["weeks"]
    assert [w["sessions"] for w in weeks[:4]] == [3, 1, 3, 0]
    assert [w["phase"] for w in weeks[:4]] == ["induction", "induction", "induction", "maintenance"]
    assert [w["met"] for w in weeks[:4]] == [True, False, True, False]
    assert s["weeks_met"] == 2 and s["phase"] == "maintenance"
    assert s["longest_gap_days"] == 7 and abs(s["mean_flow_pct"] - 14500 / 150) < 1e-9
    text = format_adherence(s)
    assert "weeks meeting the aim: 2 of 4" in text and "phase now: maintenance" in text
    empty = adherence([])
    assert empty["sessions"] == 0 and "0 logged" in format_adherence(empty)


def test_adherence_uses_the_firmware_counting_rule():
    assert tl.counts({"duration_s": 600, "delivered_s": 480})
    assert not tl.counts({"duration_s": 600, "delivered_s": 479})
    assert tl.counts({"duration_s": 1200, "delivered_s": 300, "end": "dose"})   # host form
    s = adherence([_r(1, 0, delivered=480), _r(2, 1, delivered=479)])
    assert s["counted"] == 1
