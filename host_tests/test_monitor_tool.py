"""tools/monitor.py (`make monitor`) and tools/cli.py (port, identify check, exit statuses).

Most tests run the tool's `main()` against the firmware's app in-process in virtual time
(test_client.DevicePort: reading the port runs the device's loop, and the client's clock
is the device's clock, so a 5-minute session takes about a second and timeouts cost no
wall time). The exit-2 checks also run the real command line in a subprocess (a missing
port, a pty nobody answers on), and one end-to-end test runs `python -m tools.monitor`
against a virtual board (the MicroPython unix port running the flashed firmware on a pty).
"""

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

from protorig import Rig  # noqa: E402
from test_client import DevicePort  # noqa: E402
from tools import cli, monitor  # noqa: E402
from tools.client import Client  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WALL0 = 1767225600.0          # host time of the virtual runs (2026-01-01)


def device(rig=None, **kw):
    """(opener for tools' main(), port): the in-process device in virtual time."""
    port = DevicePort(rig or Rig(skin_ohm=1000.0), **kw)

    def opener(name, timeout):
        return Client(port, timeout=timeout, clock=lambda: port.now)
    return opener, port


class Tty(io.StringIO):
    def isatty(self):
        return True


def run_monitor(args, rig=None, out=None, port_hook=None, **kw):
    opener, port = device(rig, **kw)
    if port_hook:
        port_hook(port)
    out = out if out is not None else io.StringIO()
    err = io.StringIO()
    rc = monitor.main(["--port", "rig"] + args, opener=opener, out=out, err=err,
                      wall=lambda: WALL0 + port.now)
    return rc, out.getvalue(), err.getvalue(), port


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_png(path, min_bytes=20000):
    """The PNG exists, is big enough and is not a blank canvas."""
    import matplotlib.image as mpimg
    assert path.exists() and path.stat().st_size > min_bytes, path
    img = mpimg.imread(str(path))
    assert img.shape[0] > 400 and img.shape[1] > 600
    assert img[..., :3].std() > 0.05, "the image is (nearly) blank"


def hook_reads(port, fn):
    """Call fn(port) before every host read of the port (to act in virtual time)."""
    orig = port.read

    def read(n=1):
        fn(port)
        return orig(n)
    port.read = read


def legend_texts(ax):
    """The labels of every legend of `ax` (a second legend is kept as an artist)."""
    from matplotlib.legend import Legend
    return {t.get_text() for a in ax.get_children() if isinstance(a, Legend)
            for t in a.get_texts()}


def no_traceback(*texts):
    for t in texts:
        assert "Traceback" not in t, t


# ---- a session, recorded and plotted -------------------------------------------------------------

def test_monitor_records_a_whole_session_and_plots_it(tmp_path):
    rig = Rig(skin_ohm=1000.0)
    rig.ok("start", target_ua=9000, duration_s=300)
    rec, png = tmp_path / "run.csv", tmp_path / "run.png"
    t0 = time.monotonic()
    rc, out, err, port = run_monitor(["--record", str(rec), "--plot", str(png), "--hz", "10"],
                                     rig)
    wall = time.monotonic() - t0
    assert rc == 0, err
    no_traceback(out, err)
    assert "session over: DONE, end completed, fault ok" in out
    rows = read_csv(rec)
    assert list(rows[0]) == list(monitor.COLUMNS)
    states = [r["state"] for r in rows]
    for s in ("WAIT_CONTACT", "RAMP_UP", "TREAT", "RAMP_DOWN", "DONE"):
        assert s in states, s
    assert states[-1] == "DONE"
    # one row per telemetry line at 10 Hz: 300 s (the timer runs from RAMP_UP) + the
    # contact probe + 15 s of ramp down
    assert 3150 <= len(rows) <= 3200, len(rows)
    ms = [int(r["device_ms"]) for r in rows]
    assert all(b > a for a, b in zip(ms, ms[1:]))
    treat = [r for r in rows if r["state"] == "TREAT"]
    assert all(abs(int(r["i_ua"]) - 9000) < 300 for r in treat)
    assert all(r["target_ua"] == "9000" for r in rows[20:])
    charge = [int(r["charge_uamin"]) for r in rows if r["charge_uamin"]]
    assert charge == sorted(charge) and 40000 < charge[-1] < 50000   # 9 mA x ~5 min
    assert all(r["peak_ua"] == "" for r in rows)     # telemetry has it in pulsed mode only
    assert rows[0]["host_time"].startswith("2026-01-01T")
    # plain output (not a terminal): one line a second with the slow fields
    lines = [ln for ln in out.splitlines() if ln.startswith("t=")]
    assert 280 <= len(lines) <= 330, len(lines)
    mid = [ln for ln in lines if " TREAT " in ln][5]
    assert "of 9.00 mA" in mid and "100 %" in mid and "kOhm" in mid and "mA*min" in mid
    assert "peak -" in mid and "fault ok" in mid      # DC: no peak
    assert_png(png)
    assert rig.app.tel_hz == 0, "telemetry must be off again"
    assert wall < 30, "virtual time: %.1f s of wall time" % wall


