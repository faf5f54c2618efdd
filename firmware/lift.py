"""Current-density guard: estimates the wetted area from the load and pauses on a lift.

When one hand's (or foot's) wetted area shrinks while the source holds the current, the
current crowds onto less skin: the density, not the current, is the hazard (ARCHITECTURE
§4). The skin of the lifted hand rises as 1/area; the load seen from the electrodes rises
by that hand's share only, diluted by the other hand, the body and the water.

The guard keeps a slow baseline of the settled load: R = (V - LIFT_POL_MV) / I, filtered
(~80 ms), followed down at once (the skin falls in water: drift, salt, a deeper hand)
and up only slowly and only while the estimate says nothing is lifted (vpol settling,
small wander). From the rise over the baseline, rho = R / R_base, it estimates

    1 / area = 1 + 2 (rho - 1) / share      share: the skin's share of the baseline load

with the *lowest* plausible share, max(LIFT_SHARE_MIN_PCT, 1 - LIFT_RS_MAX_OHM / R_base)
(the body and water are at most LIFT_RS_MAX_OHM), so the area is never over-estimated.
The density estimate is (I / target) / area, in per mille of full immersion at the
target: compliance limiting lowers I and the estimate with it. Below the baseline's
current the polarization the subtraction misses (at most LIFT_POL_SPAN_MV) makes V/I
read high by up to span x (1/I - 1/I_base): that much of a rise is not counted; above
it, a polarization under LIFT_POL_MV (a resistor has none) by up to LIFT_POL_MV x
(1/I_base - 1/I). Past LIFT_DENSITY_PM the
session pauses (cause `lift`); it re-ramps only once the contact probe's load says the
area is back (`area_back`). docs/design.md gives the reasoning and the measured margins.

Integer arithmetic on small ints only (every product stays under 2**30), no allocation.
"""

from micropython import const

from limits import (LIFT_BACK_PM, LIFT_CREEP_PM, LIFT_DENSITY_PM, LIFT_MIN_UA, LIFT_POL_MV,
                    LIFT_POL_SPAN_MV, LIFT_RS_MAX_OHM, LIFT_SHARE_MIN_PCT)

_Q = const(8)            # R kept in Ω x 256
_FILT = const(4)         # the load filter: 1/16 per step (80 ms at 5 ms)
_CREEP_EVERY = const(64)  # the baseline creeps up once per 64 steps (0.32 s) ...
_CREEP = const(8)        # ... by 1/256 of the gap: time constant ~82 s
_RHO_MAX = const(16000)  # rho clamped at 16x (keeps every product a small int)
_I_MAX_PM = const(4000)  # I / target clamped at 4x


def _inv_area_pm(rho_pm, base_ohm):
    """1 / area (per mille) for a load rho_pm (per mille) of a baseline of base_ohm."""
    share = 1000 - LIFT_RS_MAX_OHM * 1000 // base_ohm if base_ohm > 0 else 0
    if share < LIFT_SHARE_MIN_PCT * 10:
        share = LIFT_SHARE_MIN_PCT * 10
    d = rho_pm - 1000
    if d <= 0:
        return 1000
    if rho_pm > _RHO_MAX:
        d = _RHO_MAX - 1000
    return 1000 + 2000 * d // share


