"""The virtual board (tools/virtual_board.py, emulators/vboard/) driven by the real mpremote,
and the sim board's clock and control file (boards/sim.py).

The board under test is the MicroPython unix port behind a pseudo-terminal; every
mpremote call runs under a timeout (tools/remote.py). Readiness is polled, never slept
for: these tests run on loaded CI machines.
"""

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mpvm_pytest import in_ci  # noqa: E402
from tools.mpvm import available  # noqa: E402
from tools.remote import mpremote  # noqa: E402
from emulators.vboard import VirtualBoard  # noqa: E402

T = 30.0        # timeout of one mpremote call (generous: loaded machines)


def require_tools():
    """Skip (outside CI) or fail (in CI) when the unix port, mpremote or pyserial is missing."""
    missing = []
    ok, reason = available("unix")
    if not ok:
        missing.append(reason)
    for mod, pkg in (("mpremote", "mpremote"), ("serial", "pyserial")):
        if importlib.util.find_spec(mod) is None:
            missing.append("%s is not installed (pip install %s)" % (mod, pkg))
    if missing:
        msg = "virtual board unavailable: " + "; ".join(missing)
        if in_ci():
            pytest.fail(msg + " (CI is set, so this is a failure)", pytrace=False)
        pytest.skip(msg)


def start_board(state_dir, name="pytest", tcp=None):
    vb = VirtualBoard(name, state_dir)
    vb.start(tcp=tcp, owner=os.getpid())     # the board dies with this test process
    return vb


def mp(vb, *args, timeout=T, resume=False):
    r = mpremote(vb.port, list(args), timeout=timeout, resume=resume)
    assert r.ok, "mpremote %s failed: %s\n%s\n%s" % (args, r.reason(), r.out, r.err)
    return r.out


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %s s waiting for %s" % (timeout, what))
        time.sleep(0.02)


class Serial:
    """The board's port opened like a terminal program would (pyserial)."""

    def __init__(self, port):
        import serial
        self.s = serial.Serial(port, 115200, timeout=0.05)
        self.seen = b""

    def write(self, data):
        self.s.write(data)

    def expect(self, pattern, timeout=20.0):
        """Read until `pattern` appears; returns everything read up to and including it."""
        deadline = time.monotonic() + timeout
        while pattern not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError("no %r within %s s; got %r" % (pattern, timeout,
                                                                     self.seen[-500:]))
            self.seen += self.s.read(4096)
        i = self.seen.index(pattern) + len(pattern)
        out, self.seen = self.seen[:i], self.seen[i:]
        return out

    def close(self):
        self.s.close()


@pytest.fixture(scope="module")
def vb(tmp_path_factory):
    require_tools()
    board = start_board(tmp_path_factory.mktemp("vboard"), tcp=0)
    yield board
    board.stop()


@pytest.fixture
def clean_flash(vb):
    """An empty flash and a freshly reset board for the test."""
    for p in vb.flash.iterdir():
        if p.is_file():
            p.unlink()
    vb.hard_reset()
    return vb


def write_flash(vb, name, text):
    (vb.flash / name).write_text(text)


# ---- the REPL and the filesystem through mpremote ------------------------------------------

def test_mpremote_exec_eval_and_the_filesystem_are_the_flash_folder(clean_flash, tmp_path):
    vb = clean_flash
    src = tmp_path / "hello.py"
    src.write_text("GREETING = 'hello from the flash'\n")
    out = mp(vb, "fs", "cp", str(src), ":hello.py", "+", "fs", "ls", "+",
             "exec", "import hello, os; print(hello.GREETING, os.getcwd(), sorted(os.listdir('/')))",
             "+", "eval", "6*7")
    assert "hello from the flash / ['hello.py']" in out
    assert out.strip().endswith("42")
    assert (vb.flash / "hello.py").read_text() == src.read_text()
    # a file written on the board lands in the flash folder; "/" is the flash, not the host
    mp(vb, "exec", "f = open('/made_on_board.txt', 'w'); f.write('x'); f.close()")
    assert (vb.flash / "made_on_board.txt").read_text() == "x"
    out = mp(vb, "exec", "import os; print(sorted(os.listdir('/')))")
    assert "etc" not in out and "usr" not in out
    out = mp(vb, "fs", "sha256sum", ":hello.py", "+", "fs", "mkdir", ":lib", "+",
             "fs", "rm", ":made_on_board.txt", "+", "fs", "tree")
    import hashlib
    assert hashlib.sha256(src.read_bytes()).hexdigest() in out
    assert (vb.flash / "lib").is_dir() and not (vb.flash / "made_on_board.txt").exists()