def test_plot_reads_well_axes_units_legend_title(tmp_path):
    rig = Rig(skin_ohm=1000.0)
    rig.ok("start", target_ua=12000, duration_s=300)
    rec = tmp_path / "f.csv"

    def short_at_60s(port):
        if port.now > 60:
            rig.bench.plant.short = True
    rc, out, err, _ = run_monitor(["--record", str(rec), "--hz", "20"], rig,
                                  port_hook=lambda p: hook_reads(p, short_at_60s))
    assert rc == 0, err
    assert "session over: FAULT, end fault, fault short" in out
    rows = monitor.read_record(str(rec))
    assert rows[-1]["state"] == "FAULT" and rows[-1]["fault"] == "short"
    fig = monitor.figure_record(rows, title="Treatment monitor: board sim")
    try:
        ax_i, ax_v = fig.axes[:2]
        assert ax_i.get_ylabel() == "current (mA)"
        assert ax_v.get_ylabel() == "electrode voltage (V)"
        assert "(s)" in ax_v.get_xlabel()
        labels = legend_texts(ax_i)
        assert {"setpoint", "measured", "fault"} <= labels, labels        # the curves
        assert {"FAULT", "TREAT", "RAMP_UP"} <= labels, labels            # the state bands
        assert ax_v.get_legend() is not None
        assert any("FAULT: short" in t.get_text() for t in ax_i.texts)
        assert fig._suptitle.get_text() == "Treatment monitor: board sim"
        assert ax_i.get_ylim()[1] > 12.0
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)
    # --replot draws a recorded file again, without a device
    png = tmp_path / "again.png"
    assert monitor.main(["--replot", str(rec), "--plot", str(png)], out=io.StringIO()) == 0
    assert_png(png)


def test_a_pulsed_session_shows_and_records_the_peak(tmp_path):
    rig = Rig(skin_ohm=1000.0)
    assert rig.ok("start", profile="underarm", duration_s=300)["mode"] == "pulsed"
    rec = tmp_path / "p.csv"
    rc, out, err, _ = run_monitor(["--record", str(rec), "--duration", "60"], rig)
    assert rc == 0, err
    rows = monitor.read_record(str(rec))
    treat = [r for r in rows if r["state"] == "TREAT"]
    assert treat and all(r["peak_ua"] is not None for r in rows)
    assert all(abs(r["peak_ua"] - 2 * r["i_ua"]) < 600 for r in treat)    # 50 % duty
    line = [ln for ln in out.splitlines() if " TREAT " in ln][-1]
    assert "peak 20.0" in line or "peak 19.9" in line, line
    fig = monitor.figure_record(rows)
    try:
        assert "peak (pulsed)" in legend_texts(fig.axes[0])
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)


