"""tools/logview.py (`make log`): download, table, adherence, CSV, plot; refusals.

In-process against the firmware's app with a treatment log on its fake flash, in virtual
time (test_client.DevicePort), plus one end-to-end run of `python -m tools.logview`
against a virtual board that has just logged a session.
"""

import csv
import io
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

from protorig import Rig  # noqa: E402
from test_monitor_tool import (ReplPort, assert_png, cli_run, device, no_traceback,  # noqa: E402
                               refuse)
from test_treatment_log import rec  # noqa: E402
from tools import cli, logview  # noqa: E402

DAY = 86400
T0 = 1767225600               # 2026-01-01 00:00 UTC
FAULT_SHORT = 3               # safety.NAMES index
END = {"completed": 1, "stopped": 2, "fault": 5}


def logged_rig(n=19, service=False, dated=True):
    """A device with `n` logged sessions every other day; #7 tripped (short), #11 was
    stopped after 100 s."""
    rig = Rig(service=service)
    for k in range(1, n + 1):
        kw = {"start": T0 + k * 2 * DAY + (k % 3) * 3600 if dated else 100 + k,
              "epoch": dated, "end": END["completed"]}
        if k == 7:
            kw.update(end=END["fault"], fault=FAULT_SHORT, delivered_s=200, charge_uamin=50000,
                      i_mean_ua=14500)
        if k == 11:
            kw.update(end=END["stopped"], delivered_s=100, charge_uamin=20000)
        rig.store.log.append(rec(k, **kw))
    return rig


def run_log(args, rig):
    opener, port = device(rig)
    out, err = io.StringIO(), io.StringIO()
    rc = logview.main(["--port", "rig"] + args, opener=opener, out=out, err=err)
    no_traceback(out.getvalue(), err.getvalue())
    return rc, out.getvalue(), err.getvalue()


def test_table_adherence_csv_and_plot(tmp_path):
    csv_path, png = tmp_path / "log.csv", tmp_path / "log.png"
    rc, out, err = run_log(["--csv", str(csv_path), "--png", str(png)], logged_rig())
    assert rc == 0, err
    assert "19 sessions" in out
    lines = out.splitlines()
    row7 = next(ln for ln in lines if ln.lstrip().startswith("7 "))
    assert "2026-01-15 01:00" in row7 and "3:20 / 10:00" in row7
    assert "fault" in row7 and "short" in row7 and "50.0" in row7 and "14.50" in row7
    row11 = next(ln for ln in lines if ln.lstrip().startswith("11 "))
    assert "stopped" in row11 and "1:40 / 10:00" in row11
    row1 = next(ln for ln in lines if ln.lstrip().startswith("1 "))
    assert "completed" in row1 and "15.0" in row1 and "150.0" in row1 and "1 / 1" in row1
    # the adherence summary (log_report), against the plan from `schedule`: no service mode
    assert "17 counted" in out and "faults: 1" in out and "weeks meeting the aim" in out
    assert "note: plan from the device's schedule" in out
    # progress on stderr, records fetched / total
    assert "log: 19 / 19 records" in err
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 19 and rows[6]["fault"] == "short" and rows[6]["end"] == "fault"
    assert rows[0]["start_utc"] == "2026-01-03T01:00:00Z" and rows[0]["charge_uamin"] == "150001"
    assert set(logview.RECORD_FIELDS) <= set(rows[0])
    assert_png(png)


def test_plot_reads_well_axes_units_legend_title():
    import matplotlib.pyplot as plt
    from tools.log_report import adherence
    opener, _ = device(logged_rig())
    dev = opener("rig", 2.0)
    records = logview.download(dev)
    fig = logview.figure_log(records, adherence(records), title="Treatment log: board sim")
    try:
        ax, ax_w = fig.axes[0], fig.axes[1]
        ax_c = fig.axes[2]                                   # the current axis (twin)
        assert ax.get_ylabel() == "charge per session (mA·min)"
        assert ax_c.get_ylabel() == "current (mA)"
        assert ax_w.get_ylabel() == "counted sessions per week"
        assert "UTC" in ax.get_xlabel() and "UTC" in ax_w.get_xlabel()
        labels = {t.get_text() for t in ax.get_legend().get_texts()}
        assert {"charge: completed", "charge: fault", "charge: stopped", "fault",
                "target current", "mean current in TREAT"} <= labels, labels
        wl = {t.get_text() for t in ax_w.get_legend().get_texts()}
        assert "aim (plan)" in wl and "week below the aim" in wl, wl
        assert any("fault: short" in t.get_text() for t in ax.texts)
        red = [p for p in ax.patches if p.get_facecolor()[:3] == (214 / 255, 40 / 255, 40 / 255)]
        assert len(red) == 1, "one red bar: the fault session"
        assert fig._suptitle.get_text() == "Treatment log: board sim"
    finally:
        plt.close(fig)


def test_prescription_in_service_mode_and_since(tmp_path):
    rig = logged_rig(service=True)
    plan = {"induction_sessions": 20, "induction_per_week": 2, "maintenance_per_week": 1}
    r = rig.ask("rx_write", **plan)                   # fields given replace the ones in force
    if not r["ok"]:                                   # (protocol 1 of firmware 0.4: all fields)
        rig.ok("rx_write", max_target_ua=20000, target_ua=15000, max_duration_s=1200,
               duration_s=600, ramp_up_s=30, ramp_down_s=15, reverse_allowed=False, **plan)
    png = tmp_path / "since.png"
    rc, out, err = run_log(["--since", "2026-01-25", "--png", str(png)], rig)
    assert rc == 0, err
    assert "19 sessions; 8 since 2026-01-25" in out
    assert "note:" not in out                          # the prescription was read
    assert "phase now: induction" in out               # 17 counted < 20
    assert "/2 induction" in out                       # this prescription's aim
    assert "adherence (whole log)" in out
    listed = [ln for ln in out.splitlines() if ln[:4].strip().isdigit()]
    assert [int(ln.split()[0]) for ln in listed] == list(range(12, 20))
    assert_png(png)


