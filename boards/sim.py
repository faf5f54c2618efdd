"""The `sim` board: the firmware's hardware objects built on the plant model.

Used by host tests, the simulator and the virtual board. It never imports `machine`:
every object is a duck-typed stand-in wired to `sim.plant.Plant`. The control loop
reads the ADC codes the plant computed at the end of its last step, so a read is an
attribute fetch and allocates nothing.

On the virtual board (tools/virtual_board.py) `main.main()` takes the loop clock from
this module: `ticks_us()` / `sleep_us()` below advance the plant of the hardware built
last with the board's own clock, and read the load (hands in or out, skin resistance,
...) and the clock speed from the control file `plant.json` in the board's flash.
Host tests build their own plant and clock and never call them.
"""

from micropython import const

NAME = "sim"
CONTROL_PERIOD_US = const(5000)
I_FS_UA = const(33000)      # 3.3 V ADC reference across a 100 Ω shunt, gain 1
V_FS_MV = const(66000)      # 1:20 electrode divider into the 3.3 V ADC
REF_FS_UA = const(33000)    # source current at reference code 65535
COMPLIANCE_MV = const(40000)
HW_TRIP_UA = const(0)       # no comparator modelled
OVERSAMPLE = const(1)
WDT_TIMEOUT_MS = const(500)
# the plant runs in the firmware's interpreter and allocates floats every step: the
# collector must stay on through a session (firmware/app.py turns it off on real boards)
SESSION_GC_OFF = False
# the flash is a host file (the virtual board) or a fake (host tests): a write does not
# stall the loop, so checkpoints are written while current flows (firmware/app.py)
FLASH_WRITE_STALLS = False
# the plant has no gain or offset error unless a test gives it one: identity calibration,
# used by the firmware only while no calibration is stored on the (virtual) board
DEFAULT_CALIBRATION = {"i_gain": 16384, "i_offset": 0, "v_gain": 16384, "v_offset": 0,
                       "r_gain": 16384, "r_offset": 0}


class _CurrentAdc:
    def __init__(self, plant):
        self._p = plant

    def read_u16(self):
        return self._p.i_code


class _VoltageAdc:
    def __init__(self, plant):
        self._p = plant

    def read_u16(self):
        return self._p.v_code


class _Reference:
    def __init__(self, plant):
        self._p = plant

    def duty_u16(self, code):
        self._p.ref_code = code


class _Enable:
    def __init__(self, plant):
        self._p = plant

    def value(self, v=None):
        if v is None:
            return self._p.enable
        self._p.enable = v


class _Polarity:
    def __init__(self, plant):
        self._p = plant

    def value(self, v=None):
        if v is None:
            return self._p.polarity
        self._p.polarity = v


class _Gate:
    """Pulse gate PWM (machine.PWM-like): duty 65535 = source always on (DC)."""

    def __init__(self, plant):
        self._p = plant

    def freq(self, hz=None):
        if hz is None:
            return self._p.gate_hz
        self._p.gate_hz = hz

    def duty_u16(self, d=None):
        if d is None:
            return int(self._p.gate_duty * 65535 + 0.5)
        self._p.gate_code = d      # an int store (no float here: the loop may call it)


class _Watchdog:
    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class Hardware:
    def __init__(self, plant):
        self.plant = plant
        self.enable = _Enable(plant)
        self.enable.value(0)
        self.ref = _Reference(plant)
        self.ref.duty_u16(0)
        self.polarity = _Polarity(plant)
        self.adc_i = _CurrentAdc(plant)
        self.adc_v = _VoltageAdc(plant)
        self.trip = None
        self.wdt = _Watchdog()
        self.gate = _Gate(plant)
        self.gate.duty_u16(65535)


def build(plant=None, watchdog=False, **plant_args):
    """Hardware on a plant (a new default `Plant(**plant_args)` when none is given).

    `watchdog` is accepted for the board contract; the sim watchdog only counts feeds.
    """
    if plant is None:
        from plant import Plant
        args = {"compliance_v": COMPLIANCE_MV / 1000}
        args.update(plant_args)
        plant = Plant(i_fs_ua=I_FS_UA, v_fs_mv=V_FS_MV, ref_fs_ua=REF_FS_UA, **args)
    global _plant
    _plant = plant
    return Hardware(plant)


# ---- the virtual board's clock -------------------------------------------------------
# The clock is ideal: it advances only in sleep_us(), by exactly the time asked for, and
# the plant advances by the same time. So the firmware sees the loop of a board that
# always keeps its period, whatever the host's load (a busy host slows the board down
# instead of making it overrun). The wall clock only paces it: `speed` virtual seconds
# per wall second (1 = real time, 0 = as fast as the interpreter runs), from the
# control file. With a fixed load, a time-compressed session is reproducible.

