"""What every tool does the same way (issue 16, item 11, fixed as a kind): port errors in
the same words and exit statuses, Ctrl-C as one line, a closed pipe as silence, warnings
that --quiet does not hide, a `make sim` command that runs as printed, and unknown
scenario keys answered with the nearest known one.
"""

import os
import pty
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import cli  # noqa: E402

PY = sys.executable
MISSING = "/dev/ttyNOPE-ionto-test"
# every tool that opens a port: its arguments besides --port
PORT_TOOLS = {"check": [], "flash": ["--board", "pico"], "monitor": [], "logview": [],
              "calibrate": ["--code", "000000", "--yes"]}


def tool(name, *args, timeout=120, **kw):
    return subprocess.run([PY, "-m", "tools." + name] + list(args), cwd=str(ROOT),
                          capture_output=True, text=True, timeout=timeout, **kw)


@pytest.mark.parametrize("name", sorted(PORT_TOOLS))
def test_a_missing_port_is_said_the_same_way_by_every_tool(name):
    r = tool(name, "--port", MISSING, *PORT_TOOLS[name])
    text = r.stdout + r.stderr
    assert r.returncode == 2, text
    assert "port %s does not exist" % MISSING in text and "Traceback" not in text


@pytest.mark.parametrize("name", ["check", "monitor", "logview", "calibrate"])
def test_a_virtual_board_that_is_not_running_is_suggested_with_its_name(name):
    args = ["--vboard", "zzz-not-running"] + (PORT_TOOLS[name] if name == "calibrate" else [])
    r = tool(name, *args)
    text = r.stdout + r.stderr
    assert r.returncode == 2, text
    assert "`make sim VBOARD=zzz-not-running`" in text and "Traceback" not in text


def test_port_problem_names_the_cause():
    assert "does not exist" in cli.port_problem(MISSING)
    assert cli.port_problem("socket://127.0.0.1:1") is None       # URLs: not judged here
    master, slave = pty.openpty()
    try:
        assert cli.port_problem(os.ttyname(slave)) is None         # a port that opens
    finally:
        os.close(master)
        os.close(slave)


def test_ctrl_c_is_one_line_and_130_without_a_traceback(tmp_path):
    # a tool's main waiting for the device (a pty nobody answers on) gets SIGINT
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([PY, "-m", "tools.monitor", "--port", os.ttyname(slave),
                              "--timeout", "60"], cwd=str(ROOT), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        # wait until it has asked the port (its identify line arrives on the master)
        os.read(master, 1)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 130, out + err
    assert err.strip() == "interrupted" and "Traceback" not in err


def test_entry_turns_interrupts_and_closed_pipes_into_statuses():
    def interrupted():
        raise KeyboardInterrupt

    assert cli.entry(interrupted) == cli.EXIT_INTERRUPTED
    assert cli.entry(lambda: 7) == 7


def test_a_closed_stdout_ends_the_simulator_quietly(tmp_path):
    # `simulate | head`: the reader is gone before the summary is printed
    p = subprocess.Popen([PY, "-m", "tools.simulate", "scenarios/short_circuit.json"],
                         cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=300)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert p.returncode == 0


def test_quiet_still_prints_warnings(tmp_path):
    scn = tmp_path / "late.json"
    scn.write_text('{"end_s": 5, "events": [{"t_s": 9, "contact": false}]}')
    r = tool("simulate", str(scn), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "warning: events[0] at t=9 s" in r.stderr and "never played" in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("key, near", [
    ('{"end_s": 5, "plant": {"skin_ohms": 1}}', "plant.skin_ohms: unknown key (did you "
                                                  "mean skin_ohm?)"),
    ('{"end_s": 5, "profile": {"ramp_up": 1}}', "profile.ramp_up: unknown key (did you "
                                                  "mean ramp_up_s?)"),
    ('{"end_s": 5, "events": [{"t_s": 1, "contakt": false}]}',
     "events[0].contakt: unknown key (did you mean contact?)"),
    ('{"end_s": 5, "zzzz": 1}', "zzzz: unknown key\n"),
])
def test_an_unknown_scenario_key_suggests_the_nearest(tmp_path, key, near):
    scn = tmp_path / "bad.json"
    scn.write_text(key)
    r = tool("simulate", str(scn))
    assert r.returncode == 2 and near in r.stderr, r.stderr


def test_make_sim_prints_an_mpremote_command_that_runs():
    from tools.virtual_board import mpremote_command
    cmd = mpremote_command().split()
    r = subprocess.run(cmd + ["--version"], cwd=str(ROOT), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "mpremote" in r.stdout + r.stderr, r.stdout + r.stderr


def test_make_test_hil_with_a_real_port_and_no_board_says_what_to_add():
    r = subprocess.run(["make", "-s", "test-hil", "PORT=" + MISSING], cwd=str(ROOT),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "BOARD=pico" in r.stderr and "Traceback" not in r.stderr
    assert "passed" not in r.stdout and "error" not in r.stdout.lower()


def test_make_says_the_tools_own_exit_status():
    r = subprocess.run(["make", "-s", "check", "PORT=" + MISSING], cwd=str(ROOT),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2            # make's own rule for any failure
    assert "make check: exit status 2 (no device" in r.stderr, r.stderr


def test_every_tool_entry_point_goes_through_cli_entry():
    missing = []
    for p in sorted((ROOT / "tools").glob("*.py")):
        text = p.read_text()
        if 'if __name__ == "__main__":' in text and "entry(main)" not in text:
            missing.append(p.name)
    assert missing == [], textwrap.fill(" ".join(missing))
