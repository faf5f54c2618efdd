"""tools/provision.py against the firmware's app in-process: the clock, the prescription
(and its refusals: an unknown field is named with the nearest one and nothing is sent;
a value the board refuses keeps the prescription in force), the technician code."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_calibrate_tool import CODE, in_process  # noqa: E402
from tools import provision  # noqa: E402

NOW = 1767225600          # 2026-01-01 00:00 UTC


def run(monkeypatch, capsys, *args):
    rig, opener, _ = in_process(monkeypatch)
    rc = provision.main(["--port", "rig", "--code", CODE] + list(args), opener=opener,
                        now=lambda: NOW)
    out, err = capsys.readouterr()
    return rig, rc, out, err


def rx_of(rig):
    rig.ok("service_enter", code=CODE)
    try:
        return rig.ok("rx_read")["rx"]
    finally:
        rig.ok("service_exit")


def test_prescription_clock_and_code(monkeypatch, capsys):
    rig, rc, out, err = run(monkeypatch, capsys, "--rx", "target_ua=12000", "--rx",
                            "duration_s=900", "--rx", "feet_max_ua=18000", "--new-code",
                            "4711xy")
    assert rc == 0, out + err
    assert "clock set to 2026-01-01 00:00:00 UTC" in out and "technician code changed" in out
    assert rig.app.service is False
    rig.ok("service_enter", code="4711xy")          # the new code is in force ...
    rx = rig.ok("rx_read")["rx"]
    rig.ok("service_exit")
    assert (rx["target_ua"], rx["duration_s"], rx["feet_max_ua"]) == (12000, 900, 18000)
    assert "target_ua              12000" in out


def test_an_unknown_field_names_the_nearest_and_sends_nothing(monkeypatch, capsys):
    rig, rc, out, err = run(monkeypatch, capsys, "--rx", "target_ma=12")
    assert rc == 2 and "unknown prescription field (did you mean target_ua?)" in err, err
    assert "Provisioning" not in out
    assert rx_of(rig)["target_ua"] == 15000          # the factory prescription, untouched


def test_a_value_the_board_refuses_keeps_the_prescription_in_force(monkeypatch, capsys):
    rig, rc, out, err = run(monkeypatch, capsys, "--rx", "target_ua=12000",
                            "--rx", "duration_s=99999")
    assert rc == 1 and "the board refused the prescription" in err, err
    assert "Traceback" not in err
    assert rx_of(rig)["target_ua"] == 15000           # the first group was written back
