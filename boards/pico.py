"""Raspberry Pi Pico (RP2040) board: pins, analog front-end and `build()`.

Front-end (see docs/boards.md for the schematic assumptions):
    reference  GP16 PWM 50 kHz -> 2-pole RC (2 x 3.3 kΩ / 100 nF) -> source input,
               source I = Vref / 100 Ω, so 3.3 V (duty 65535) = 33 mA
    current    82 Ω low-side shunt, buffer gain 1 -> GP26 (ADC0), 3.3 V ADC_VREF
    voltage    electrode A -> 20:1 divider -> GP27 (ADC1)
    enable     GP15 output, external 10 kΩ pull-down (off at reset and while booting)
    polarity   GP14 output to the H-bridge / relay driver
    trip       GP13 input, pull-up; the comparator's open-drain output holds it low
               while the current is below 35 mA, so a broken wire reads "tripped"
    gate       GP18 PWM (slice 1A, 1-10 kHz) to the source's pulse gate (high = source on,
               10 kΩ pull-up: ungated DC from reset); duty 65535 at build = DC. Pulsed
               mode sets its frequency and duty; the enable pin stays the output switch
    ui         buttons to GND (pull-up, 0 = pressed): start/stop GP10, up GP11, down GP12;
               panel LED GP20 (high = on); piezo buzzer GP9 (PWM slice 4B); build_ui()
The RP2040 ADC has DNL spikes at 12-bit codes 512/1536/2560/3584 (erratum
RP2040-E11): every sample averages OVERSAMPLE reads (noise dithers across them).
`machine` is imported inside `build()` so host tools can read the constants.
"""

from micropython import const

NAME = "pico"

# pins (GPIO numbers)
PIN_ENABLE = const(15)
PIN_POLARITY = const(14)
PIN_TRIP = const(13)
PIN_REF_PWM = const(16)     # PWM slice 0 channel A
PIN_ADC_I = const(26)       # ADC0
PIN_GATE_PWM = const(18)    # pulse gate, PWM slice 1A (slice 0 is the reference's)
PIN_ADC_V = const(27)       # ADC1
PIN_BTN_START = const(10)   # buttons (firmware/ui.py): to GND, internal pull-up
PIN_BTN_UP = const(11)
PIN_BTN_DOWN = const(12)
PIN_LED = const(20)         # panel LED (GP25, the on-board LED, is Pico-internal)
PIN_BUZZER = const(9)       # piezo, PWM slice 4 channel B (not slice 0: the reference's)

# physical values
ADC_REF_MV = const(3300)    # ADC_VREF: the board's filtered 3V3 rail
SHUNT_OHM = const(82)
SENSE_GAIN = const(1)
DIVIDER_RATIO = const(20)   # electrode volts / ADC pin volts (e.g. 191 kΩ over 10 kΩ)
PWM_HIGH_MV = const(3300)   # PWM output high level (IOVDD)
SOURCE_R_OHM = const(100)   # source transconductance: I = Vref / SOURCE_R_OHM
PWM_FREQ_HZ = const(50000)  # 125 MHz / 50 kHz = 2500 counts (~11.3 bits)
RC_R_OHM = const(3300)      # reference filter, two equal RC poles (~480 Hz each)
RC_C_NF = const(100)
GATE_FREQ_HZ = const(1000)  # pulse gate frequency at build (duty 65535: DC whatever it is)

# the board contract (ints)
CONTROL_PERIOD_US = const(5000)
I_FS_UA = const(ADC_REF_MV * 1000 // (SHUNT_OHM * SENSE_GAIN))  # 40243 µA at code 65535
V_FS_MV = const(ADC_REF_MV * DIVIDER_RATIO)                      # 66000 mV at code 65535
REF_FS_UA = const(PWM_HIGH_MV * 1000 // SOURCE_R_OHM)            # 33000 µA at code 65535
COMPLIANCE_MV = const(40000)
HW_TRIP_UA = const(35000)
OVERSAMPLE = const(4)
WDT_TIMEOUT_MS = const(500)  # < 8388 (rp2040 maximum); > worst-case flash erase stall
# a flash program or erase stalls the CPU (execute-in-place off, interrupts masked): 45 ms
# typical per 4 KB erase, 400 ms max (W25Q16JV datasheet); the app writes no flash while
# the output is enabled (firmware/app.py)
FLASH_WRITE_STALLS = True


class Hardware:
    """The objects the HAL drives; built by `build()`."""

    def __init__(self, machine, watchdog):
        Pin = machine.Pin
        # 1. the output stage stays off: enable driven low before anything else
        self.enable = Pin(PIN_ENABLE, Pin.OUT, value=0)
        # 2. reference at zero, then the PWM frequency (re-apply 0 after the freq change)
        ref = machine.PWM(Pin(PIN_REF_PWM))
        ref.duty_u16(0)
        ref.freq(PWM_FREQ_HZ)
        ref.duty_u16(0)
        self.ref = ref
        # 3. pulse gate fully on (DC) until a pulsed session sets it
        gate = machine.PWM(Pin(PIN_GATE_PWM))
        gate.duty_u16(65535)
        gate.freq(GATE_FREQ_HZ)
        gate.duty_u16(65535)
        self.gate = gate
        self.polarity = Pin(PIN_POLARITY, Pin.OUT, value=0)
        self.adc_i = machine.ADC(Pin(PIN_ADC_I))
        self.adc_v = machine.ADC(Pin(PIN_ADC_V))
        self.trip = Pin(PIN_TRIP, Pin.IN, Pin.PULL_UP)
        # a started WDT cannot be stopped: only main asks for it, once, last
        self.wdt = machine.WDT(timeout=WDT_TIMEOUT_MS) if watchdog else None


def build(watchdog=False):
    """Build the hardware with the output off. `watchdog=True` starts the WDT (main does)."""
    import machine
    return Hardware(machine, watchdog)


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
        buzzer = machine.PWM(Pin(PIN_BUZZER))
        buzzer.duty_u16(0)
        buzzer.freq(2000)
        buzzer.duty_u16(0)
        self.buzzer = buzzer


def build_ui():
    """The buttons and indicators, all quiet (main builds them once, after `build()`)."""
    import machine
    return UiHardware(machine)
