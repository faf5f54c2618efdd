"""A minimal fake of MicroPython's `machine` module, for host tests of the board files.

Only the API the board files (boards/pico.py, boards/esp32.py) use, with MicroPython's
documented signatures (docs.micropython.org/en/latest/library/machine.*.html):
    Pin(id, mode=-1, pull=-1, *, value=None, drive=-1, alt=-1); Pin.value([x])
    ADC(id, *, sample_ns=None, atten=None); read_u16(); read_uv(); atten(a)
    PWM(dest, *, freq=None, duty_u16=None, duty_ns=None, invert=False); freq([f]); duty_u16([d])
    DAC(id); write(v)                         (ESP32: 8 bits)
    WDT(id=0, timeout=5000); feed()
    unique_id(); reset()
Every call is appended to `EVENTS` as a tuple (kind, id, action, argument), in call
order, and the objects are registered by pin id (`PINS`, `ADCS`, `PWMS`, `DACS`) so a
test can assert what a board did, e.g. that the enable pin was the first thing driven 0.
Test-side knobs (not MicroPython API): `Pin.external(level)` sets what the outside world
drives on an input, `ADC.uv` is the voltage on the ADC pin.
Load a fresh copy per test (importlib) and put it in sys.modules["machine"].
Plain Python that MicroPython also runs.
"""

EVENTS = []
PINS = {}
ADCS = {}
PWMS = {}
DACS = {}
WDTS = []


class FakeReset(Exception):
    """Raised by `reset()`: on a board it never returns."""


def _log(kind, ident, action, arg=None):
    EVENTS.append((kind, ident, action, arg))


def _pin_id(x):
    return x.id if isinstance(x, Pin) else x


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=-1, alt=-1):
        self.id = id
        self.mode = None if mode == -1 else mode
        self.pull = None if pull == -1 else pull
        self.level = None            # output latch: None until written
        self.history = []            # every level written, in order
        self._external = None        # what the outside world drives (None: floating)
        if value is not None and self.mode in (Pin.OUT, Pin.OPEN_DRAIN):
            self._set(value)
        PINS[id] = self
        _log("Pin", id, "init", (self.mode, self.pull, value))

    def _set(self, v):
        self.level = 1 if v else 0
        self.history.append(self.level)

    def value(self, x=None):
        if x is None:
            if self.mode == Pin.OUT:
                return self.level
            if self._external is not None:
                return self._external
            return 1 if self.pull == Pin.PULL_UP else 0
        self._set(x)
        _log("Pin", self.id, "value", self.level)

    def external(self, level):
        """Test knob: drive this input from outside (None = floating, pull decides)."""
        self._external = level


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, id, *, sample_ns=None, atten=None):
        self.id = _pin_id(id)
        self.uv = 0                  # test knob: volts on the pin, in µV
        self.vref_uv = 3300000       # full scale of read_u16()
        self.bits = 12
        self.attenuation = atten
        self.reads = 0
        ADCS[self.id] = self
        _log("ADC", self.id, "init", atten)

    def atten(self, a):
        self.attenuation = a
        _log("ADC", self.id, "atten", a)

    def read_u16(self):
        """A `bits` ADC scaled to 0..65535, like the rp2 port."""
        self.reads += 1
        top = (1 << self.bits) - 1
        raw = (self.uv * top + self.vref_uv // 2) // self.vref_uv
        raw = 0 if raw < 0 else top if raw > top else raw
        return raw * 65535 // top

    def read_uv(self):
        """Calibrated µV with 1 mV resolution, like the ESP32 port."""
        self.reads += 1
        uv = self.uv if self.uv > 0 else 0
        return (uv + 500) // 1000 * 1000


class PWM:
    def __init__(self, dest, *, freq=None, duty_u16=None, duty_ns=None, invert=False):
        self.id = _pin_id(dest)
        self._freq = None
        self._duty = None
        self.duties = []             # every duty_u16 written, in order
        PWMS[self.id] = self
        _log("PWM", self.id, "init", (freq, duty_u16))
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def freq(self, value=None):
        if value is None:
            return self._freq
        if not 0 < value <= 40000000:
            raise ValueError("freq out of range")
        self._freq = value
        _log("PWM", self.id, "freq", value)

    def duty_u16(self, value=None):
        if value is None:
            return self._duty
        if not 0 <= value <= 65535:
            raise ValueError("duty_u16 must be 0..65535")
        self._duty = value
        self.duties.append(value)
        _log("PWM", self.id, "duty_u16", value)

    def deinit(self):
        _log("PWM", self.id, "deinit")


class DAC:
    def __init__(self, id):
        self.id = _pin_id(id)
        self.last = None
        self.writes = []
        DACS[self.id] = self
        _log("DAC", self.id, "init")

    def write(self, value):
        if not 0 <= value <= 255:
            raise ValueError("DAC value must be 0..255")
        self.last = value
        self.writes.append(value)
        _log("DAC", self.id, "write", value)


class WDT:
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT id")
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        self.timeout = timeout
        self.feeds = 0
        WDTS.append(self)
        _log("WDT", id, "init", timeout)

    def feed(self):
        self.feeds += 1


def unique_id():
    return b"\xe6\x61\x38\x97\x83\x12\x34\x56"


def reset():
    _log("machine", None, "reset")
    raise FakeReset()
