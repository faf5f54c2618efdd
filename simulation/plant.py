"""Plant model: reference filter, analog current source, the patient load, the ADCs.

Plain Python for CPython and MicroPython alike (floats are fine here: the plant is
not firmware). It reports the *true* current, which tests use to judge safety.

Load (contact): water+body in series (R_s) with skin R || C, plus an electrode/skin
polarization offset that opposes the drive. Skin R has the low-current
non-linearity (apparent R ~3x at 0, 1.1x at 3 mA, monotonic V(I)), an optional drift, and a
partial lift of one hand.

Wetted area (issue 13): `lift_area` is the wetted area of one hand (or foot) as a fraction
of full immersion (above 1: deeper than usual); the other stays fully in. Each hand's
skin is R || C with R ∝ 1/area and C ∝ area (~0.03 µF/cm²): `skin_ohm` and `skin_uf`
are the two hands in series at full immersion, so one hand has skin_ohm / 2 and
2 x skin_uf. Lifted: R = skin_ohm x (0.5 + 0.5 / a), C = skin_uf x 2a / (1 + a) (the two
capacitances in series). Both hands keep the same time constant R·C whatever the area,
so one capacitor voltage for the pair is exact. The hazard is the current density on
the least-wetted skin: `density_ratio` = true current / (its area x `density_ref_ua`),
the density relative to full immersion at the reference current (the scenario sets it to
the profile's target). The source holds its commanded current unless the
load needs more than the compliance voltage; then the current is what the rail can
push, and the skin capacitance makes the transition gradual. Open circuit: the
output rails and its capacitance charges; a re-contact discharges it into the load.

Pulse gate (pulsed mode): `gate_duty` (0..1, 1 = DC) and `gate_hz`. In the on-phase the
source delivers its commanded current, in the off-phase nothing. The pulse period
(0.1-1 ms) is far below the skin time constant, so the series resistance sees the
peak (compliance: peak x R_s + skin + offset <= rail) while the skin capacitance
integrates the average (an effective series resistance R_s / duty when railed). The
sense paths (RC-filtered amplifiers) see the average current and electrode voltage.
`true_ua` is the average, `pulse_peak_ua` the on-phase current (no re-contact spike),
`peak_ua` the highest instantaneous current including the spike.

All events are attribute writes or `set()` calls between steps; `step(dt_s)` advances
the physics by one control period with exact exponentials (stable for any dt).
"""

import math

_ADC_MAX = 65535


