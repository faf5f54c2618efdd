"""End to end: `python -m tools.calibrate` on a virtual board whose unit has analog errors.

The board's plant has a source gain error of +5 % and offset of +100 µA, a current sense
reading 5 % high with a +100 µA offset, a voltage divider 3 % low, and ADC noise; the
load is a 1 kΩ resistor. The technician's reference meter is the simulated SCPI meter
(tools/sim_meter.py) reached through pyvisa on a pseudo-terminal: it reads the plant's
TRUE current. The treatment error is judged on that truth too: closed-loop sessions at
2..25 mA before and after calibrating; after, every point must be within 0.5 %.
"""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_flash import run_tool  # noqa: E402
from test_virtual_board import require_tools, wait_for  # noqa: E402
from tools import cli  # noqa: E402
from tools.client import Client  # noqa: E402
from tools.meters import SimMeter  # noqa: E402
from tools.sim_meter import ScpiMeter  # noqa: E402
from emulators.vboard import STATE_ROOT, VirtualBoard  # noqa: E402

UNIT_ERRORS = {"source_gain_error": 0.05, "source_offset_ua": 100.0,
               "adc_i_gain_error": 0.05, "adc_i_offset_lsb": 100.0 * 4096 / 33000,
               "adc_v_gain_error": -0.03, "adc_noise_lsb": 1.5}
RESISTOR = {"contact": True, "nonlinear": False, "offset_v": 0.0, "skin_ohm": 1.0,
            "water_ohm": 0.0, "body_ohm": 999.0}          # 1 kΩ in all
TARGETS_MA = (2, 5, 10, 15, 20, 25)
CODE = "000000"      # the factory technician code (docs/protocol.md)


@pytest.fixture(scope="module")
def board():
    require_tools()
    name = "pytest-cal-%d" % os.getpid()
    vb = VirtualBoard(name)
    vb.start(owner=os.getpid())
    r = run_tool("flash", "--vboard", name)
    assert r.returncode == 0, r.stdout + r.stderr
    vb.set_load(speed=0.0, meter=True, **dict(RESISTOR, **UNIT_ERRORS))
    yield vb
    vb.stop()
    shutil.rmtree(STATE_ROOT / name, ignore_errors=True)


def treatment_errors(vb):
    """{target mA: true current error %} of closed-loop DC sessions, on the plant's truth."""
    meter = SimMeter(vb.meter_path(), timeout=60)
    out = {}
    with Client(vb.port, timeout=5) as dev:
        cli.identify(dev, timeout=60)          # the board may still be booting
        for ma in TARGETS_MA:
            st = dev.status()["state"]
            if st in ("DONE", "FAULT"):
                dev.reset()
            dev.start(target_ua=ma * 1000, duration_s=300, ramp_up_s=30)
            wait_for(lambda: dev.status()["state"] == "TREAT", timeout=120,
                     what="TREAT at %d mA" % ma)
            meter.read(0)                                  # settle one more second
            ua, _ = meter.read(ma * 1000)
            assert dev.status()["state"] == "TREAT"
            out[ma] = 100.0 * (ua - ma * 1000) / (ma * 1000)
            dev.stop()
            wait_for(lambda: dev.status()["state"] == "DONE", timeout=120, what="DONE")
            dev.reset()
    return out


def test_calibration_brings_the_treatment_error_under_half_a_percent(board, tmp_path):
    before = treatment_errors(board)
    assert max(abs(e) for e in before.values()) > 4.0, before   # the unit is off by ~5 %
    scpi = ScpiMeter(board.meter_path(), timeout=60).start()
    load_before = board.load()
    try:
        r = run_tool("calibrate", "--vboard", board.name, "--meter", "visa:" + scpi.resource,
                     "--load-ohm", "1000", "--code", CODE, "--tech", "pytest", "--yes",
                     "--out", str(tmp_path))
    finally:
        scpi.close()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "calibration load in place" in r.stdout and "calibration load removed" in r.stdout
    assert board.load() == load_before                   # the tool put the load back
    assert "the firmware answers" in r.stdout            # reset: the watchdog is off again
    reports = sorted(p.name for p in tmp_path.iterdir())
    assert len(reports) == 2 and reports[0].endswith(".png") and reports[1].endswith(".txt")
    text = (tmp_path / reports[1]).read_text()
    assert "calibrated and verified" in text and text.count("PASS") == 2, text
    assert (tmp_path / reports[0]).stat().st_size > 20000
    after = treatment_errors(board)
    print("error before %s\nerror after %s" % (
        json.dumps({k: round(v, 3) for k, v in before.items()}),
        json.dumps({k: round(v, 3) for k, v in after.items()})))
    assert max(abs(e) for e in after.values()) < 0.5, after