def test_soft_reset_runs_boot_then_main_in_the_friendly_repl_and_stays_raw_in_raw(clean_flash):
    vb = clean_flash
    write_flash(vb, "boot.py", "print('BOOT RAN')\n")
    write_flash(vb, "main.py", "import time\nprint('MAIN RAN')\nwhile True:\n"
                               "    time.sleep_ms(5)\n")
    ser = Serial(vb.port)
    try:
        ser.write(b"\r\x03")                # interrupt main.py (running since the reset)
        ser.expect(b">>> ")
        ser.write(b"\x04")                  # Ctrl-D in the friendly REPL: soft reset
        got = ser.expect(b"MAIN RAN")
        assert b"MPY: soft reboot\r\n" in got and got.index(b"BOOT RAN") < got.index(b"MAIN RAN")
        ser.write(b"\x03")
        ser.expect(b">>> ")
        ser.write(b"\x01")                  # raw REPL
        ser.expect(b"raw REPL; CTRL-B to exit\r\n>")
        ser.write(b"\x04")                  # soft reset from raw: boot.py only, back in raw
        got = ser.expect(b"raw REPL; CTRL-B to exit\r\n>")
        assert b"OK\r\nMPY: soft reboot\r\n" in got and b"BOOT RAN" in got
        assert b"MAIN RAN" not in got
        ser.write(b"print('in raw', 1+1)\x04")
        assert b"in raw 2" in ser.expect(b"\x04>")
        ser.write(b"\x02")
        ser.expect(b">>> ")
    finally:
        ser.close()


def test_ctrl_c_reaches_a_busy_main_loop_and_raw_paste_code(clean_flash):
    vb = clean_flash
    write_flash(vb, "main.py", "x = 0\nwhile True:\n    x += 1\n")   # never sleeps
    vb.hard_reset()
    # mpremote interrupts main.py (resume: no soft reset, its globals survive)
    out = mp(vb, "exec", "print('X', x > 0)", resume=True)
    assert "X True" in out
    ser = Serial(vb.port)
    try:
        ser.write(b"\r\x01")
        ser.expect(b"raw REPL; CTRL-B to exit\r\n>")
        ser.write(b"\x05A\x01")             # raw-paste, as mpremote sends code
        ser.expect(b"R\x01")               # supported; a 2-byte window size follows
        ser.write(b"while True:\n    pass\n\x04")
        ser.expect(b"\x04")                 # end of data acknowledged: the code runs
        from emulators.vboard.daemon import _catches_sigint
        vm = vb.state()["vm_pid"]
        wait_for(lambda: _catches_sigint(vm), what="the code to run")
        ser.write(b"\x03")                  # the terminal stays raw: this must become SIGINT
        assert b"KeyboardInterrupt" in ser.expect(b"\x04>", timeout=20)
        ser.write(b"\x02")
        ser.expect(b">>> ")
    finally:
        ser.close()


def test_hard_reset_from_mpremote_reset_and_from_the_command_keeps_files(clean_flash):
    vb = clean_flash
    write_flash(vb, "keep.txt", "kept")
    write_flash(vb, "main.py", "import machine\nCAUSE = machine.reset_cause()\n")
    before = vb.state()["resets"]["power"]
    mp(vb, "reset")
    wait_for(lambda: vb.state()["resets"]["power"] == before + 1, what="power-up")
    out = mp(vb, "exec", "print('CAUSE', CAUSE)", resume=True)
    assert "CAUSE 1" in out                 # machine.PWRON_RESET
    vb.hard_reset()
    assert vb.state()["resets"]["power"] == before + 2
    assert "kept" in mp(vb, "fs", "cat", ":keep.txt")