class LiftDetector:
    def __init__(self):
        self.reset()

    def reset(self):
        """Forget the baseline: a new session, or a new polarity (skin R ~20 % higher)."""
        self._base = 0           # baseline load, Ω x 256 (0: none yet)
        self._base_ohm = 0
        self._ib = 0             # the filtered current when the baseline was learnt
        self._b_ref = 0          # the baseline when the probe's reference was taken
        self._ib_ref = 0         # ... and its current
        self.rearm()

    def rearm(self):
        """A ramp after a pause: the baseline stays, the filters restart."""
        self._f = 0              # filtered load, Ω x 256
        self._fi = 0             # filtered current, µA
        self._n = 0
        self._backs = 0          # probe cycles in a row that saw the area back
        self.density_pm = 0      # the last estimate: per mille of full immersion at target
        self.area_pm = 1000      # the last estimate of the least-wetted area, per mille

    def lifted(self, i_ua, v_mv, target_ua, learn):
        """One step; True when the estimated density passed LIFT_DENSITY_PM.

        `learn`: the load is settled enough to move the baseline (TREAT, or the current
        at half the target or more). Judged from LIFT_MIN_UA and 3 x LIFT_POL_MV up (below,
        the subtracted polarization is a third of V or more: a 1 kΩ resistor at 1.4 mA read
        143 Ω and its noise paused a calibration hold), once a baseline exists.
        """
        if i_ua < LIFT_MIN_UA or target_ua <= 0 or v_mv < 3 * LIFT_POL_MV:
            # too little current, or a voltage the polarization guess could be a third of
            self._f = 0
            self.density_pm = 0
            return False
        r = ((v_mv - LIFT_POL_MV) * 1000) // i_ua
        if r <= 0:
            return False
        r <<= _Q
        f = self._f
        fi = self._fi
        if f == 0:
            f = r
            fi = i_ua
        else:
            f += (r - f) >> _FILT
            fi += (i_ua - fi) >> _FILT
        self._f = f
        self._fi = fi
        base = self._base
        # settled: the current is where its filter is (a step of the current shows a
        # wrong V/I for a few skin time constants: never learnt)
        steady = learn and (fi - i_ua if fi > i_ua else i_ua - fi) <= (fi >> 5)
        moved = False
        if base == 0:
            if not steady:
                return False
            base = f
            self._ib = fi
            moved = True
        elif steady and f < base:
            base = f
            self._ib = fi
            moved = True
        if moved and (self._b_ref == 0 or fi > self._ib_ref + (self._ib_ref >> 5)):
            # the load the probe's reference goes with: the baseline at the highest
            # current so far (V/I falls as the current rises: not a change of the skin)
            self._b_ref = base >> _Q
            self._ib_ref = fi
        ba = base >> _Q
        self._base_ohm = ba
        fo = f >> _Q
        ib = self._ib
        if fi < ib:
            # a lower current than the baseline's: the polarization left in V/I (up to
            # LIFT_POL_SPAN_MV) reads as a higher load; that much of the rise is not area
            fo -= LIFT_POL_SPAN_MV * 1000 // fi - LIFT_POL_SPAN_MV * 1000 // ib
        elif fi > ib:
            # a higher one: a polarization under LIFT_POL_MV (none at all on a resistor,
            # a calibration load) made the baseline read low by up to LIFT_POL_MV / I_base
            fo -= LIFT_POL_MV * 1000 // ib - LIFT_POL_MV * 1000 // fi
        rho = fo * 1000 // ba if ba > 0 else 1000
        inv = _inv_area_pm(rho, ba)
        n = self._n + 1
        if n >= _CREEP_EVERY:
            n = 0
            if steady and inv < LIFT_CREEP_PM and f > base:
                base += (f - base) >> _CREEP
        self._n = n
        self._base = base
        ipm = i_ua * 1000 // target_ua
        if ipm > _I_MAX_PM:
            ipm = _I_MAX_PM
        d = ipm * inv // 1000
        self.density_pm = d
        self.area_pm = 1000000 // inv
        return d >= LIFT_DENSITY_PM

    def set_ref(self):
        """The contact probe just measured the reference load with the hands in: note
        the baseline it goes with (0: none yet, the first baseline will be)."""
        self._b_ref = self._base_ohm if self._base else 0
        self._ib_ref = self._ib if self._base else 0

    def area_back(self, r_probe, r_ref):
        """After a lift pause, once per probe cycle: True when the contact probe's load
        r_probe (Ω), against its value when the hands were last confirmed in (r_ref),
        said the area is back on two cycles in a row (a hand moving during one cycle
        reads low: its two levels see two different areas). The reference follows the
        baseline down: a skin that fell 50 % since would hide a lift against it."""
        b0 = self._b_ref
        b = self._base_ohm
        if b0 > 0 and 0 < b < b0:
            r_ref = r_ref * (b * 1000 // b0) // 1000
        ok = r_probe > 0 and r_ref > 0 and _inv_area_pm(
            r_probe * 1000 // r_ref if r_probe < 16 * r_ref else _RHO_MAX,
            self._base_ohm or r_ref) <= LIFT_BACK_PM
        n = self._backs + 1 if ok else 0
        self._backs = n
        return n >= 2
