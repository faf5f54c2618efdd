"""On-board self test of the output stage and the sense channels (run by `make check`).

    import selftest; selftest.main()      # prints one line: SELFTEST <json list>

Each check is (name, passed, detail):
  output_off   with the output disabled the current reads ~0 (<= DISABLED_MAX_UA)
  adc          both ADCs read plausible codes: not at full scale, little spread,
               the electrode not railed while disabled, the trip input idle
  enable       a probe drive (PROBE_UA, the firmware's own contact probe: imperceptible)
               shows on the sense channels: current flows (closed circuit) or the
               electrode rises towards compliance (open circuit); disabling stops it
  polarity     with the output off, the polarity output follows 1 and back to 0
  left_off     the output is disabled and the reference at 0 at the end

Whatever happens (a failed check, an exception, KeyboardInterrupt), the output is left
disabled with the reference at 0 and the polarity at 0: the `finally` below writes the
pins directly as well as through the HAL. The drive is never more than PROBE_UA, for
never longer than SETTLE_US.
"""

from micropython import const

import limits
from calibration import Calibration
from hal import Hal

SETTLE_US = const(50000)   # reference filter, sense amplifiers, the skin's C (~10 ms)
_READS = const(8)
_SPREAD_MAX = const(4096)  # codes: more spread over 8 reads than 6 % of full scale is noise
_FULL_SCALE = const(65535 - 1024)


def run(hw, board, cal=None, sleep_us=None):
    """Run every check on built hardware `hw`; returns [(name, passed, detail), ...]."""
    if sleep_us is None:
        import time
        sleep_us = time.sleep_us
    results = []
    hal = None
    try:
        hal = Hal(hw, board, cal if cal is not None else Calibration())
        _check_off(hal, hw, board, sleep_us, results)
        _check_enable(hal, hw, board, sleep_us, results)
        _check_polarity(hal, hw, results)
    except Exception as e:
        results.append(("error", False, "%s: %s" % (type(e).__name__, e)))
    finally:
        _force_off(hw, hal)
    en = _pin(hw.enable)
    results.append(("left_off", en == 0 and (hal is None or hal.ref_code == 0),
                    "enable pin %s, reference %s" % (en, 0 if hal is None else hal.ref_code)))
    return results


def run_board(board=None):
    """Build the board's hardware (no watchdog) and run the checks with its clock."""
    if board is None:
        import board
    hw = board.build(watchdog=False)
    return run(hw, board, sleep_us=getattr(board, "sleep_us", None))


def passed(results):
    for r in results:
        if not r[1]:
            return False
    return bool(results)


def main():
    import json
    results = run_board()
    print("SELFTEST " + json.dumps([[n, ok, d] for n, ok, d in results]))
    return passed(results)


# ---- checks ----------------------------------------------------------------------------

def _check_off(hal, hw, board, sleep_us, results):
    hal.off()
    sleep_us(SETTLE_US)
    i_max, i_codes, v_mv, v_codes = _sample(hal)
    results.append(("output_off", i_max <= limits.DISABLED_MAX_UA,
                    "max %d uA with the output disabled (limit %d)"
                    % (i_max, limits.DISABLED_MAX_UA)))
    bad = []
    if i_codes[1] >= _FULL_SCALE:
        bad.append("current ADC at full scale")
    if v_codes[1] >= _FULL_SCALE:
        bad.append("voltage ADC at full scale")
    if i_codes[1] - i_codes[0] > _SPREAD_MAX:
        bad.append("current ADC spread %d codes" % (i_codes[1] - i_codes[0]))
    if v_codes[1] - v_codes[0] > _SPREAD_MAX:
        bad.append("voltage ADC spread %d codes" % (v_codes[1] - v_codes[0]))
    open_mv = board.COMPLIANCE_MV * limits.OPEN_V_PCT // 100
    if v_mv >= open_mv:
        bad.append("electrode %d mV while disabled" % v_mv)
    if hal.hw_tripped():
        bad.append("hardware trip input active")
    results.append(("adc", not bad, "; ".join(bad) if bad else
                    "codes I %d..%d, V %d..%d with the output off"
                    % (i_codes[0], i_codes[1], v_codes[0], v_codes[1])))


def _check_enable(hal, hw, board, sleep_us, results):
    open_mv = board.COMPLIANCE_MV * limits.OPEN_V_PCT // 100
    try:
        hal.set_polarity(0)
        hal.set_current_ua(limits.PROBE_UA)
        hal.set_enabled(True)
        sleep_us(SETTLE_US)
        en_on = _pin(hw.enable)
        i_on, _, v_on, _ = _sample(hal)
    finally:
        hal.off()
    sleep_us(SETTLE_US)
    en_off = _pin(hw.enable)
    i_off, _, v_off, _ = _sample(hal)
    closed = i_on >= limits.OPEN_UA
    railed = v_on >= open_mv
    bad = []
    if en_on != 1 or en_off != 0:
        bad.append("enable pin read %s on, %s off" % (en_on, en_off))
    if not (closed or railed):
        bad.append("no response to the probe drive")
    if i_on > 2 * limits.PROBE_UA + limits.DISABLED_MAX_UA:
        bad.append("%d uA for a %d uA probe" % (i_on, limits.PROBE_UA))
    if i_off > limits.DISABLED_MAX_UA:
        bad.append("%d uA after disabling" % i_off)
    detail = "probe %d uA: %d uA, %d mV (%s); off: %d uA, %d mV" % (
        limits.PROBE_UA, i_on, v_on, "closed circuit" if closed else "open circuit",
        i_off, v_off)
    results.append(("enable", not bad, "; ".join(bad) + " (" + detail + ")" if bad else detail))


def _check_polarity(hal, hw, results):
    hal.off()
    seen = []
    for p in (1, 0):
        hal.set_polarity(p)
        seen.append(_pin(hw.polarity))
    ok = seen == [1, 0] and not hal.enabled and hal.ref_code == 0
    results.append(("polarity", ok, "pin read %s after setting 1, 0 (output off)"
                    % (seen,)))


# ---- helpers -----------------------------------------------------------------------------

def _sample(hal):
    """(max current µA, (min, max) current code, max electrode mV, (min, max) voltage code)."""
    i_max = -1 << 20
    v_max = -1 << 20
    ic = [65535, 0]
    vc = [65535, 0]
    for _ in range(_READS):
        c = hal.read_current_code()
        ic[0] = c if c < ic[0] else ic[0]
        ic[1] = c if c > ic[1] else ic[1]
        c = hal.read_voltage_code()
        vc[0] = c if c < vc[0] else vc[0]
        vc[1] = c if c > vc[1] else vc[1]
        i = hal.read_current_ua()
        v = hal.read_voltage_mv()
        i_max = i if i > i_max else i_max
        v_max = v if v > v_max else v_max
    return i_max, ic, v_max, vc


def _pin(pin):
    try:
        return pin.value()
    except Exception:
        return None


def _force_off(hw, hal):
    """Output off through the HAL and directly on the pins, whatever fails."""
    try:
        if hal is not None:
            hal.off()
    finally:
        try:
            hw.enable.value(0)
        finally:
            try:
                hw.ref.duty_u16(0)
            finally:
                hw.polarity.value(0)
