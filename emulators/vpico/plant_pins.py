"""The plant model on the emulated Pico's pins, as boards/pico.py's front-end wires it.

Runs on the MicroPython WebAssembly port inside the emulator's Node process
(emulators/vpico/frontend.mjs calls it); it is plain Python and also imports on CPython,
where host tests check it. There is one plant model, simulation/plant.py: this file only
translates pin levels and PWM duties into the plant's inputs and the plant's state into
12-bit ADC codes and the comparator's level.

Wiring (boards/pico.py):
    GP16 PWM duty (0..1)   -> plant reference (REF_FS_UA at 100 %, two RC poles)
    GP15 enable, GP14 polarity, GP18 pulse gate PWM duty (1 = DC)
    ADC0 <- current sense (I_FS_UA at 3.3 V), ADC1 <- electrode voltage / DIVIDER_RATIO
    GP13 <- over-current comparator: low below HW_TRIP_UA, high above (open drain), or
            forced high by the control file's "comparator": true
    GP10 / 11 / 12 <- start, up, down: low while held ("btn_start", "btn_up", "btn_down",
            or up + down for "service_button")
Every ADC sample draws fresh noise from the plant's generator, so the firmware's
oversampling averages real dither, and the RP2040-E11 DNL spikes are on (the plant's
`adc_dnl`; rp2040js models neither).

The load and the unit's errors come from the same control file as the virtual board's
(keys and checks: boards/sim.py `LOAD_KEYS`, `parse_control`), applied with
`control(text)`. `row()` gives the plant's *true* values for the recording that tests
judge safety on; `meter_ms(ms)` accumulates the bench meter (the true mean current and
electrode voltage per emulated second) that `--meter sim` calibration reads.
"""

import pico
import sim
from plant import Plant

# the reference filter: two equal RC poles of RC_R_OHM x RC_C_NF, modelled by the plant
# as one pole of their summed time constant (0.66 ms; the loop period is 5 ms)
REF_TAU_MS = 2 * pico.RC_R_OHM * pico.RC_C_NF / 1e6
ADC_TOP = 4095
DEFAULTS = {"compliance_v": pico.COMPLIANCE_MV / 1000, "adc_noise_lsb": 1.0, "adc_dnl": True}


class PinsPlant:
    """A Plant behind the Pico's pins. Times in µs of the emulator's clock."""

    def __init__(self, seed=1, **plant_args):
        args = dict(DEFAULTS)
        args.update(plant_args)
        self.plant = Plant(ref_fs_ua=pico.REF_FS_UA, i_fs_ua=pico.I_FS_UA,
                           v_fs_mv=pico.V_FS_MV, ref_tau_ms=REF_TAU_MS, adc_bits=12,
                           seed=seed, **args)
        self.t_us = 0
        self.control_error = ""
        self.service_button = False
        self.buttons = {"btn_start": False, "btn_up": False, "btn_down": False}
        self.comparator = False     # forced high by the control file
        self.meter = False
        self._m_ua = 0.0
        self._m_v = 0.0
        self._m_us = 0
        self.meter_seq = 0
        self.meter_last = None      # (µA, V) of the last whole emulated second
        self.max_ua = 0.0           # highest true current since the last row()

    def step(self, dt_us, ref_duty, enable, polarity, gate_duty):
        """Advance the plant by `dt_us` with the pins as they are now; returns 1 when the
        comparator's output is high (tripped), else 0."""
        p = self.plant
        p.ref_code = int(ref_duty * 65535 + 0.5)
        p.enable = 1 if enable else 0
        p.polarity = 1 if polarity else 0
        p.gate_duty = gate_duty
        p.step(dt_us / 1e6)
        self.t_us += dt_us
        if p.peak_ua > self.max_ua:
            self.max_ua = p.peak_ua
        if self.meter:
            self._meter_add(dt_us)
        return 1 if self.comparator or p.peak_ua >= pico.HW_TRIP_UA else 0

    def held(self, button):
        """1 if `button` (btn_start, btn_up, btn_down) is held now; up and down are also
        held by the service button."""
        if self.service_button and button != "btn_start":
            return 1
        return 1 if self.buttons[button] else 0

    def adc(self, channel):
        """One 12-bit sample of ADC0 (current) or ADC1 (voltage), fresh noise."""
        p = self.plant
        if channel == 0:
            code = p.sample_i_code()
        else:
            code = p.sample_v_code()
        return code >> (16 - p.adc_bits)

    def control(self, text):
        """Apply a control file's text (boards/sim.py keys; `speed` is ignored: the
        emulator runs as fast as it can). Returns "" or why it was refused (then
        nothing changed)."""
        try:
            settings = sim.parse_control(text) if text.strip() else {}
        except ValueError as e:
            self.control_error = str(e)
            return self.control_error
        self.control_error = ""
        self.meter = settings.pop("meter", False)
        self.service_button = settings.pop("service_button", False)
        self.comparator = settings.pop("comparator", False)
        for k in self.buttons:
            self.buttons[k] = settings.pop(k, False)
        settings.pop("speed", None)
        sim.apply_control(settings, self.plant)
        return ""

    def row(self):
        """The true state now, as a CSV row: t_ms, true_ua, max_ua (highest instantaneous
        current since the last row), v_load (V), enable, polarity, ref_code, gate_duty,
        limited, contact."""
        p = self.plant
        r = "%d,%.1f,%.1f,%.3f,%d,%d,%d,%.3f,%d,%d" % (
            self.t_us // 1000, p.true_ua, self.max_ua, p.v_load, p.enable, p.polarity,
            p.ref_code, p.gate_duty, 1 if p.limited else 0, 1 if p.contact else 0)
        self.max_ua = 0.0
        return r

    def _meter_add(self, dt_us):
        p = self.plant
        self._m_ua += p.true_ua * dt_us
        self._m_v += p.v_load * dt_us
        self._m_us += dt_us
        if self._m_us >= 1000000:
            self.meter_last = (self._m_ua / self._m_us, self._m_v / self._m_us)
            self.meter_seq += 1
            self._m_ua = 0.0
            self._m_v = 0.0
            self._m_us = 0

    def meter_json(self):
        """The bench meter's file text (boards/sim.py METER_FILE format), or ""."""
        if self.meter_last is None:
            return ""
        return '{"seq": %d, "ua": %.3f, "v": %.5f}\n' % (self.meter_seq, self.meter_last[0],
                                                       self.meter_last[1])


ROW_HEADER = "t_ms,true_ua,max_ua,v_load,enable,polarity,ref_code,gate_duty,limited,contact"