def test_terminal_view_is_redrawn_in_place(tmp_path):
    rig = Rig(skin_ohm=1000.0)
    rig.ok("start", target_ua=9000, duration_s=300)
    rc, out, err, _ = run_monitor(["--duration", "40"], rig, out=Tty())
    assert rc == 0, err
    assert out.count("\x1b[6F") > 100             # cursor up over the 6-line view
    assert out.count("\x1b[2K") > 600             # each line cleared before it is rewritten
    last = out.rsplit("\x1b[6F", 1)[1]
    assert "state     TREAT" in last and "target    9.00 mA" in last and "flowing 100 %" in last
    assert "--duration 40 s reached" in out


def test_ctrl_c_turns_telemetry_off_and_keeps_the_record_and_the_plot(tmp_path):
    rig = Rig(skin_ohm=1000.0)
    rig.ok("start", target_ua=9000, duration_s=300)
    rec, png = tmp_path / "r.csv", tmp_path / "r.png"
    hit = []

    def ctrl_c(port):
        if port.now > 20 and not hit:
            hit.append(port.now)
            raise KeyboardInterrupt
    rc, out, err, _ = run_monitor(["--record", str(rec), "--plot", str(png)], rig,
                                  port_hook=lambda p: hook_reads(p, ctrl_c))
    assert rc == 0 and hit, err
    no_traceback(out, err)
    assert "stopped (Ctrl-C)" in out
    rows = read_csv(rec)
    assert 150 <= len(rows) <= 210 and rows[-1]["state"] in ("RAMP_UP", "TREAT")
    assert all(r["charge_uamin"] != "" for r in rows)       # complete last row
    assert_png(png)
    assert rig.app.tel_hz == 0
    assert rig.state() != "DONE", "the monitor only watches: the session goes on"


def test_a_broken_link_exits_1_and_keeps_what_was_recorded(tmp_path):
    import serial
    rig = Rig(skin_ohm=1000.0)
    rig.ok("start", target_ua=9000, duration_s=300)
    rec, png = tmp_path / "r.csv", tmp_path / "r.png"

    def unplug(port):
        if port.now > 10:
            raise serial.SerialException("device reports readiness to read but returned "
                                         "no data (device disconnected?)")
    rc, out, err, _ = run_monitor(["--record", str(rec), "--plot", str(png)], rig,
                                  port_hook=lambda p: hook_reads(p, unplug))
    assert rc == 1
    no_traceback(out, err)
    assert "error: the port failed: device reports readiness" in err
    assert len(read_csv(rec)) > 50
    assert_png(png)


def test_waits_for_a_session_and_stops_after_duration_when_idle():
    rc, out, err, port = run_monitor(["--duration", "3", "--hz", "5"])
    assert rc == 0, err
    assert "no session running (IDLE)" in out and "--duration 3 s reached" in out
    assert 3.0 <= port.now < 4.5
    assert "measured 0.00 mA" in out and "load -" in out and "left 0:00" in out


def test_peak_and_missing_fields_are_shown_as_values_or_dashes():
    v = monitor.View()
    v.t0_ms = 1000
    v.tel = {"t": "tel", "ms": 3500, "state": "TREAT", "sp_ua": 15000, "i_ua": 14000,
             "v_mv": 42000, "lim": True, "fault": "ok", "peak_ua": 21000}
    v.status = {"state": "TREAT", "target_ua": 15000, "remaining_s": 125,
                "charge_uamin": 31500}
    f = v.fields()
    assert f["peak"] == "21.00 mA" and f["flow"] == "93 %" and f["limited"] == "LIMITED"
    assert f["load"] == "3.00 kOhm" and f["left"] == "2:05" and f["charge"] == "31.50 mA*min"
    assert f["t"] == "2.5 s"
    # a DC session: status has a peak_ua (firmware >= 0.5) but it means nothing: "-"
    v.tel = dict(v.tel)
    del v.tel["peak_ua"]
    v.status.update(mode="dc", profile="hands", peak_ua=14000)
    assert v.fields()["peak"] == "-" and v.fields()["mode"] == "dc (hands)"
    v.status.update(mode="pulsed", profile="underarm", peak_ua=19800)
    assert v.fields()["peak"] == "19.80 mA"
    v.tel = {"t": "tel", "ms": 1000}
    v.status = {}
    f = v.fields()
    assert f["peak"] == f["target"] == f["flow"] == f["volts"] == f["load"] == "-"
    assert f["left"] == f["charge"] == f["limited"] == f["mode"] == "-"