CONTROL_FILE = "plant.json"
# control file keys -> type; every other key is refused (the whole file is then ignored)
LOAD_KEYS = {"contact": bool, "short": bool, "lift_area": float, "skin_ohm": float,
             "water_ohm": float, "body_ohm": float, "skin_drift": float,
             "offset_v": float, "compliance_v": float, "speed": float, "nonlinear": bool,
             # the unit's analog errors, which a technician's calibration must remove
             "source_gain_error": float, "source_offset_ua": float, "adc_noise_lsb": float,
             "adc_i_gain_error": float, "adc_i_offset_lsb": float,
             "adc_v_gain_error": float, "adc_v_offset_lsb": float, "meter": bool,
             "service_button": bool,
             # buttons held (true) or released; the comparator's output forced high
             # (the emulated Pico only: the sim board has no comparator)
             "btn_start": bool, "btn_up": bool, "btn_down": bool, "comparator": bool}
# signed keys and their magnitude limits (the others must be >= 0)
_SIGNED = {"source_gain_error": 0.3, "source_offset_ua": 2000.0, "adc_i_gain_error": 0.3,
           "adc_i_offset_lsb": 200.0, "adc_v_gain_error": 0.3, "adc_v_offset_lsb": 200.0}
_POLL_US = const(200000)     # wall time between looks at the control file

_plant = None                # the plant of the hardware built last
_now = 0                     # board ticks, µs (ideal clock)
_virt = 0                    # virtual µs since the wall anchor
_wall0 = None                # wall ticks at the anchor
_next_poll = 0
_speed = 1.0
_control_text = None
_control_plant = None        # the plant the control file was last applied to
control_error = None         # why the control file was last refused (None: accepted)


def ticks_us():
    """The board's clock: what main.run() passes to Controller.tick()."""
    return _now


def sleep_us(us):
    """Advance the clock and the plant by `us`, then wait for the wall clock (paced)."""
    global _now, _virt, _wall0, _next_poll
    from ticks import ticks_add, ticks_diff
    from ticks import ticks_us as wall_us
    if us > 0:
        p = _plant
        if p is not None:
            left = us
            while left > CONTROL_PERIOD_US:      # long waits (self test) in loop periods
                p.step(CONTROL_PERIOD_US / 1000000)
                if _meter_on:
                    _meter_add(p, CONTROL_PERIOD_US)
                left -= CONTROL_PERIOD_US
            p.step(left / 1000000)
            if _meter_on:
                _meter_add(p, left)
        _now = ticks_add(_now, us)
        _virt += us
    wall = wall_us()
    if _wall0 is None or ticks_diff(wall, _next_poll) >= 0:
        _next_poll = ticks_add(wall, _POLL_US)
        if _wall0 is not None and _speed > 0:   # move the anchor: keeps _virt small
            _wall0 = ticks_add(_wall0, int(_virt / _speed))
            _virt = 0
        poll_control()                          # may change the speed: re-anchors
        if _meter_on:
            _meter_write()
    if _wall0 is None or _speed <= 0:
        _wall0 = wall
        _virt = 0
    if _speed > 0:
        ahead = int(_virt / _speed) - ticks_diff(wall, _wall0)
        if ahead > 0:
            _wall_sleep(ahead)
        elif ahead < -500000:
            _wall0 = wall       # far behind (host busy, process stopped): no catch-up burst
            _virt = 0


# ---- the bench meter (technician calibration on the virtual board) ----------------------
# With "meter": true in the control file, the board writes METER_FILE: the plant's TRUE
# mean current and electrode voltage over the last whole second of virtual time, and a
# sequence number that grows with each new second. tools/calibrate.py --meter sim reads
# it as a technician reads a bench multimeter in series with the load.

METER_FILE = "meter.json"
_METER_BLOCK_US = const(1000000)
_meter_on = False
_m_ua = 0.0
_m_v = 0.0
_m_us = 0
_m_seq = 0
_m_last = None           # (µA, V) of the last whole second
_m_written = -1


def _meter_add(p, us):
    global _m_ua, _m_v, _m_us, _m_seq, _m_last
    _m_ua += p.true_ua * us
    _m_v += p.v_load * us
    _m_us += us
    if _m_us >= _METER_BLOCK_US:
        _m_last = (_m_ua / _m_us, _m_v / _m_us)
        _m_seq += 1
        _m_ua = 0.0
        _m_v = 0.0
        _m_us = 0


def _meter_write():
    global _m_written
    if _m_last is None or _m_seq == _m_written:
        return
    import os
    tmp = METER_FILE + ".tmp"
    with open(tmp, "w") as f:
        f.write('{"seq": %d, "ua": %.3f, "v": %.5f}\n' % (_m_seq, _m_last[0], _m_last[1]))
    os.rename(tmp, METER_FILE)
    _m_written = _m_seq


def _wall_sleep(us):
    import time
    try:
        time.sleep_us(us)       # MicroPython: interruptible, so Ctrl-C reaches the loop
    except AttributeError:
        time.sleep(us / 1000000)


