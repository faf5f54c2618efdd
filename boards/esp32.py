"""ESP32 dev board (ESP32-WROOM-32): pins, analog front-end and `build()`.

Front-end (see docs/boards.md for the schematic assumptions):
    reference  GPIO25 LEDC PWM 39 kHz -> 2-pole RC (2 x 3.3 kΩ / 100 nF) -> source input,
               source I = Vref / 100 Ω, so 3.3 V (duty 65535) = 33 mA. GPIO25 is also
               the DAC1 pad: `build(ref="dac")` drives it with the 8-bit DAC instead.
    current    56 Ω low-side shunt, buffer gain 1, +200 mV level shift -> GPIO34 (ADC1_CH6)
    voltage    electrode A -> 24:1 divider, buffer, +200 mV level shift -> GPIO35 (ADC1_CH7)
    enable     GPIO23 output, external 10 kΩ pull-down (off at reset and while booting)
    polarity   GPIO22 output to the H-bridge / relay driver
    trip       GPIO27 input, pull-up; the comparator's open-drain output holds it low
               while the current is below 35 mA, so a broken wire reads "tripped"
    gate       GPIO26 LEDC PWM (1-10 kHz, its own timer) to the source's pulse gate (high =
               source on, 10 kΩ pull-up: ungated DC from reset); duty 65535 at build = DC.
               Pulsed mode sets its frequency and duty; the enable pin stays the output switch
    ui         buttons to GND (pull-up, 0 = pressed): start/stop GPIO32, up GPIO33,
               down GPIO4; panel LED GPIO21 (high = on); piezo buzzer GPIO19 (LEDC PWM)
ADC1 only (ADC2 belongs to WiFi). The ADCs run at 11 dB attenuation and are read with
the calibrated `read_uv()`; the linear range is 150..2450 mV, so both sense chains are
shifted up 200 mV and `_UvAdc` maps 200..2450 mV onto codes 0..65535 with small-int math.
`machine` is imported inside `build()` so host tools can read the constants.
"""

from micropython import const

NAME = "esp32"

# pins (GPIO numbers)
PIN_ENABLE = const(23)
PIN_POLARITY = const(22)
PIN_TRIP = const(27)
PIN_REF = const(25)         # LEDC PWM, or DAC1 with build(ref="dac")
PIN_ADC_I = const(34)       # ADC1_CH6, input only
PIN_GATE = const(26)        # pulse gate, LEDC PWM (DAC2 pad, unused)
PIN_ADC_V = const(35)       # ADC1_CH7, input only
PIN_BTN_START = const(32)   # buttons (firmware/ui.py): to GND, internal pull-up
PIN_BTN_UP = const(33)
PIN_BTN_DOWN = const(4)
PIN_LED = const(21)         # panel LED
PIN_BUZZER = const(19)      # piezo, LEDC PWM (its own timer: another frequency)

# physical values
ADC_ZERO_MV = const(200)    # level shift: 0 µA / 0 V sit here, above the 150 mV floor
ADC_TOP_MV = const(2450)    # top of the calibrated 11 dB range
ADC_SPAN_MV = const(ADC_TOP_MV - ADC_ZERO_MV)
SHUNT_OHM = const(56)
SENSE_GAIN = const(1)
DIVIDER_RATIO = const(24)   # electrode volts / buffer input volts (e.g. 232 kΩ over 10 kΩ)
REF_HIGH_MV = const(3300)   # PWM high level (and DAC full scale)
SOURCE_R_OHM = const(100)   # source transconductance: I = Vref / SOURCE_R_OHM
PWM_FREQ_HZ = const(39000)  # 80 MHz APB / 39 kHz > 2048 counts: 11-bit LEDC duty
RC_R_OHM = const(3300)      # reference filter, two equal RC poles (~480 Hz each)
RC_C_NF = const(100)
GATE_FREQ_HZ = const(1000)  # pulse gate frequency at build (duty 65535: DC whatever it is)

