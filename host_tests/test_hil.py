"""Hardware in the loop: the flash / check / corrupt / re-flash flow of test_flash.py, the
same functions, on a board; then patient mode's refusals, `make log` and an idle
`make monitor` through the real tools.

    make test-hil                                   the emulated Pico (also part of make test)
    make test-hil PORT=/dev/ttyACM0 BOARD=pico      a real board (or PORT=... pytest -m hil)

Without PORT the suite runs on an emulated Pico of its own (host_tests/hil_board.py: the
real MicroPython rp2 image in rp2040js, the plant on its pins), flashed and provisioned
for the run. With PORT it runs on that board, which must run MicroPython already
(docs/flashing.md: installing MicroPython) and be calibrated; BOARD names its board file.
Nothing here drives treatment current: the only drive is the self test's probe (300 µA
for 50 ms, the firmware's own contact probe). Disconnect the electrodes anyway. (The
emulated Pico's own tests, test_vpico.py, do drive treatment current into its plant.)
"""

import pytest

pytestmark = pytest.mark.hil


@pytest.fixture(scope="module")
def board_name(hil_board):
    return hil_board.board


@pytest.fixture(scope="module")
def port(hil_board):
    return hil_board.port


def test_hil_flash_check_corrupt_reflash(port, board_name):
    from test_flash import flash_check_corrupt_reflash
    flash_check_corrupt_reflash(port=port, board=board_name, victim="limits.py")


def test_hil_reflash_with_nothing_changed_sends_nothing(port, board_name):
    from test_flash import run_tool
    r = run_tool("flash", "--port", port, "--board", board_name, "--no-reset")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_tool("flash", "--port", port, "--board", board_name)
    assert r.returncode == 0 and "nothing sent" in r.stdout, r.stdout + r.stderr
    assert "the firmware answers" in r.stdout, r.stdout


def test_hil_unknown_board_is_refused_before_touching_the_port(port):
    from test_flash import run_tool
    r = run_tool("flash", "--port", port, "--board", "no_such_board")
    assert r.returncode == 2 and "no board" in r.stderr


def test_hil_patient_mode_refuses_service_commands(hil_board, port, board_name):
    """The flashed firmware answers protocol 2 and, without the technician code, refuses
    what only a technician may do (nothing is written)."""
    from test_flash import run_tool
    from tools import cli
    from tools.client import DeviceError
    assert run_tool("flash", "--port", port, "--board", board_name).returncode == 0
    dev, ident = hil_board.connect()
    try:
        assert ident["proto"] == cli.PROTOCOL and ident["service"] is False
        for cmd, fields in (("cal_read", {}), ("log_clear", {}), ("cal_hold", {"ua": 2000}),
                            ("rx_write", {"target_ua": 9000})):
            with pytest.raises(DeviceError) as e:
                dev.request(cmd, **fields)
            assert e.value.code == "E_DENIED", (cmd, e.value)
    finally:
        dev.close()


def test_hil_log_download_and_idle_monitor(port, board_name, tmp_path):
    """`make log` and `make monitor` against the board (no session: nothing is driven)."""
    from test_flash import run_tool
    r = run_tool("logview", "--port", port, "--timeout", "120", "--csv", str(tmp_path / "log.csv"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert ",seq," in (tmp_path / "log.csv").read_text().splitlines()[0]
    r = run_tool("monitor", "--port", port, "--timeout", "120", "--duration", "2")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
