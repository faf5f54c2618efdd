"""Hardware in the loop: the flash / check / corrupt / re-flash flow of test_flash.py, the
same functions, on a real board; then patient mode's refusals, `make log` and an idle
`make monitor` through the real tools.

    make test-hil PORT=/dev/ttyACM0 BOARD=pico      (or: PORT=... BOARD=... pytest -m hil)

Runs only when the environment names the board's port (PORT); BOARD names its board
file (pico, esp32; sim only when PORT is a running virtual board: a rehearsal of these
tests, e.g. `make sim` then `make test-hil PORT=<its port> BOARD=sim`). The board must run MicroPython already (docs/flashing.md: installing
MicroPython). Nothing here drives treatment current: the only drive is the self test's
probe (300 µA for 50 ms, the firmware's own contact probe). Disconnect the electrodes
anyway.
"""

import os

import pytest

PORT = os.environ.get("PORT", "").strip()
BOARD = os.environ.get("BOARD", "").strip()

pytestmark = [
    pytest.mark.hil,
    pytest.mark.skipif(not PORT, reason="hardware-in-the-loop: no board given; run "
                       "`make test-hil PORT=/dev/ttyACM0 BOARD=pico` (PORT names a real board)"),
]


@pytest.fixture(scope="module")
def board_name():
    from test_virtual_board import require_tools
    require_tools()
    from tools import manifest as mf
    from emulators.vboard import find_by_port
    dry_run = BOARD == "sim" and find_by_port(PORT) is not None   # rehearsal on a virtual board
    if BOARD not in mf.boards() or (BOARD == "sim" and not dry_run):
        pytest.fail("set BOARD to the real board's file (%s), e.g. make test-hil PORT=%s "
                    "BOARD=pico" % (", ".join(b for b in mf.boards() if b != "sim"), PORT),
                    pytrace=False)
    return BOARD


def test_hil_flash_check_corrupt_reflash(board_name):
    from test_flash import flash_check_corrupt_reflash
    flash_check_corrupt_reflash(port=PORT, board=board_name, victim="limits.py")


def test_hil_reflash_with_nothing_changed_sends_nothing(board_name):
    from test_flash import run_tool
    assert run_tool("flash", "--port", PORT, "--board", board_name).returncode == 0
    r = run_tool("flash", "--port", PORT, "--board", board_name)
    assert r.returncode == 0 and "nothing sent" in r.stdout, r.stdout + r.stderr


def test_hil_unknown_board_is_refused_before_touching_the_port():
    from test_flash import run_tool
    r = run_tool("flash", "--port", PORT, "--board", "no_such_board")
    assert r.returncode == 2 and "no board" in r.stderr


def test_hil_patient_mode_refuses_service_commands(board_name):
    """The flashed firmware answers protocol 2 and, without the technician code, refuses
    what only a technician may do (nothing is written)."""
    from test_flash import run_tool
    from tools import cli
    from tools.client import DeviceError
    assert run_tool("flash", "--port", PORT, "--board", board_name).returncode == 0
    dev, ident, _ = cli.connect(PORT, timeout=10.0)
    try:
        assert ident["proto"] == cli.PROTOCOL and ident["service"] is False
        for cmd, fields in (("cal_read", {}), ("log_clear", {}), ("cal_hold", {"ua": 2000}),
                            ("rx_write", {"target_ua": 9000})):
            with pytest.raises(DeviceError) as e:
                dev.request(cmd, **fields)
            assert e.value.code == "E_DENIED", (cmd, e.value)
    finally:
        dev.close()


def test_hil_log_download_and_idle_monitor(board_name, tmp_path):
    """`make log` and `make monitor` against the board (no session: nothing is driven)."""
    from test_flash import run_tool
    r = run_tool("logview", "--port", PORT, "--timeout", "10", "--csv", str(tmp_path / "log.csv"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert ",seq," in (tmp_path / "log.csv").read_text().splitlines()[0]
    r = run_tool("monitor", "--port", PORT, "--timeout", "10", "--duration", "2")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