# the board contract (ints)
CONTROL_PERIOD_US = const(5000)
I_FS_UA = const(ADC_SPAN_MV * 1000 // (SHUNT_OHM * SENSE_GAIN))  # 40178 µA at code 65535
V_FS_MV = const(ADC_SPAN_MV * DIVIDER_RATIO)                      # 54000 mV at code 65535
REF_FS_UA = const(REF_HIGH_MV * 1000 // SOURCE_R_OHM)             # 33000 µA at code 65535
COMPLIANCE_MV = const(40000)
HW_TRIP_UA = const(35000)
OVERSAMPLE = const(8)
WDT_TIMEOUT_MS = const(1000)  # whole seconds: older esp32 ports truncate ms to s (min 1 s)
# a flash program or erase stalls the CPU (the cache is off while the SPI flash works: a
# 4 KB sector erase takes tens of ms): the app writes no flash while the output is enabled
FLASH_WRITE_STALLS = True

_K_SHIFT = const(14)        # Q14 scale factor; products stay <= 65535 << 14 < 2**30


class _UvAdc:
    """`read_u16()` (0..65535) from the calibrated `ADC.read_uv()`.

    Code 0 at `zero_mv`, 65535 at `zero_mv + span_mv`, clamped outside. `read_uv()`
    has 1 mV resolution on the ESP32, so the math is done in mV: nothing is lost.
    Integer only, every intermediate a small int on 32-bit ports (no heap): the clamp
    bounds `mv` by `span_mv` and `_k` = floor((65535 << 14) / span_mv), so
    `mv * _k` <= 65535 << 14 = 1073725440 < 2**30.
    """

    def __init__(self, adc, zero_mv, span_mv):
        self._read_uv = adc.read_uv
        self._zero = zero_mv
        self._span = span_mv
        self._k = (65535 << _K_SHIFT) // span_mv

    def read_u16(self):
        mv = (self._read_uv() + 500) // 1000 - self._zero
        if mv <= 0:
            return 0
        if mv >= self._span:
            return 65535
        return (mv * self._k) >> _K_SHIFT


class _DacRef:
    """`duty_u16(code)` onto the 8-bit DAC (0..255 = 0..3.3 V), rounded to nearest."""

    def __init__(self, dac):
        self._write = dac.write

    def duty_u16(self, code):
        if code <= 0:
            self._write(0)
        elif code >= 65535:
            self._write(255)
        else:
            self._write((code * 255 + 32767) // 65535)   # < 2**24


class Hardware:
    """The objects the HAL drives; built by `build()`."""

    def __init__(self, machine, watchdog, ref):
        Pin = machine.Pin
        # 1. the output stage stays off: enable driven low before anything else
        self.enable = Pin(PIN_ENABLE, Pin.OUT, value=0)
        # 2. reference at zero
        if ref == "dac":
            self.ref = _DacRef(machine.DAC(Pin(PIN_REF)))
            self.ref.duty_u16(0)
        elif ref == "pwm":
            # duty in the constructor: a bare PWM(pin) may start at a default duty (50 %)
            self.ref = machine.PWM(Pin(PIN_REF), freq=PWM_FREQ_HZ, duty_u16=0)
        else:
            raise ValueError("ref must be 'pwm' or 'dac'")
        # 3. pulse gate fully on (DC) until a pulsed session sets it
        self.gate = machine.PWM(Pin(PIN_GATE), freq=GATE_FREQ_HZ, duty_u16=65535)
        self.polarity = Pin(PIN_POLARITY, Pin.OUT, value=0)
        adc = machine.ADC(Pin(PIN_ADC_I))
        adc.atten(machine.ADC.ATTN_11DB)
        self.adc_i = _UvAdc(adc, ADC_ZERO_MV, ADC_SPAN_MV)
        adc = machine.ADC(Pin(PIN_ADC_V))
        adc.atten(machine.ADC.ATTN_11DB)
        self.adc_v = _UvAdc(adc, ADC_ZERO_MV, ADC_SPAN_MV)
        self.trip = Pin(PIN_TRIP, Pin.IN, Pin.PULL_UP)
        # a started WDT cannot be stopped: only main asks for it, once, last
        self.wdt = machine.WDT(timeout=WDT_TIMEOUT_MS) if watchdog else None


def build(watchdog=False, ref="pwm"):
    """Build the hardware with the output off. `watchdog=True` starts the WDT (main does).

    `ref="pwm"` (default, needs the RC filter) or `ref="dac"` (8-bit DAC on GPIO25).
    """
    import machine
    return Hardware(machine, watchdog, ref)


def watchdog():
    """Start the hardware watchdog (it cannot be stopped); main arms it at session start."""
    import machine
    return machine.WDT(timeout=WDT_TIMEOUT_MS)


class UiHardware:
    """Buttons, LED and buzzer (firmware/ui.py); built by `build_ui()`."""

    def __init__(self, machine):
        Pin = machine.Pin
        self.btn_start = Pin(PIN_BTN_START, Pin.IN, Pin.PULL_UP)
        self.btn_up = Pin(PIN_BTN_UP, Pin.IN, Pin.PULL_UP)
        self.btn_down = Pin(PIN_BTN_DOWN, Pin.IN, Pin.PULL_UP)
        self.led = Pin(PIN_LED, Pin.OUT, value=0)
        # duty in the constructor: a bare PWM(pin) may start at 50 % (a tone at boot)
        self.buzzer = machine.PWM(Pin(PIN_BUZZER), freq=2000, duty_u16=0)


def build_ui():
    """The buttons and indicators, all quiet (main builds them once, after `build()`)."""
    import machine
    return UiHardware(machine)
