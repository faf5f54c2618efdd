"""Hardware abstraction: the only firmware layer that touches hardware objects.

A board file (`boards/<name>.py`) builds a *hardware* object with these attributes,
all duck-typed after `machine`:
    adc_i     .read_u16() -> 0..65535   current sense (shunt amplifier)
    adc_v     .read_u16() -> 0..65535   electrode voltage divider
    ref       .duty_u16(code)           source reference, 0..65535 (PWM+RC or DAC adapter)
    enable    .value(0/1)               output stage enable (off at reset)
    polarity  .value(0/1)               H-bridge / relay direction
    trip      .value() -> 1 if tripped  hardware over-current comparator, or None
    wdt       .feed()                   watchdog, or None
    gate      .freq(hz), .duty_u16(d)   pulse gate of the source (PWM), or None / absent;
                                        d = 65535 keeps the source always on (DC)
and module constants I_FS_UA, V_FS_MV, REF_FS_UA, OVERSAMPLE (power of two).
All conversions are integer (Q12 factors computed once), so reads and writes
allocate nothing on the heap.

Pulsed mode: `set_pulse(hz, duty_pct)` gates the source on for duty % of each period.
The loop keeps working in *average* µA (the sense paths are RC filtered, they read the
average); `set_current_ua` turns the average command into the peak reference
(avg x 100 / duty, integer). `pulse_off()` returns the gate to DC.
"""

from micropython import const

_Q = const(12)


class Hal:
    def __init__(self, hw, board, cal):
        self._read_i = hw.adc_i.read_u16
        self._read_v = hw.adc_v.read_u16
        self._duty = hw.ref.duty_u16
        self._enable = hw.enable.value
        self._polarity = hw.polarity.value
        self._trip = hw.trip.value if hw.trip is not None else None
        self._feed = hw.wdt.feed if hw.wdt is not None else None
        self.gate = getattr(hw, "gate", None)
        self.duty_pct = 100          # gate duty applied (100 = DC)
        n = board.OVERSAMPLE
        self._n = n
        self._shift = 0
        while (1 << self._shift) < n:
            self._shift += 1
        if (1 << self._shift) != n:
            raise ValueError("OVERSAMPLE must be a power of two")
        self.enabled = False
        self.ref_code = 0
        self.polarity = 0
        self.set_calibration(board, cal)
        self.off()
        self._polarity(0)
        self.pulse_off()

    def set_calibration(self, board, cal):
        """Precompute the Q12 conversion factors (allowed to allocate: not in the loop)."""
        self._i_off = cal.i_offset
        self._i_k = (board.I_FS_UA * cal.i_gain * 4096) // (65536 * 16384)
        self._v_off = cal.v_offset
        self._v_k = (board.V_FS_MV * cal.v_gain * 4096) // (65536 * 16384)
        self._r_off = cal.r_offset
        self._r_k = (65536 * 16384 * 4096) // (board.REF_FS_UA * cal.r_gain)
        # above this the code is full scale anyway; clamping first keeps ua * _r_k small
        self._ua_max = ((65535 - self._r_off) << _Q) // self._r_k + 1

    def _read(self, read):
        if self._n == 1:
            return read()
        s = 0
        for _ in range(self._n):
            s += read()
        return s >> self._shift

    def read_current_code(self):
        """Raw (oversampled) current ADC code, for calibration and self tests."""
        return self._read(self._read_i)

    def read_voltage_code(self):
        return self._read(self._read_v)

    # The two reads below run every step: the oversampling loop is written out in each
    # (no helper call, locals only) because a call costs more than the sum on an RP2040.
    def read_current_ua(self):
        read = self._read_i
        s = 0
        for _ in range(self._n):
            s += read()
        return (((s >> self._shift) - self._i_off) * self._i_k) >> _Q

    def read_voltage_mv(self):
        read = self._read_v
        s = 0
        for _ in range(self._n):
            s += read()
        return (((s >> self._shift) - self._v_off) * self._v_k) >> _Q

    def code_for_ua(self, ua):
        """Reference code that makes the (calibrated) source deliver `ua` microamps."""
        if ua <= 0:
            return 0
        if ua >= self._ua_max:
            return 65535
        code = ((ua * self._r_k) >> _Q) + self._r_off
        if code < 0:
            return 0
        return 65535 if code > 65535 else code

    def set_pulse(self, hz, duty_pct):
        """Gate the source at `hz`, on `duty_pct` % of each period (outside the loop).
        ValueError if the board has no gate."""
        if self.gate is None:
            raise ValueError("board has no pulse gate")
        if not 0 < duty_pct <= 100:
            raise ValueError("duty_pct outside 1..100")
        self.gate.freq(hz)
        self.gate.duty_u16(65535 if duty_pct == 100 else duty_pct * 65535 // 100)
        self.duty_pct = duty_pct

    def pulse_off(self):
        """Gate fully on: the source runs DC."""
        if self.gate is not None:
            self.gate.duty_u16(65535)
        self.duty_pct = 100

    def set_current_ua(self, ua):
        """Command the *average* current `ua` (pulsed: the reference is the peak)."""
        d = self.duty_pct
        if d != 100:
            ua = ua * 100 // d
        # code_for_ua() written out (every step)
        if ua <= 0:
            code = 0
        elif ua >= self._ua_max:
            code = 65535
        else:
            code = ((ua * self._r_k) >> _Q) + self._r_off
            if code < 0:
                code = 0
            elif code > 65535:
                code = 65535
        self.ref_code = code
        self._duty(code)

    def set_enabled(self, on):
        self.enabled = bool(on)
        self._enable(1 if on else 0)

    def set_polarity(self, p):
        """Flip the H-bridge, never with current flowing: the output is cut first."""
        if self.enabled or self.ref_code:
            self.off()
        self.polarity = p
        self._polarity(p)

    def hw_tripped(self):
        return self._trip is not None and self._trip() == 1

    def set_watchdog(self, wdt):
        """Start feeding `wdt` (an object with feed()) from the next step on."""
        self._feed = wdt.feed

    def feed_watchdog(self):
        if self._feed is not None:
            self._feed()

    def off(self):
        """Cut the output: the enable switch first (the instant, reliable cut), then
        the reference, which only discharges through its filter."""
        self.enabled = False
        try:
            self._enable(0)
        finally:
            self.ref_code = 0
            self._duty(0)