def test_socket_url_serves_the_same_board(vb):
    url = vb.url
    assert url and url.startswith("socket://127.0.0.1:")
    r = mpremote(url, ["exec", "print('over', 'tcp')"], timeout=T)
    assert r.ok and "over tcp" in r.out, r


def test_several_boards_run_at_once(vb, tmp_path):
    other = start_board(tmp_path / "second", name="second")
    try:
        assert other.port != vb.port
        mp(other, "exec", "f = open('who.txt', 'w'); f.write('second'); f.close()")
        mp(vb, "exec", "f = open('who.txt', 'w'); f.write('first'); f.close()")
        assert (other.flash / "who.txt").read_text() == "second"
        assert (vb.flash / "who.txt").read_text() == "first"
    finally:
        assert other.stop()
    assert not other.running


def test_stale_port_answers_nothing_and_the_cli_reports_it(tmp_path):
    from tools import virtual_board
    vb = VirtualBoard("nobody", tmp_path)
    assert vb.state() is None and vb.port is None
    (tmp_path / "state.json").write_text(json.dumps({"pid": 2 ** 22 + 12345, "port": "/x"}))
    assert vb.state() is None and not (tmp_path / "state.json").exists()
    assert virtual_board.main(["port", "--name", "no-such-board-here"]) == 1


# ---- the sim board on the virtual board: the load from the control file -----------------

SIM_MAIN = """import os, board
hw = board.build()
n = 0
while True:
    board.sleep_us(5000)
    n += 1
    if n % 10 == 0:
        p = board._plant
        with open('status.tmp', 'w') as f:
            f.write('%s %s %s %s' % (p.contact, p.skin_ohm, board.ticks_us(), board.control_error))
        os.rename('status.tmp', 'status.txt')
"""


def _status(vb):
    try:
        return (vb.flash / "status.txt").read_text().split(" ", 3)
    except OSError:
        return None


def test_the_running_sim_board_follows_the_control_file(clean_flash):
    vb = clean_flash
    for name, src in (("board.py", ROOT / "boards" / "sim.py"),
                      ("plant.py", ROOT / "simulation" / "plant.py"),
                      ("ticks.py", ROOT / "firmware" / "ticks.py")):
        (vb.flash / name).write_bytes(src.read_bytes())
    write_flash(vb, "main.py", SIM_MAIN)
    vb.set_load(contact=False, speed=1)
    vb.hard_reset()
    wait_for(lambda: (_status(vb) or [None])[0] == "False", what="the loop to run")
    vb.set_load(contact=True, skin_ohm=1234)
    st = wait_for(lambda: (lambda s: s if s and s[0] == "True" else None)(_status(vb)),
                  what="hands in")
    assert float(st[1]) == 1234.0 and st[3] == "None"
    # speed: virtual time runs ~20x the wall clock
    vb.set_load(speed=20)
    t0 = int(wait_for(lambda: _status(vb), what="status")[2])
    w0 = time.monotonic()
    wait_for(lambda: time.monotonic() - w0 > 1.0 and
             int(_status(vb)[2]) - t0 > 4_000_000, timeout=30, what="4 virtual s")
    assert int(_status(vb)[2]) - t0 < 60_000_000 * (time.monotonic() - w0)
    # a bad file is refused as a whole: the load stays, the board says why
    (vb.flash / "plant.json").write_text('{"contact": false, "skin_ohms": 5}')
    st = wait_for(lambda: (lambda s: s if s and s[3] != "None" else None)(_status(vb)),
                  what="the refusal")
    assert st[0] == "True" and "skin_ohms" in st[3]
    (vb.flash / "plant.json").write_text('{"contact": false}')
    wait_for(lambda: (lambda s: s and s[0] == "False" and s[3] == "None")(_status(vb)),
             what="hands out")


# ---- boards/sim.py on CPython: build() unchanged, the clock, the control file ----------------

@pytest.fixture
def sim():
    import sim as board
    saved = dict(board.__dict__)
    yield board
    for k in ("_plant", "_now", "_virt", "_wall0", "_next_poll", "_speed", "_control_text",
              "_control_plant", "control_error"):
        setattr(board, k, saved[k])