def test_undated_and_empty_logs(tmp_path):
    png = tmp_path / "u.png"
    rc, out, err = run_log(["--png", str(png)], logged_rig(n=4, dated=False))
    assert rc == 0, err
    assert "boot+101s" in out and "4 undated" in out
    assert_png(png)
    png = tmp_path / "e.png"
    rc, out, err = run_log(["--png", str(png), "--csv", str(tmp_path / "e.csv")], Rig())
    assert rc == 0, err
    assert "0 sessions" in out and "(no sessions)" in out
    assert (tmp_path / "e.csv").read_text().startswith("start_utc,seq,")
    assert_png(png, min_bytes=10000)


def test_refused_during_a_session_exit_1():
    rig = logged_rig(n=2)
    rig.bench.plant.contact = True
    rig.ok("start", target_ua=9000, duration_s=300)
    rc, out, err = run_log([], rig)
    assert rc == 1
    assert "error: a session is running (state WAIT_CONTACT)" in err


def test_refusals_exit_2():
    rc, err, _ = refuse(logview.main, [], ReplPort())
    assert rc == 2 and "does not answer as this firmware" in err
    err = io.StringIO()
    assert logview.main(["--port", "/dev/no-such-port-ionto"], err=err) == 2
    assert "port /dev/no-such-port-ionto does not exist" in err.getvalue()
    err = io.StringIO()
    assert logview.main(["--since", "15.01.2026"], err=err) == 2
    assert "YYYY-MM-DD" in err.getvalue()
    no_traceback(err.getvalue())


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        logview.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "make log PORT=" in text and "--since" in text
    assert "--timeout" in text


def test_command_line_exit_2_for_a_missing_port():
    r = cli_run("logview", "--port", "/dev/no-such-port-ionto", "--timeout", "1")
    assert r.returncode == 2 and "error: port /dev/no-such-port-ionto does not exist" in r.stderr
    no_traceback(r.stdout, r.stderr)


# ---- end to end: the command line against a virtual board ------------------------------------------

def test_end_to_end_log_on_a_virtual_board(tmp_path):
    import shutil
    from test_virtual_board import require_tools
    from emulators.vboard import STATE_ROOT, VirtualBoard
    require_tools()
    name = "pytest-log-%d" % os.getpid()
    vb = VirtualBoard(name)
    vb.start(owner=os.getpid())
    try:
        r = cli_run("flash", "--vboard", name, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        vb.set_load(contact=True, skin_ohm=1500.0)
        dev, _, _ = cli.connect(vb.port, timeout=20.0)
        try:
            dev.sync_time()
            dev.start(target_ua=8000, duration_s=300)
            deadline = time.monotonic() + 30
            while dev.status()["charge_uamin"] < 60:  # not an attempt (< 50 µA·min: no
                assert time.monotonic() < deadline    # record, issue 15): ~5 s of ramp
                time.sleep(0.2)
            dev.stop()                               # a session stopped in its ramp
            deadline = time.monotonic() + 30
            while True:                              # polled: the record is written after
                st = dev.status()                    # the session ends, from the loop
                if st["state"] == "DONE" and st["log_pending"] == 0 and st["log_last"]:
                    break
                assert time.monotonic() < deadline, st
        finally:
            dev.close()
        csv_path, png = tmp_path / "vb.csv", tmp_path / "vb.png"
        r = cli_run("logview", "--vboard", name, "--csv", str(csv_path), "--png", str(png),
                    "--timeout", "10", timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        no_traceback(r.stdout, r.stderr)
        assert "1 session" in r.stdout and "stopped" in r.stdout and "log: 1 / 1 records" in r.stderr
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 1 and rows[0]["end"] == "stopped" and rows[0]["target_ua"] == "8000"
        # dated (the time was set): the epoch column holds the start in Unix seconds
        assert rows[0]["epoch"] == rows[0]["start"] and int(rows[0]["epoch"]) > 1577836800
        assert_png(png, min_bytes=10000)
    finally:
        vb.stop()
        shutil.rmtree(STATE_ROOT / name, ignore_errors=True)


def test_gaps_back_dating_attempts_and_interrupted_sessions_are_shown():
    """Issue 15: records in the order of their numbers; the missing numbers, a session
    dated before an earlier one (a moved clock), the attempts counted in a record, and a
    session cut by a reset."""
    rig = Rig()
    log = rig.store.log
    log.append(rec(1, start=T0 + 2 * DAY))
    log.append(rec(2, start=T0 + 4 * DAY, attempts=12))
    log.append(dict(rec(3, start=T0 + 1 * DAY), seq=5))          # 3-4 lost, dated before 2
    log.append(rec(6, start=T0 + 6 * DAY, end=8, delivered_s=130, charge_uamin=30000))
    rc, out, err = run_log([], rig)
    assert rc == 0, err
    assert "records missing (lost): 3-4" in out
    assert "dated before an earlier session (the clock was moved): 5" in out
    assert "attempts (sessions that delivered almost nothing, not logged one by one): 12" in out
    table = out.split("\n\n")[0].splitlines()[4:]
    assert [ln.split()[0] for ln in table] == ["1", "2", "5", "6"]     # by number, not date
    row6 = next(ln for ln in out.splitlines() if ln.lstrip().startswith("6 "))
    assert "interrupted" in row6 and "2:10 / 10:00" in row6
    row2 = next(ln for ln in out.splitlines() if ln.lstrip().startswith("2 "))
    assert row2.rstrip().endswith("12")
