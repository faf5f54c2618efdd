"""tools/meters.py and tools/sim_meter.py: the reference meters of the calibration.

The SCPI path is real: pyvisa with its pure-Python backend opens the simulated meter's
pseudo-terminal as a serial instrument (ASRL...::INSTR), as it would a bench DMM on a
USB-serial cable. The meter file is written here by a thread standing in for the
virtual board (boards/sim.py writes it on the board).
"""

import json
import os
import threading

import pytest

from tools import meters
from tools.sim_meter import IDN, ScpiMeter


class Board(threading.Thread):
    """Writes a new one-second reading every 20 ms, like the virtual board's meter."""

    def __init__(self, path, ua=10000.0, v=10.0):
        threading.Thread.__init__(self, daemon=True)
        self.path = path
        self.ua = ua
        self.v = v
        self.seq = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.02):
            self.seq += 1
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"seq": self.seq, "ua": self.ua, "v": self.v}, f)
            os.replace(tmp, self.path)


@pytest.fixture
def board(tmp_path):
    b = Board(str(tmp_path / "meter.json"))
    b.start()
    yield b
    b.stop.set()
    b.join()


def test_sim_meter_waits_for_a_fresh_second(board):
    m = meters.SimMeter(board.path, timeout=5)
    seq = board.seq
    ua, mv = m.read(10000)
    assert (ua, mv) == (10000.0, 10000.0)
    assert board.seq >= seq + 2


def test_sim_meter_times_out_with_a_clear_message(tmp_path):
    m = meters.SimMeter(str(tmp_path / "meter.json"), timeout=0.2)
    with pytest.raises(meters.MeterError, match="meter"):
        m.read(10000)


def test_visa_meter_through_pyvisa_on_a_pty(board):
    board.ua = 12345.678
    scpi = ScpiMeter(board.path, timeout=5).start()
    try:
        m = meters.VisaMeter(scpi.resource)
        try:
            assert m.idn == IDN
            ua, mv = m.read(12000)
            assert ua == pytest.approx(12345.678, rel=1e-6)
            assert mv is None           # a current meter: the voltage comes from I x R
        finally:
            m.close()
    finally:
        scpi.close()


def test_visa_meter_missing_is_a_clear_error():
    with pytest.raises(meters.MeterError, match="ASRL/dev/nonexistent"):
        meters.VisaMeter("ASRL/dev/nonexistent::INSTR", timeout_ms=500)


def test_manual_meter_asks_again_on_bad_input():
    answers = iter(["abc", "99", "10,25"])
    said = []
    m = meters.ManualMeter(ask=lambda prompt: next(answers), say=said.append)
    assert m.read(10000) == (10250.0, None)
    assert "not a number" in said[0] and "not plausible" in said[1]


def test_open_meter_refuses_unknown_specs():
    with pytest.raises(meters.MeterError, match="unknown meter"):
        meters.open_meter("dmm")


def test_the_host_and_the_sim_board_name_the_same_files():
    import tools.paths  # noqa: F401  (boards/ on sys.path)
    import sim
    from emulators.vboard import control
    assert control.METER_FILE == sim.METER_FILE and control.CONTROL_FILE == sim.CONTROL_FILE