class Plant:
    def __init__(self, compliance_v=40.0, water_ohm=300.0, body_ohm=700.0, skin_ohm=2000.0,
                 skin_uf=0.5, offset_v=2.0, nonlinear=True, skin_drift=0.0, drift_tau_s=120.0,
                 ref_fs_ua=33000.0, ref_tau_ms=2.0, source_gain_error=0.0, source_offset_ua=0.0,
                 i_fs_ua=33000.0, v_fs_mv=66000.0, adc_bits=12, adc_noise_lsb=0.0,
                 adc_i_gain_error=0.0, adc_i_offset_lsb=0.0, adc_v_gain_error=0.0,
                 adc_v_offset_lsb=0.0, adc_dnl=False, c_out_nf=10.0, seed=1):
        self.compliance_v = compliance_v
        self.water_ohm = water_ohm
        self.body_ohm = body_ohm
        self.skin_ohm = skin_ohm
        self.skin_uf = skin_uf
        self.offset_v = offset_v
        self.nonlinear = nonlinear
        self.skin_drift = skin_drift
        self.drift_tau_s = drift_tau_s
        self.ref_fs_ua = ref_fs_ua
        self.ref_tau_s = ref_tau_ms / 1000.0
        self.source_gain_error = source_gain_error
        self.source_offset_ua = source_offset_ua
        self.i_fs_ua = i_fs_ua
        self.v_fs_mv = v_fs_mv
        self.adc_bits = adc_bits
        self.adc_noise_lsb = adc_noise_lsb
        self.adc_i_gain_error = adc_i_gain_error
        self.adc_i_offset_lsb = adc_i_offset_lsb
        self.adc_v_gain_error = adc_v_gain_error
        self.adc_v_offset_lsb = adc_v_offset_lsb
        self.adc_dnl = adc_dnl
        self.c_out_f = c_out_nf * 1e-9
        self._seed = (seed * 2654435761 + 1) & 0x3FFFFFFF or 1
        # event-driven state
        self.contact = False
        self.short = False
        self.lift_area = 1.0       # wetted area of one hand, 1 = fully in (> 1: deeper)
        self.density_ref_ua = 0.0  # full-immersion current the density is relative to
        self.r_factor = 1.0        # skin R multiplier after a polarity reversal
        self.faults = {}           # name -> True: adc_stuck_low/high, v_stuck_low/high,
        #                            enable_stuck_on, source_dead, source_runaway
        # outputs written by the board objects
        self.ref_code = 0
        self.enable = 0
        self.polarity = 0
        self.gate_duty = 1.0       # pulse gate: fraction of each period the source is on
        self.gate_hz = 0
        self.gate_code = None      # a PWM duty code written by the board (applied in step)
        # physics state
        self._ref_f = 0.0          # filtered reference, as a fraction of full scale
        self._vc = 0.0             # skin capacitor voltage
        self._vpol = 0.0           # polarization offset, signed (+ opposes the drive)
        self._vout = 0.0           # open-circuit output node voltage
        self._pol_seen = 0
        self._contact_s = 0.0
        self._i = 0.0
        self._dt = -1.0
        # what the tests judge and what the ADCs show
        self.true_ua = 0.0         # mean true current over the last step
        self.peak_ua = 0.0         # highest instantaneous true current in the last step
        self.pulse_peak_ua = 0.0   # highest on-phase source current (no re-contact spike)
        self._i_on = 0.0
        self.v_load = 0.0          # electrode voltage at the end of the step, volts
        self.density_ratio = 0.0   # true current on the least-wetted skin per area, relative
        self.limited = False       # the source was at its compliance rail
        self.i_code = 0
        self.v_code = 0

    # ---- random numbers: integer LCG, identical on CPython and MicroPython ------------
    def _noise(self):
        """Roughly normal, unit variance (sum of 4 uniforms, scaled)."""
        s = self._seed
        acc = 0
        for _ in range(4):
            s = (s * 1103515245 + 12345) & 0x3FFFFFFF
            acc += s >> 14
        self._seed = s
        return (acc - 2 * 65536) * (1.7320508 / 65536)

    # ---- physics ---------------------------------------------------------------------
    def skin_now(self, i_ua):
        """Effective skin R (Ω) at current `i_ua`: base, drift, non-linearity, lift, reversal."""
        r = self.skin_ohm * self.r_factor
        if self.skin_drift:
            r *= 1.0 - self.skin_drift * (1.0 - math.exp(-self._contact_s / self.drift_tau_s))
        if self.lift_area < 1.0:
            r = 0.5 * r + 0.5 * r / self.lift_area
        if self.nonlinear:
            # ~3x at 0, 1.74x at 1 mA, 1.1x at 3 mA; V = I*R(I) still rises with I
            r *= 1.0 + 2.0 * math.exp(-i_ua / 1000.0) if i_ua > 0 else 3.0
        return r

    def skin_c_f(self):
        """Skin capacitance of the two hands in series (F): C ∝ each hand's wetted area."""
        a = self.lift_area
        return self.skin_uf * 1.0e-6 * (2.0 * a / (1.0 + a) if a != 1.0 else 1.0)

    def least_area(self):
        """Wetted area of the least-wetted electrode's hand (the other is fully in)."""
        a = self.lift_area
        return a if a < 1.0 else 1.0

    def step(self, dt_s):
        if dt_s != self._dt:
            self._dt = dt_s
            self._a_ref = math.exp(-dt_s / self.ref_tau_s)
        if self.gate_code is not None:
            self.gate_duty = self.gate_code / 65535
            self.gate_code = None
        f = self.faults
        on = self.enable or f.get("enable_stuck_on", False)
        if self.polarity != self._pol_seen:
            # the offset's sign follows the drive (docs/requirements.md, the plant model): it depolarizes and
            # builds up again against the new direction; the skin reads ~20 % higher
            self._pol_seen = self.polarity
            self._vpol = 0.0
            self.r_factor *= 1.2
        target = self.ref_code / _ADC_MAX
        self._ref_f = target + (self._ref_f - target) * self._a_ref
        if on and f.get("source_runaway", False):
            i_cmd = self.ref_fs_ua          # failed pass device: full scale, reference ignored
        elif on and not f.get("source_dead", False):
            i_cmd = self._ref_f * self.ref_fs_ua * (1.0 + self.source_gain_error) + self.source_offset_ua
            if i_cmd < 0.0:
                i_cmd = 0.0
        else:
            i_cmd = 0.0
        v_avail = self.compliance_v
        i0 = self._i
        on0 = self._i_on
        duty = self.gate_duty if on else 1.0
        if duty > 1.0:
            duty = 1.0
        elif duty < 0.0:
            duty = 0.0
        spike = 0.0
        peak = 0.0
        i_on = None                # on-phase current when it differs from the average
        if not on:
            i1 = 0.0
            self._vout = 0.0
            self._vc *= 0.5
            v = self._vc if self.contact else 0.0
            self.limited = False
        elif self.short:
            i1 = i_cmd
            if i1 * 1.0e-6 > v_avail:
                i1 = v_avail * 1.0e6
            if duty < 1.0:
                i_on = i1
                i1 *= duty
            v = i1 * 1.0e-6
            self._vout = v
            self.limited = False
        elif not self.contact:
            i1 = 0.0
            self._vc = 0.0
            self._vout = v_avail if i_cmd > 0.0 else 0.0
            v = self._vout
            self.limited = i_cmd > 0.0
        else:
            self._contact_s += dt_s
            rs = self.water_ohm + self.body_ohm
            rk = self.skin_now(i0)
            c = self.skin_c_f()
            # polarization builds towards +offset_v while current flows (tau 5 s)
            self._vpol += (self.offset_v - self._vpol) * (dt_s / (5.0 + dt_s))
            vpol = self._vpol
            vc = self._vc
            if self._vout > 0.0:
                # re-contact: the charged output capacitance discharges into the load
                dv = self._vout - vc - vpol
                if dv > 0.0:
                    spike = self.c_out_f * dv / dt_s * 1.0e6
                    peak = dv / rs * 1.0e6
                self._vout = 0.0
            # the series path carries the peak (i_cmd), the skin charges with the average
            i_avg = i_cmd * duty if duty < 1.0 else i_cmd
            need = i_cmd * 1.0e-6 * rs + vc + vpol
            if need <= v_avail:
                vinf = i_avg * 1.0e-6 * rk
                vc1 = vinf + (vc - vinf) * math.exp(-dt_s / (rk * c))
                # the skin capacitance may charge into the rail within the step
                need = i_cmd * 1.0e-6 * rs + vc1 + vpol
            if need <= v_avail:
                vc = vc1
                i1 = i_avg
                i_on = i_cmd
                self.limited = False
            else:
                # railed: the on-phase current is (rail - skin - offset) / R_s; averaged
                # over the period the skin sees an effective series R_s / duty
                rse = rs / duty if 0.0 < duty < 1.0 else rs
                rp = rk * rse / (rk + rse)
                vinf = (v_avail - vpol) * rk / (rk + rse)
                vc = vinf + (vc - vinf) * math.exp(-dt_s / (rp * c)) if duty > 0.0 else vc
                i_on = (v_avail - vc - vpol) / rs * 1.0e6
                if i_on < 0.0:
                    i_on = 0.0
                if i_on > i_cmd:
                    i_on = i_cmd
                i1 = i_on * duty if duty < 1.0 else i_on
                self.limited = True
            self._vc = vc
            v = i1 * 1.0e-6 * rs + vc + vpol
        self._i = i1
        if i_on is None or duty >= 1.0:
            i_on = i1
        self._i_on = i_on
        mean = (i0 + i1) * 0.5 if on else 0.0
        self.true_ua = mean + spike
        self.pulse_peak_ua = max(on0 if on else 0.0, i_on)
        self.peak_ua = max(self.pulse_peak_ua, peak)
        self.v_load = v
        ref = self.density_ref_ua
        self.density_ratio = self.true_ua / (ref * self.least_area()) \
            if ref > 0.0 and self.contact and not self.short else 0.0
        self.i_code = self.sample_i_code()
        self.v_code = self.sample_v_code()

    def sample_i_code(self):
        """A new sample (fresh noise) of the current ADC at the end of the last step, as
        read_u16() returns it. The emulated Pico takes one per ADC conversion."""
        f = self.faults
        return self._adc(self._i, self.i_fs_ua, self.adc_i_gain_error, self.adc_i_offset_lsb,
                         f.get("adc_stuck_low"), f.get("adc_stuck_high"))

    def sample_v_code(self):
        """A new sample of the electrode-voltage ADC (see sample_i_code)."""
        f = self.faults
        return self._adc(self.v_load * 1000.0, self.v_fs_mv, self.adc_v_gain_error,
                         self.adc_v_offset_lsb, f.get("v_stuck_low"), f.get("v_stuck_high"))

    def _adc(self, x, fs, gain_error, offset_lsb, stuck_low, stuck_high):
        """Quantize `x` (in units of `fs`) like a `bits` ADC read through read_u16()."""
        top = (1 << self.adc_bits) - 1
        if stuck_low:
            return 0
        if stuck_high:
            return top << (16 - self.adc_bits)
        lsb = x * (1.0 + gain_error) / fs * (top + 1) + offset_lsb
        if self.adc_noise_lsb:
            lsb += self._noise() * self.adc_noise_lsb
        code = int(lsb + 0.5) if lsb > 0.0 else 0
        if code > top:
            code = top
        if self.adc_dnl and (code & 1023) == 511:
            code += 1      # RP2040: codes 512/1536/2560/3584 are wide
        return code << (16 - self.adc_bits)
