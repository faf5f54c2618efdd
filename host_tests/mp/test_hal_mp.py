"""firmware/hal.py with tiny fake hardware objects: integer conversions, clamping, ordering.

The fakes log every write in order to one shared list, so a test can see that the output
is cut (reference to zero, then the enable) before the polarity moves.
MicroPython-compatible: run by mptest on CPython, the unix and the WebAssembly ports.
"""

import sys

import mptest
from calibration import ONE, Calibration
from hal import Hal


class Board:
    I_FS_UA = 33000
    V_FS_MV = 66000
    REF_FS_UA = 33000
    OVERSAMPLE = 1


def board(**kw):
    b = Board()
    for k in kw:
        setattr(b, k, kw[k])
    return b


class Adc:
    """read_u16() cycles through `codes` (one code: a constant)."""

    def __init__(self, codes=(0,)):
        self.codes = list(codes)
        self.k = 0

    def set(self, code):
        self.codes[0] = code
        self.k = 0

    def read_u16(self):
        c = self.codes[self.k]
        self.k += 1
        if self.k == len(self.codes):
            self.k = 0
        return c


class Ref:
    def __init__(self, log):
        self.log = log
        self.code = None

    def duty_u16(self, code):
        self.code = code
        if self.log is not None:
            self.log.append(("ref", code))


class Pin:
    def __init__(self, name, log, v=0):
        self.name = name
        self.log = log
        self.v = v

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        if self.log is not None:
            self.log.append((self.name, v))


class Wdt:
    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class Hw:
    def __init__(self, log=None, trip=False, wdt=False, oversample_codes=None):
        self.adc_i = Adc(oversample_codes or (0,))
        self.adc_v = Adc()
        self.ref = Ref(log)
        self.enable = Pin("enable", log)
        self.polarity = Pin("polarity", log)
        self.trip = Pin("trip", log) if trip else None
        self.wdt = Wdt() if wdt else None


def make(log=None, cal=None, **board_kw):
    hw = Hw(log, trip=True, wdt=True)
    hal = Hal(hw, board(**board_kw), cal or Calibration())
    return hw, hal


def test_constructor_leaves_output_off():
    log = []
    hw, hal = make(log)
    assert log == [("enable", 0), ("ref", 0), ("polarity", 0)], log
    assert not hal.enabled and hal.ref_code == 0 and hal.polarity == 0


def test_current_conversion_identity_calibration():
    hw, hal = make()
    for code in (0, 1, 16, 1000, 20000, 32768, 65520, 65535):
        hw.adc_i.set(code)
        ua = hal.read_current_ua()
        assert isinstance(ua, int)
        exact = code * 33000 // 65536
        # Q12 factor: 33000 * 4096 / 65536 = 2062.5 truncated to 2062 (-0.025 %)
        assert exact - 10 <= ua <= exact, (code, ua, exact)
    hw.adc_i.set(65535)
    assert hal.read_current_ua() == (65535 * 2062) >> 12


def test_voltage_conversion_identity_calibration():
    hw, hal = make()
    for code in (0, 1, 1000, 32768, 65535):
        hw.adc_v.set(code)
        mv = hal.read_voltage_mv()
        exact = code * 66000 // 65536
        assert exact - 17 <= mv <= exact, (code, mv, exact)