def test_build_is_unchanged_for_host_tests(sim):
    from plant import Plant
    hw = sim.build()
    assert isinstance(hw.plant, Plant) and hw.plant.compliance_v == sim.COMPLIANCE_MV / 1000
    p = Plant()
    assert sim.build(plant=p).plant is p
    assert sim.build(skin_ohm=777.0, watchdog=True).plant.skin_ohm == 777.0
    assert hw.plant.enable == 0 and hw.plant.ref_code == 0


def test_sleep_us_advances_the_clock_and_the_plant_in_control_periods(sim, tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plant.json").write_text('{"speed": 0, "contact": true}')
    hw = sim.build()
    steps = []
    real_step = hw.plant.step
    hw.plant.step = lambda dt: (steps.append(dt), real_step(dt))
    t0 = sim.ticks_us()
    sim.sleep_us(12000)
    assert sim.ticks_us() - t0 == 12000
    assert steps == [0.005, 0.005, 0.002]
    assert hw.plant.contact is True          # the control file, read at the first sleep


def test_control_file_is_validated_as_a_whole(sim):
    assert sim.parse_control('{"contact": true, "skin_ohm": 1500, "speed": 0}') == {
        "contact": True, "skin_ohm": 1500.0, "speed": 0.0}
    for bad in ('[1]', '{"contact": 1}', '{"skin_ohm": -5}', '{"nope": 1}', 'not json',
                '{"lift_area": 0}', '{"skin_ohm": true}', '{"compliance_v": 500}'):
        with pytest.raises(ValueError):
            sim.parse_control(bad)


def test_poll_control_applies_changes_and_keeps_the_load_on_a_bad_file(sim, tmp_path,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    hw = sim.build()
    sim.poll_control()
    assert hw.plant.contact is False and sim.control_error is None
    (tmp_path / "plant.json").write_text('{"contact": true, "water_ohm": 55}')
    sim.poll_control()
    assert hw.plant.contact is True and hw.plant.water_ohm == 55.0
    (tmp_path / "plant.json").write_text('{"contact": false, "bogus": 1}')
    sim.poll_control()
    assert hw.plant.contact is True and "bogus" in sim.control_error
    (tmp_path / "plant.json").write_text('{"contact": true}')
    sim.poll_control()
    hw2 = sim.build()                        # a new plant gets the same file
    sim.poll_control()
    assert hw2.plant.contact is True and sim.control_error is None


# ---- the virtual board as a board: no orphan interpreter, one firmware per flash folder,
# ---- stop after make clean (issue 15) -------------------------------------------------------

def _vm_gone(pid):
    from emulators.board import alive
    return not alive(pid)


def test_the_interpreter_dies_with_its_host_program_even_on_sigkill(tmp_path):
    require_tools()
    import signal
    from emulators.vboard.daemon import _catches_sigint
    vb = start_board(tmp_path / "orphan", name="orphan")
    try:
        # firmware that never touches the console (a treatment loop): without the fix it
        # ran on after its host program's death, with no port (an idle REPL died anyway
        # on the closed console)
        write_flash(vb, "main.py", "import time\nopen('looping', 'w').close()\n"
                                   "while True:\n    time.sleep_ms(5)\n")
        vb.hard_reset()                     # an interpreter from a restart must die too
        st = vb.state()
        vm = st["vm_pid"]
        wait_for(lambda: (vb.flash / "looping").exists() and _catches_sigint(vm),
                 what="main.py's loop to run")
        os.kill(st["pid"], signal.SIGKILL)  # no handler, no clean-up: only the kernel acts
        wait_for(lambda: _vm_gone(vm), timeout=20, what="interpreter %d to die" % vm)
        # and the flash folder is free again at once: the same board starts
        st2 = start_board(tmp_path / "orphan", name="orphan").state()
        assert st2["pid"] != st["pid"]
    finally:
        vb.stop()


def test_one_firmware_per_flash_folder(tmp_path):
    require_tools()
    import subprocess
    from emulators.vboard import BoardError
    vb = start_board(tmp_path / "first", name="first")
    try:
        st = vb.state()
        # a second host program on the same flash folder refuses (exit 3), naming the board
        r = subprocess.run([sys.executable, "-m", "emulators.vboard.daemon", "--state",
                            str(tmp_path / "second"), "--flash", str(vb.flash)],
                           cwd=str(ROOT), capture_output=True, text=True, timeout=60)
        assert r.returncode == 3, r.stderr
        assert "in use by virtual board first" in r.stderr and str(st["pid"]) in r.stderr
        assert "stop it first" in r.stderr
        # the board lost its state file (a folder cleaned under it): start refuses too,
        # instead of starting a second firmware on the same files
        (vb.state_dir / "state.json").unlink()
        with pytest.raises(BoardError) as e:
            VirtualBoard("first", tmp_path / "first").start(owner=os.getpid())
        assert "already runs" in str(e.value) and str(st["pid"]) in str(e.value)
        assert len(vb.daemons()) == 1
    finally:
        assert vb.stop()                    # found by its command line: no state file
    assert not vb.daemons() and _vm_gone(st["vm_pid"])


def _make(*args, env_extra=None, cwd=ROOT, timeout=120):
    import subprocess
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    env.update(env_extra or {})
    return subprocess.run(["make", "-s", "--no-print-directory"] + list(args), cwd=str(cwd),
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_sim_stop_finds_a_board_after_its_build_folder_is_gone():
    """make clean removes build/ (and the venv): make sim-stop still finds the board, by its
    host program's command line, with the system's Python."""
    require_tools()
    import shutil
    from emulators.vboard import STATE_ROOT
    name = "pytest-clean-%d" % os.getpid()
    vb = VirtualBoard(name)
    st = vb.start(owner=os.getpid())
    try:
        shutil.rmtree(vb.state_dir)                 # what make clean did to it
        assert vb.state() is None
        r = _make("sim", "VBOARD=" + name)          # no second firmware
        assert r.returncode != 0
        assert "already runs" in r.stderr and "make sim-stop VBOARD=" + name in r.stderr, r.stderr
        r = _make("sim-stop", "VBOARD=" + name, "PY=/nonexistent/python")   # no venv
        assert r.returncode == 0, r.stderr
        assert "virtual board %s: stopped" % name in r.stdout, r.stdout
        wait_for(lambda: _vm_gone(st["pid"]) and _vm_gone(st["vm_pid"]), timeout=30,
                 what="the board to stop")
        r = _make("sim-stop", "VBOARD=" + name)
        assert "was not running" in r.stdout
    finally:
        vb.stop()
        shutil.rmtree(STATE_ROOT / name, ignore_errors=True)


def test_make_clean_stops_boards_first_and_keeps_calibration_reports(tmp_path):
    """make clean on a copy of the Makefile (the real one would remove this checkout's venv):
    the boards are stopped before anything is removed; out/calibration/ stays."""
    import shutil
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for d in (".venv/bin", "node_modules/x", "build/vboard/sim/flash", "out/soak",
              "out/calibration", ".hypothesis"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "out" / "demo_trace.csv").write_text("t\n")
    report = tmp_path / "out" / "calibration" / "cal_e6614103_20250101.txt"
    report.write_text("calibration report\n")
    probe = "test -d build && echo BOARDS-STOPPED-WITH-BUILD-PRESENT"
    r = _make("clean", "CLEAN_BOARDS=" + probe, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "BOARDS-STOPPED-WITH-BUILD-PRESENT" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", "out"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["calibration"]
    assert report.read_text() == "calibration report\n"
    assert "kept out/calibration/" in r.stdout
    # a failing stop refuses the clean: nothing removed
    (tmp_path / "build").mkdir()
    r = _make("clean", "CLEAN_BOARDS=false", cwd=tmp_path)
    assert r.returncode != 0 and (tmp_path / "build").is_dir()
    # and the real recipe stops boards with the tools' own command
    r = _make("-n", "clean")
    assert "tools.virtual_board stop --all" in r.stdout
    assert r.stdout.index("stop --all") < r.stdout.index("rm -rf")
