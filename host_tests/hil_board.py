"""The board the hardware-in-the-loop tests run on: a real one, or the emulated Pico.

With PORT in the environment (`make test-hil PORT=/dev/ttyACM0 BOARD=pico`), the tests
run on that board, which must run MicroPython and be calibrated. Without PORT they run on
an emulated Pico of their own (emulators/vpico: the real MicroPython rp2 image in rp2040js,
the plant on boards/pico.py's pins), which this module starts with a blank flash, flashes
with `tools.flash`, and provisions as a technician would (emulators/vpico/provision.py:
service mode, the calibration of its ideal plant, a prescription with the shortest ramps,
so that a treatment fits in a test). Node.js or rp2040js missing: skipped outside CI, a failure in CI.

`hil_board` (session-scoped fixture, registered in conftest.py) -> HilBoard.
"""

import os
import shutil
import sys
import time

import pytest

PORT = os.environ.get("PORT", "").strip()
BOARD = os.environ.get("BOARD", "").strip()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOT_S = 120.0          # wall time for a (busy, emulated) board to answer after a reset


class HilBoard:
    """port, board (file name), emulated (a VirtualPico, or None for a real board)."""

    def __init__(self, port, board, emulated=None):
        self.port = port
        self.board = board
        self.emulated = emulated

    def connect(self, timeout=BOOT_S):
        """(client, identify reply): the firmware answering on the port."""
        from tools import cli
        dev, ident, _ = cli.connect(self.port, timeout=timeout)
        dev.timeout = 30.0
        return dev, ident


def _in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(msg):
    if _in_ci():
        pytest.fail(msg + " (CI is set, so this is a failure)", pytrace=False)
    pytest.skip(msg)


def _real_board():
    from emulators import find_by_port
    from tools import manifest as mf
    emulated = find_by_port(PORT)
    if emulated is not None:           # a rehearsal on a running emulated board
        return HilBoard(PORT, BOARD or emulated.BOARD, emulated)
    if BOARD not in mf.boards() or BOARD == "sim":
        pytest.fail("set BOARD to the real board's file (%s), e.g. make test-hil PORT=%s "
                    "BOARD=pico" % (", ".join(b for b in mf.boards() if b != "sim"), PORT),
                    pytrace=False)
    return HilBoard(PORT, BOARD)


@pytest.fixture(scope="session")
def hil_board():
    if PORT:
        yield _real_board()
        return
    from emulators.vpico import STATE_ROOT, PicoError, VirtualPico, check_prerequisites
    try:
        check_prerequisites()
    except PicoError as e:
        _unavailable("emulated Pico unavailable: %s" % e)
    import importlib.util
    if importlib.util.find_spec("mpremote") is None:
        _unavailable("mpremote is not installed (pip install -r requirements.txt)")
    name = "hil-%d" % os.getpid()
    vp = VirtualPico(name)
    t0 = time.monotonic()
    st = vp.start(owner=os.getpid(), fresh=True)
    hb = HilBoard(st["port"], "pico", vp)
    try:
        from test_flash import run_tool
        r = run_tool("flash", "--port", hb.port, "--board", "pico", timeout=600)
        assert r.returncode == 0, "flashing the emulated Pico failed:\n" + r.stdout + r.stderr
        t_flash = time.monotonic() - t0
        from emulators.vpico.provision import provision
        provision(vp, hb.port, BOOT_S)
        sys.stderr.write("\n[emulated Pico %s: booted and flashed in %.1f s, provisioned in "
                         "%.1f s]\n" % (st["port"], t_flash, time.monotonic() - t0 - t_flash))
        yield hb
    finally:
        vp.stop()
        if not os.environ.get("KEEP_VPICO"):
            shutil.rmtree(STATE_ROOT / name, ignore_errors=True)
