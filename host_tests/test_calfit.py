"""tools/calfit.py: the least-squares calibration fit and its refusals."""

import pytest

from tools import calfit

I_FS, V_FS, REF_FS = 33000, 66000, 33000


def points(i_gain_err=0.05, i_off_ua=100.0, src_gain_err=0.05, src_off_ua=100.0,
           v_gain_err=0.03, load_ohm=1000.0, bad=None):
    """Points from a unit with known errors: what the board and an ideal meter read."""
    out = []
    for k, ma in enumerate((2, 5, 10, 15, 20, 25)):
        ref_code = int(ma * 1000 * 65536 / REF_FS)
        true_ua = ref_code * REF_FS / 65536 * (1 + src_gain_err) + src_off_ua
        if bad == k:
            true_ua *= 1.02
        i_code = (true_ua * (1 + i_gain_err) + i_off_ua) * 65536 / I_FS
        mv = true_ua * load_ohm / 1000.0
        v_code = mv * (1 + v_gain_err) * 65536 / V_FS
        out.append(calfit.Point(ma * 1000, i_code, v_code, ref_code, true_ua, mv))
    return out


def test_fit_recovers_the_unit_errors():
    chans = calfit.fit(points(), I_FS, V_FS, REF_FS)
    cal = calfit.calibration(chans)
    # the sense channel reads 5 % high with +100 µA: the gain undoes it
    assert cal["i_gain"] == round(16384 / 1.05)
    assert cal["i_offset"] == round(100 * 65536 / I_FS)
    assert cal["v_gain"] == round(16384 / 1.03)
    assert abs(cal["v_offset"]) <= 1
    assert cal["r_gain"] == round(16384 * 1.05)
    for c in chans.values():
        for r in c.residuals:
            assert abs(r) < 3.0      # integer rounding of the calibration only


def test_a_bad_point_is_refused_with_its_number():
    with pytest.raises(calfit.FitError, match="point 4"):
        calfit.fit(points(bad=3), I_FS, V_FS, REF_FS)


@pytest.mark.parametrize("kw, what", [
    ({"i_gain_err": 0.40}, "current sense gain"),       # broken shunt
    ({"load_ohm": 1000.0, "v_gain_err": -0.35}, "voltage sense gain"),
    ({"src_gain_err": -0.4}, "reference output gain"),
])
def test_gains_outside_the_plausible_range_are_refused(kw, what):
    with pytest.raises(calfit.FitError, match=what):
        calfit.fit(points(**kw), I_FS, V_FS, REF_FS)


def test_too_few_or_identical_points_are_refused():
    with pytest.raises(calfit.FitError, match="three points"):
        calfit.fit(points()[:2], I_FS, V_FS, REF_FS)
    same = [points()[2]] * 4
    with pytest.raises(calfit.FitError, match="same"):
        calfit.fit(same, I_FS, V_FS, REF_FS)