def test_a_wrong_resistor_is_refused_and_nothing_is_written(board, tmp_path):
    # --board-load: the board keeps its 1 kOhm; the technician says 1.2 kOhm
    cal_before = (board.flash / "data" / "cal.rec").read_bytes() \
        if (board.flash / "data" / "cal.rec").exists() else None
    r = run_tool("calibrate", "--vboard", board.name, "--meter", "sim:" + board.name,
                 "--load-ohm", "1200", "--board-load", "--code", CODE, "--yes",
                 "--out", str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "wrong resistor" in r.stderr and "not the 1200 ohm" in r.stderr
    assert "Traceback" not in r.stderr and "watchdog" in r.stdout
    after = (board.flash / "data" / "cal.rec").read_bytes() \
        if (board.flash / "data" / "cal.rec").exists() else None
    assert after == cal_before


def test_with_no_load_set_the_tool_brings_its_own(board, tmp_path):
    # the board's hands are out and its skin is a polarizing one: make calibrate still works
    board.set_load(contact=False, offset_v=2.0, nonlinear=True, skin_ohm=2000.0)
    before = board.load()
    r = run_tool("calibrate", "--vboard", board.name, "--meter", "sim:" + board.name,
                 "--code", CODE, "--yes", "--out", str(tmp_path))
    after = board.load()
    board.set_load(**RESISTOR)
    assert r.returncode == 0, r.stdout + r.stderr
    assert after == before                       # its load is back as it was
    text = r.stdout
    assert "calibration load in place (a 1000 ohm resistor" in text and "PASS" in \
        "".join(p.read_text() for p in tmp_path.glob("*.txt"))


def test_missing_port_exits_2_without_a_traceback():
    r = run_tool("calibrate", "--port", "/dev/nonexistent-port", "--code", CODE, "--yes")
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr


# ---- in-process, in virtual time (the firmware's app behind a pyserial-like port) --------

class TruthMeter:
    """Reads the rig's plant like a bench meter; Ctrl-C at reading `interrupt_at`."""

    def __init__(self, rig, interrupt_at=None):
        self.rig = rig
        self.reads = 0
        self.interrupt_at = interrupt_at

    def describe(self):
        return "truth"

    def read(self, nominal_ua):
        self.reads += 1
        if self.reads == self.interrupt_at:
            raise KeyboardInterrupt
        self.rig.seconds(1.0)
        p = self.rig.bench.plant
        return p.true_ua, p.v_load * 1000.0


def in_process(monkeypatch, **plant):
    sys.path.insert(0, str(Path(__file__).resolve().parent / "mp"))
    from protorig import Rig
    from test_client import DevicePort
    from tools import calibrate
    load = dict(RESISTOR, **plant)
    del load["contact"]                 # the rig's hands are in
    rig = Rig(service=False, **load)
    port = DevicePort(rig)
    monkeypatch.setattr(calibrate, "_sleep", lambda s: rig.seconds(s))
    opener = lambda name, timeout: Client(port, timeout=timeout, clock=lambda: port.now)  # noqa
    return rig, opener, calibrate


def test_ctrl_c_mid_way_stops_the_hold_and_keeps_the_old_calibration(monkeypatch, tmp_path,
                                                                      capsys):
    rig, opener, calibrate = in_process(monkeypatch, source_gain_error=0.05)
    before = dict(rig.app.store.cal.data)
    meter = TruthMeter(rig, interrupt_at=3)
    rc = calibrate.main(["--port", "rig", "--code", CODE, "--yes", "--out", str(tmp_path)],
                        opener=opener, meter=meter)
    err = capsys.readouterr().err
    assert rc == 130 and "interrupted" in err and "Traceback" not in err
    assert rig.app.store.cal.data == before
    assert rig.state() in ("RAMP_DOWN", "DONE") and rig.app.service is False
    assert rig.until(6, 30) and rig.bench.plant.true_ua == 0.0
    assert list(tmp_path.iterdir()) == []


def test_a_weak_source_is_refused_and_nothing_is_written(monkeypatch, tmp_path, capsys):
    rig, opener, calibrate = in_process(monkeypatch, source_gain_error=-0.3)
    before = dict(rig.app.store.cal.data)
    rc = calibrate.main(["--port", "rig", "--code", CODE, "--yes", "--out", str(tmp_path)],
                        opener=opener, meter=TruthMeter(rig))
    err = capsys.readouterr().err
    assert rc == 1 and "refused, nothing written" in err, err
    assert "reference output gain 0.700" in err
    assert rig.app.store.cal.data == before


def test_a_broken_shunt_trips_the_hold_and_nothing_is_written(monkeypatch, tmp_path, capsys):
    # the sense channel reads 40 % high: the hold's measured current passes its trip level
    rig, opener, calibrate = in_process(monkeypatch, adc_i_gain_error=0.4)
    before = dict(rig.app.store.cal.data)
    rc = calibrate.main(["--port", "rig", "--code", CODE, "--yes", "--out", str(tmp_path)],
                        opener=opener, meter=TruthMeter(rig))
    err = capsys.readouterr().err
    assert rc == 1 and "safety monitor tripped (overcurrent)" in err, err
    assert rig.app.store.cal.data == before and rig.bench.plant.true_ua == 0.0


def test_help_lists_the_meters_and_examples():
    r = run_tool("calibrate", "--help")
    assert r.returncode == 0
    for word in ("--meter", "visa:", "--load-ohm", "examples:", "Ctrl-C"):
        assert word in r.stdout