# ---- refusals: exit status 2, a message, no traceback ------------------------------------------

class ReplPort:
    """A plain MicroPython REPL on the far end: echoes the line, prints the dict, prompts.
    Virtual time: each empty read advances the clock by 50 ms, each write by 10 ms."""

    def __init__(self, reply=None):
        self.rx = bytearray(b"MicroPython v1.27.0 on 2025-12-10; Raspberry Pi Pico with RP2040\r\n"
                            b"Type \"help()\" for more information.\r\n>>> ")
        self.now = 0.0
        self.reply = reply
        self.writes = 0

    def write(self, data):
        self.writes += 1
        self.now += 0.01                  # the far end takes a little time to answer
        if self.reply is not None:
            self.rx += self.reply(data)
        else:
            line = data.decode().strip()
            self.rx += line.encode() + b"\r\n" + line.replace('"', "'").encode() + b"\r\n>>> "
        return len(data)

    @property
    def in_waiting(self):
        return len(self.rx)

    def read(self, n=1):
        if not self.rx:
            self.now += 0.05
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def close(self):
        pass


def refuse(tool_main, args, port):
    err = io.StringIO()
    rc = tool_main(["--port", "x", "--timeout", "2"] + args, out=io.StringIO(), err=err,
                   opener=lambda name, timeout: Client(port, timeout=timeout,
                                                       clock=lambda: port.now))
    no_traceback(err.getvalue())
    return rc, err.getvalue(), port


def test_a_plain_micropython_repl_is_refused_with_exit_2():
    rc, err, port = refuse(monitor.main, [], ReplPort())
    assert rc == 2
    assert "does not answer as this firmware within 2 s" in err
    assert "not with this firmware's protocol" in err
    assert 2.0 <= port.now < 2.5
    # the client skips text that is not the protocol until its line is cleared (an answer
    # may follow stale bytes), so each attempt waits out its second: 2 in 2 s
    assert 2 <= port.writes <= 10, "asks again only once the REPL went quiet, never floods it"


def test_another_protocol_version_or_no_identify_is_refused_with_exit_2():
    import json

    def other(data):
        rid = json.loads(data)["id"]
        return b'{"id": %d, "ok": true, "fw": "9.0", "proto": 3, "board": "x"}\n' % rid
    rc, err, _ = refuse(monitor.main, [], ReplPort(other))
    assert rc == 2 and "protocol 3" in err and "protocol 2" in err

    def unknown(data):
        rid = json.loads(data)["id"]
        return (b'{"id": %d, "ok": false, "error": {"code": "E_UNKNOWN_CMD", "msg": "x"}}\n'
                % rid)
    rc, err, _ = refuse(monitor.main, [], ReplPort(unknown))
    assert rc == 2 and "does not know identify" in err


def test_identify_retries_after_boot_text_and_a_damaged_line():
    import json
    calls = []

    def boot_then_firmware(data):
        calls.append(data)
        rid = json.loads(data)["id"]
        if len(calls) == 1:
            return b"MPY: soft reboot\r\n"
        if len(calls) == 2:        # the device could not read our line at all
            return b'{"id": null, "ok": false, "error": {"code": "E_JSON", "msg": "x"}}\n'
        return b'{"id": %d, "ok": true, "fw": "0.5.0", "proto": 2, "board": "pico"}\n' % rid
    port = ReplPort(boot_then_firmware)
    dev, ident, label = cli.connect("x", timeout=3.0, opener=lambda name, timeout: Client(
        port, timeout=timeout, clock=lambda: port.now))
    assert ident["board"] == "pico" and len(calls) == 3 and label == "x"
    assert cli.board_text(ident) == "board pico, firmware 0.5.0"


def test_a_silent_port_times_out_with_exit_2_in_virtual_time():
    rig = Rig()
    port = DevicePort(rig, answer=False)           # nobody reads the device's input
    rc, err, _ = refuse(monitor.main, [], port)
    assert rc == 2 and "nothing answered" in err
    assert 2.0 <= port.now < 2.5


