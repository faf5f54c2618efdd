"""Type check of the firmware against the MicroPython stubs of each real board's port.

pyright (PyPI `pyright`: the wheel bundles pyright's JavaScript and runs it on the system
Node.js) checks firmware/*.py plus the board file, once per board, with that port's stubs
as the whole world: the stubs' `stdlib/` replaces CPython's typeshed (so `time.ticks_us`
exists and `time.monotonic_ns` does not), and their top-level modules (`machine`,
`micropython`, ...) are the port's. The configs are tools/typecheck/pyright-<board>.json.

Setup done here, into build/ (a cache `make clean` removes):
* build/typings/<port>/: the stub packages, installed with `pip install --no-deps --target`.
  They cannot live in the venv: every port's package installs machine.pyi, micropython.pyi,
  time.pyi, ... and a stdlib/ typeshed at the top of site-packages, so two ports overwrite
  each other, and pyright needs the directory as its typeshed path. Installed once (a stamp
  file holds the pins), from PyPI or pip's cache.
* build/typings/<port>/board.pyi: the board file as `board` (on the board it is board.py).
* build/typecheck/<board>/<board>.py: the board file with the `machine` module put in the
  place of the `machine` argument its Hardware class is given (the argument exists so that
  tests can pass a fake). Without that every machine.X(...) call would be unchecked. The
  edit keeps line numbers: diagnostics point at the real file's lines.
* build/typecheck/<board>/stub_probe.py: calls the checker must refuse (PWM.duty_u17,
  time.monotonic_ns; ADC.read_uv on the Pico), proving the stubs are really in use.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from mpvm_pytest import REPO_ROOT, in_ci

STDLIB_STUBS = "micropython-stdlib-stubs==1.29.0.post2"
PORT_STUBS = {
    "rp2": "micropython-rp2-rpi_pico-stubs==1.29.0.post1",
    "esp32": "micropython-esp32-stubs==1.29.0.post1",
}
BOARDS = {"pico": "rp2", "esp32": "esp32"}
TYPINGS = REPO_ROOT / "build" / "typings"
CHECK_DIR = REPO_ROOT / "build" / "typecheck"
CONFIG_DIR = REPO_ROOT / "tools" / "typecheck"

PROBE = '''\
import machine
import time

machine.Pin(2, machine.Pin.OUT).value(1)
machine.PWM(machine.Pin(3)).duty_u16(0)
time.ticks_diff(time.ticks_us(), 0)
machine.PWM(machine.Pin(3)).duty_u17(0)   # PROBE: no such method
time.monotonic_ns()                       # PROBE: CPython only
machine.ADC(machine.Pin(26)).read_uv()    # PROBE(rp2): an ESP32-only method
'''


def _unavailable(message):
    if in_ci():
        pytest.fail(message + " (CI is set, so this is a failure)", pytrace=False)
    pytest.skip(message)


def _pyright_cmd():
    try:
        import pyright  # noqa: F401
    except ImportError:
        _unavailable("pyright is not installed in this venv (pip install -r requirements.txt)")
    if not (shutil.which("node") or shutil.which("nodejs")):
        _unavailable("pyright needs Node.js")
    return [sys.executable, "-m", "pyright"]


def ensure_stubs(port):
    """Install the port's stubs into build/typings/<port> unless the stamp says they are."""
    target = TYPINGS / port
    pins = [PORT_STUBS[port], STDLIB_STUBS]
    stamp = target / ".installed"
    if stamp.is_file() and stamp.read_text().split() == pins:
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-user", "--no-deps", "--target", str(target)] + pins
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        _unavailable("could not install the %s stubs:\n$ %s\n%s" % (
            port, " ".join(cmd), proc.stdout + proc.stderr))
    stamp.write_text("\n".join(pins) + "\n")
    return target


def machine_in_place(source):
    """The board source with `machine` (the module) instead of the injected argument.

    `def __init__(self, machine, ...)` -> `def __init__(self, _machine_arg, ...)`, and
    `import machine; ` in front of line 1, so that `machine.X` in the body is the module.
    Line numbers stay the same.
    """
    pattern = re.compile(r"^(\s*def \w+\(self, )machine(\W)", re.M)
    out, n = pattern.subn(r"\1_machine_arg\2", source)
    assert n >= 1, "no `def ...(self, machine, ...)` in the board file: update machine_in_place()"
    return "import machine; " + out


def prepare(board):
    port = BOARDS[board]
    typings = ensure_stubs(port)
    src = (REPO_ROOT / "boards" / (board + ".py")).read_text()
    (typings / "board.pyi").write_text(src)
    work = CHECK_DIR / board
    work.mkdir(parents=True, exist_ok=True)
    (work / (board + ".py")).write_text(machine_in_place(src))
    (work / "stub_probe.py").write_text(PROBE)
    return work


def run_pyright(board):
    cmd = _pyright_cmd() + ["--outputjson", "-p", str(CONFIG_DIR / ("pyright-%s.json" % board))]
    env = dict(os.environ, PYRIGHT_PYTHON_IGNORE_WARNINGS="1")   # no version look-up online
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                          cwd=str(REPO_ROOT))
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("pyright did not answer JSON (exit %d):\n%s\n%s" % (
            proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]), pytrace=False)
    return report


def _fmt(d):
    r = d.get("range", {}).get("start", {})
    path = d.get("file", "?")
    try:
        path = os.path.relpath(path, str(REPO_ROOT))
    except ValueError:
        pass
    path = path.replace(os.path.join("build", "typecheck", ""), "[machine in place] ")
    return "%s:%d:%d - %s: %s (%s)" % (path, r.get("line", -1) + 1, r.get("character", -1) + 1,
                                       d.get("severity"), d.get("message"), d.get("rule", ""))


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_firmware_typechecks_against_port_stubs(board):
    _pyright_cmd()
    work = prepare(board)
    report = run_pyright(board)
    diags = [d for d in report.get("generalDiagnostics", []) if d.get("severity") == "error"]
    probe = [d for d in diags if os.path.basename(d.get("file", "")) == "stub_probe.py"]
    rest = [d for d in diags if d not in probe]
    assert not rest, "pyright (%s, %s stubs) found %d error(s):\n%s" % (
        board, BOARDS[board], len(rest), "\n".join(_fmt(d) for d in rest))
    # the stubs are in force: exactly the probe lines are refused
    lines = (work / "stub_probe.py").read_text().splitlines()
    want = set(k + 1 for k, line in enumerate(lines)
               if "# PROBE:" in line or ("# PROBE(rp2)" in line and BOARDS[board] == "rp2"))
    got = set(d["range"]["start"]["line"] + 1 for d in probe)
    assert got == want, "probe lines refused: %s, expected %s\n%s" % (
        sorted(got), sorted(want), "\n".join(_fmt(d) for d in probe))
    summary = report.get("summary", {})
    assert summary.get("filesAnalyzed", 0) >= 10, summary


def test_machine_in_place_keeps_lines():
    src = '"""doc\n"""\nclass Hardware:\n    def __init__(self, machine, watchdog):\n' \
          '        Pin = machine.Pin\n'
    out = machine_in_place(src)
    assert out.count("\n") == src.count("\n")
    assert "def __init__(self, _machine_arg, watchdog):" in out
    assert out.startswith("import machine; ")
    with pytest.raises(AssertionError):
        machine_in_place("def build():\n    pass\n")