def test_conversion_with_gain_and_offset():
    cal = Calibration(i_gain=ONE * 11 // 10, i_offset=100, v_gain=ONE * 9 // 10, v_offset=-50)
    hw, hal = make(cal=cal)
    hw.adc_i.set(30100)
    hw.adc_v.set(30000)
    ua = hal.read_current_ua()
    mv = hal.read_voltage_mv()
    want_ua = 30000 * 33000 * 11 // (65536 * 10)
    want_mv = 30050 * 66000 * 9 // (65536 * 10)
    assert abs(ua - want_ua) <= 10, (ua, want_ua)
    assert abs(mv - want_mv) <= 20, (mv, want_mv)
    # below the offset the reading goes negative (floor), it is not wrapped
    hw.adc_i.set(0)
    assert hal.read_current_ua() < 0


def test_oversample_averages_power_of_two():
    hw = Hw(oversample_codes=(100, 200, 300, 401))
    hal = Hal(hw, board(OVERSAMPLE=4), Calibration())
    hw.adc_v.set(0)
    # (100 + 200 + 300 + 401) >> 2 = 250
    assert hal.read_current_ua() == (250 * 2062) >> 12
    for bad in (3, 6):
        try:
            Hal(Hw(), board(OVERSAMPLE=bad), Calibration())
        except ValueError:
            pass
        else:
            raise AssertionError("OVERSAMPLE=%d accepted" % bad)


def test_code_for_ua_clamps_0_to_65535():
    hw, hal = make()
    assert hal.code_for_ua(0) == 0
    assert hal.code_for_ua(-1) == 0
    assert hal.code_for_ua(-30000) == 0
    assert 65530 <= hal.code_for_ua(33000) <= 65535   # Q12 factor truncated
    assert hal.code_for_ua(34000) == 65535
    assert hal.code_for_ua(10 ** 6) == 65535
    # a negative reference offset can push small currents below code 0: clamped
    hw, hal = make(cal=Calibration(r_offset=-4000))
    assert hal.code_for_ua(100) == 0
    # a positive one lifts every non-zero command, but zero stays zero
    hw, hal = make(cal=Calibration(r_offset=4000))
    assert hal.code_for_ua(0) == 0
    assert hal.code_for_ua(1) == 4000 + ((1 * 8134) >> 12)
    assert hal.code_for_ua(33000) == 65535


def test_code_for_ua_monotonic_and_accurate():
    for cal in (Calibration(), Calibration(r_gain=ONE * 3 // 4, r_offset=-300),
                Calibration(r_gain=ONE * 5 // 4, r_offset=300)):
        hw, hal = make(cal=cal)
        prev = 0
        for ua in range(0, 40001, 250):
            code = hal.code_for_ua(ua)
            assert 0 <= code <= 65535, (ua, code)
            assert code >= prev, (ua, code, prev)
            prev = code
            if 0 < code < 65535:
                # source_ua = (code - r_offset) * REF_FS / 65536 * r_gain / ONE
                src = (code - cal.r_offset) * 33000 * cal.r_gain // (65536 * ONE)
                assert abs(src - ua) <= 2 + ua // 2000, (ua, code, src)


def test_set_current_writes_reference():
    log = []
    hw, hal = make(log)
    del log[:]
    hal.set_current_ua(15000)
    code = hal.code_for_ua(15000)
    assert hal.ref_code == code and hw.ref.code == code
    assert log == [("ref", code)], log
    hal.set_current_ua(10 ** 6)
    assert hal.ref_code == 65535 and hw.ref.code == 65535
    hal.set_current_ua(-5)
    assert hal.ref_code == 0 and hw.ref.code == 0


def test_enable_and_off_order():
    log = []
    hw, hal = make(log)
    del log[:]
    hal.set_enabled(True)
    assert hal.enabled is True and hw.enable.v == 1
    hal.set_current_ua(5000)
    del log[:]
    hal.off()
    # the enable switch first (the instant cut), then the reference
    assert log == [("enable", 0), ("ref", 0)], log
    assert not hal.enabled and hal.ref_code == 0
    hal.set_enabled(0)
    assert hal.enabled is False and hw.enable.v == 0


def test_polarity_flip_cuts_output_first():
    log = []
    hw, hal = make(log)
    hal.set_enabled(True)
    hal.set_current_ua(8000)
    del log[:]
    hal.set_polarity(1)
    assert log == [("enable", 0), ("ref", 0), ("polarity", 1)], log
    assert hal.polarity == 1 and hw.polarity.v == 1
    assert not hal.enabled and hal.ref_code == 0
    # disabled but a reference still set: cut as well
    hal.set_current_ua(500)
    del log[:]
    hal.set_polarity(0)
    assert log == [("enable", 0), ("ref", 0), ("polarity", 0)], log
    # already off: only the polarity moves
    del log[:]
    hal.set_polarity(1)
    assert log == [("polarity", 1)], log


def test_hw_trip_and_watchdog():
    hw, hal = make()
    assert not hal.hw_tripped()
    hw.trip.v = 1
    assert hal.hw_tripped()
    hal.feed_watchdog()
    hal.feed_watchdog()
    assert hw.wdt.feeds == 2
    bare = Hal(Hw(), board(), Calibration())   # no comparator, no watchdog
    assert not bare.hw_tripped()
    bare.feed_watchdog()


def _io(hal):
    for _ in range(50):
        hal.read_current_ua()
        hal.read_voltage_mv()
        hal.set_current_ua(30000)
        hal.set_enabled(True)
        hal.hw_tripped()
        hal.feed_watchdog()
        hal.off()


def test_io_allocates_nothing_at_extreme_calibration():
    # Worst-case products of the Q12 conversions stay small ints even with 32-bit objects
    # (wasm, MCUs: small ints end at 2**30): the largest full scale, gain +25 %, offset -4096.
    if not mptest.is_micropython():
        raise mptest.Skip("heap accounting needs MicroPython (here " + sys.implementation.name + ")")
    cal = Calibration(i_gain=20480, i_offset=-4096, v_gain=20480, v_offset=-4096,
                      r_gain=12288, r_offset=4096)
    hw = Hw(trip=True, wdt=True, oversample_codes=(65535,) * 8)
    hal = Hal(hw, board(I_FS_UA=40243, V_FS_MV=66000, OVERSAMPLE=8), cal)
    hw.adc_v.set(65535)
    _io(hal)   # warm up
    assert hal.read_current_ua() > 0 and hal.read_voltage_mv() > 0
    grown = mptest.allocated_by(_io, hal)
    assert grown == 0, grown