def test_missing_port_and_no_virtual_board_exit_2():
    err = io.StringIO()
    assert monitor.main(["--port", "/dev/no-such-port-ionto"], err=err) == 2
    assert "port /dev/no-such-port-ionto does not exist" in err.getvalue()
    err = io.StringIO()
    assert monitor.main(["--vboard", "no-such-board-ionto"], err=err) == 2
    assert "virtual board no-such-board-ionto is not running" in err.getvalue()
    no_traceback(err.getvalue())


def test_help_has_examples_and_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        monitor.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--record" in text and "make monitor PORT=" in text
    assert "--timeout" in text and "--port" in text
    with pytest.raises(SystemExit) as e:
        monitor.main(["--hz", "99"])
    assert e.value.code == 2
    assert monitor.main(["--replot", "x.csv"], err=io.StringIO()) == 2


def cli_run(module, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "tools." + module] + list(args),
                          cwd=str(ROOT), capture_output=True, text=True, timeout=timeout)


def test_command_line_exit_2_for_a_missing_port_and_a_pty_nobody_answers_on():
    r = cli_run("monitor", "--port", "/dev/no-such-port-ionto")
    assert r.returncode == 2 and "error: port /dev/no-such-port-ionto does not exist" in r.stderr
    no_traceback(r.stdout, r.stderr)
    master, slave = os.openpty()
    try:
        t0 = time.monotonic()
        r = cli_run("monitor", "--port", os.ttyname(slave), "--timeout", "1")
        assert r.returncode == 2, r.stderr
        assert "does not answer as this firmware within 1 s: nothing answered" in r.stderr
        no_traceback(r.stdout, r.stderr)
        assert time.monotonic() - t0 < 30
    finally:
        os.close(master)
        os.close(slave)


# ---- end to end: the command line against a virtual board ------------------------------------------

@pytest.fixture(scope="module")
def vboard():
    """A virtual board of this module (under build/vboard so the tools find it by name)."""
    import shutil
    from test_virtual_board import require_tools
    from emulators.vboard import STATE_ROOT, VirtualBoard
    require_tools()
    name = "pytest-mon-%d" % os.getpid()
    vb = VirtualBoard(name)
    vb.start(owner=os.getpid())
    yield vb
    vb.stop()
    shutil.rmtree(STATE_ROOT / name, ignore_errors=True)


def test_end_to_end_monitor_on_a_virtual_board(vboard, tmp_path):
    # before flashing it is a plain MicroPython REPL: refused, exit 2
    r = cli_run("monitor", "--vboard", vboard.name, "--timeout", "2")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not with this firmware's protocol" in r.stderr
    no_traceback(r.stdout, r.stderr)
    r = cli_run("flash", "--vboard", vboard.name, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    # a short session, started by another client; the monitor picks it up and follows it
    vboard.set_load(contact=True, skin_ohm=1500.0, speed=50)
    dev, ident, _ = cli.connect(vboard.port, timeout=20.0)
    try:
        assert ident["board"] == "sim"
        dev.start(target_ua=10000, duration_s=300, ramp_up_s=30, ramp_down_s=15)
    finally:
        dev.close()
    rec, png = tmp_path / "vb.csv", tmp_path / "vb.png"
    r = cli_run("monitor", "--port", vboard.port, "--record", str(rec), "--plot", str(png),
                "--hz", "10", "--timeout", "10", timeout=240)
    vboard.set_load(speed=1)
    assert r.returncode == 0, r.stdout + r.stderr
    no_traceback(r.stdout, r.stderr)
    assert "session over: DONE, end completed, fault ok" in r.stdout
    rows = read_csv(rec)
    states = [x["state"] for x in rows]
    assert "TREAT" in states and states[-1] == "DONE"
    treat = [x for x in rows if x["state"] == "TREAT"]
    assert len(treat) > 100
    assert all(abs(int(x["i_ua"]) - 10000) < 300 for x in treat)
    assert_png(png)