def poll_control(path=CONTROL_FILE):
    """Apply the control file if its text (or the plant) changed; a bad file is refused
    as a whole."""
    global _control_text, _control_plant, control_error
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        text = ""
    if text == _control_text and _control_plant is _plant:
        return
    _control_text = text
    _control_plant = _plant
    try:
        settings = parse_control(text) if text.strip() else {}
    except ValueError as e:
        control_error = str(e)
        return
    control_error = None
    apply_control(settings)


def parse_control(text):
    """JSON object text -> {key: value} with the types of LOAD_KEYS; ValueError if bad."""
    import json
    try:
        d = json.loads(text)
    except ValueError:
        raise ValueError("control file: not JSON")
    if not isinstance(d, dict):
        raise ValueError("control file: not a JSON object")
    out = {}
    for k in d:
        v = d[k]
        kind = LOAD_KEYS.get(k)
        if kind is None:
            raise ValueError("control file: unknown key " + str(k))
        if kind is bool:
            if v is not True and v is not False:
                raise ValueError("control file: %s must be true or false" % k)
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError("control file: %s must be a number" % k)
            v = float(v)
            lim = _SIGNED.get(k)
            if lim is None and v < 0:
                raise ValueError("control file: %s must be a number >= 0" % k)
            if lim is not None and not -lim <= v <= lim:
                raise ValueError("control file: %s must be in -%g..%g" % (k, lim, lim))
            if k == "adc_noise_lsb" and v > 20:
                raise ValueError("control file: adc_noise_lsb must be in 0..20")
            if k == "lift_area" and not 0.01 <= v <= 1.0:
                raise ValueError("control file: lift_area must be in 0.01..1")
            if k in ("skin_ohm", "water_ohm", "body_ohm") and v > 1000000:
                raise ValueError("control file: %s above 1 MOhm" % k)
            if k == "compliance_v" and not 1.0 <= v <= 100.0:
                raise ValueError("control file: compliance_v must be in 1..100")
        out[k] = v
    return out


def apply_control(settings, plant=None):
    """Set the load on `plant` (default: the one built last) and the clock's speed."""
    global _speed, _wall0, _meter_on
    p = plant if plant is not None else _plant
    for k in settings:
        if k == "meter":
            _meter_on = settings[k]
        elif k == "service_button":
            _hold_service(settings[k])
        elif k in _BUTTONS:
            _hold(k, settings[k])
        elif k == "comparator":
            pass
        elif k == "speed":
            if settings[k] != _speed:
                _speed = settings[k]
                _wall0 = None          # re-anchor the pacing at the new speed
        elif p is not None:
            setattr(p, k, settings[k])


def watchdog():
    """The sim watchdog: counts feeds (main arms it at the first session start)."""
    return _Watchdog()


# ---- buttons, LED, buzzer (firmware/ui.py) ---------------------------------------------
# Stand-ins with the real boards' levels: a button reads 1 released (pull-up) and 0
# pressed. Tests press them with `press()` / `release()`; the LED and the buzzer keep
# their last level, tone and duty (nothing is recorded per call: no garbage).

class _Button:
    def __init__(self):
        self.level = 1

    def value(self):
        return self.level

    def press(self):
        self.level = 0

    def release(self):
        self.level = 1


class _Led:
    def __init__(self):
        self.level = 0

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0


class _Buzzer:
    def __init__(self):
        self.hz = 0
        self.duty = 0

    def freq(self, hz=None):
        if hz is None:
            return self.hz
        self.hz = hz

    def duty_u16(self, d=None):
        if d is None:
            return self.duty
        self.duty = d


class UiHardware:
    """What `build_ui()` returns: start/stop, up, down, LED, buzzer."""

    def __init__(self):
        self.btn_start = _Button()
        self.btn_up = _Button()
        self.btn_down = _Button()
        self.led = _Led()
        self.buzzer = _Buzzer()


_ui = None                   # the UI built last (the control file's service_button)


def build_ui():
    """The board's buttons and indicators (see docs/boards.md); main builds them once.
    With "service_button": true in the control file, up and down are held (the
    technician's service-mode gesture at power-up) until the key turns false."""
    global _ui
    _ui = UiHardware()
    try:
        with open(CONTROL_FILE) as f:
            held = parse_control(f.read()).get("service_button", False)
    except (OSError, ValueError):
        held = False
    _hold_service(held)
    return _ui


_BUTTONS = ("btn_start", "btn_up", "btn_down")


def _hold(name, held):
    if _ui is not None:
        b = getattr(_ui, name)
        if held:
            b.press()
        else:
            b.release()


def _hold_service(held):
    if _ui is not None:
        for b in (_ui.btn_up, _ui.btn_down):
            if held:
                b.press()
            else:
                b.release()
