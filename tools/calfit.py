"""Least-squares calibration fit: board raw codes against a reference meter.

Each calibration point is what the board reported while it held one current (mean raw
current and voltage ADC codes, the raw reference code it drove) and what the reference
meter read at the same time (true current, electrode voltage). Three straight lines are
fitted, one per channel, and turned into the firmware's integer calibration
(firmware/calibration.py: Q14 gains, offsets in raw 16-bit codes):

    current sense   true_ua = (i_code - i_offset) * I_FS_UA / 65536 * i_gain / 16384
    voltage sense   true_mv = (v_code - v_offset) * V_FS_MV / 65536 * v_gain / 16384
    reference       ref_code = true_ua * 65536 * 16384 / (REF_FS_UA * r_gain) + r_offset

A fit is refused (FitError) when a gain or offset is outside the firmware's plausible
range (±25 % gain: a broken shunt, a wrong resistor, a meter on the wrong range) or a
point's residual is above tolerance. Then the points are fitted again without each one
in turn: when leaving one out puts every other point within tolerance, that one is an
outlier (a mistyped reading: 0.5 for 5) and FitError names it (`.point`, its index), so
the technician can retype that point alone; when no single point explains it the
channel is not a line (an unstable load, a non-linear channel) and `.point` is None.
"""

ONE = 16384
GAIN_MIN, GAIN_MAX = 12288, 20480
OFFSET_MAX = 4096
TOL_PCT = 0.5          # residual tolerance: % of the point's reading ...
TOL_UA = 20.0          # ... or this many µA / mV, whichever is larger


class FitError(ValueError):
    """Why a fit is refused; `point`: the index of the one outlier to blame, or None."""

    def __init__(self, msg, point=None):
        ValueError.__init__(self, msg)
        self.point = point


class Point:
    def __init__(self, nominal_ua, i_code, v_code, ref_code, meter_ua, meter_mv):
        self.nominal_ua = nominal_ua
        self.i_code = i_code          # mean raw current code
        self.v_code = v_code          # mean raw voltage code
        self.ref_code = ref_code      # raw reference code driven
        self.meter_ua = meter_ua      # reference meter: true current
        self.meter_mv = meter_mv      # true electrode voltage (meter, or I x R)


def line(xs, ys):
    """Least squares y = a*x + b; returns (a, b). Needs two distinct x."""
    n = len(xs)
    if n < 2:
        raise FitError("need at least two points, got %d" % n)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        raise FitError("all points read the same: is the source driving the load?")
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return a, my - a * mx


class Channel:
    """One channel's fit: the line, its integer calibration and the residuals."""

    def __init__(self, name, unit, xs, ys, a, b, gain, offset, predict):
        self.name = name
        self.unit = unit
        self.xs = xs
        self.ys = ys
        self.a = a
        self.b = b
        self.gain = gain
        self.offset = offset
        # residual: what the *integer* calibration predicts minus the reference
        self.residuals = [predict(x) - y for x, y in zip(xs, ys)]

    def worst(self):
        """(index, residual) of the largest |residual|."""
        k = max(range(len(self.residuals)), key=lambda j: abs(self.residuals[j]))
        return k, self.residuals[k]


def fit(points, i_fs_ua, v_fs_mv, ref_fs_ua):
    """Fit all three channels; returns {"current": Channel, "voltage": ..., "reference": ...}."""
    if len(points) < 3:
        raise FitError("need at least three points for a fit with residuals, got %d"
                       % len(points))
    ic = [p.i_code for p in points]
    vc = [p.v_code for p in points]
    rc = [p.ref_code for p in points]
    ua = [p.meter_ua for p in points]
    mv = [p.meter_mv for p in points]

    a, b = line(ic, ua)                        # µA per code
    i_gain = _gain("current sense", a * 65536 * ONE / i_fs_ua)
    i_off = _offset("current sense", -b / a)
    cur = Channel("current sense", "uA", ic, ua, a, b, i_gain, i_off,
                  lambda x: (x - i_off) * i_fs_ua / 65536 * i_gain / ONE)

    a, b = line(vc, mv)
    v_gain = _gain("voltage sense", a * 65536 * ONE / v_fs_mv)
    v_off = _offset("voltage sense", -b / a)
    vol = Channel("voltage sense", "mV", vc, mv, a, b, v_gain, v_off,
                  lambda x: (x - v_off) * v_fs_mv / 65536 * v_gain / ONE)

    a, b = line(ua, rc)                        # codes per µA
    r_gain = _gain("reference output", 65536 * ONE / (ref_fs_ua * a))
    r_off = _offset("reference output", b)
    # the reference's residual in µA: the current the integer calibration would ask
    # for (code -> µA) against what the meter read at that code
    ref = Channel("reference output", "uA", rc, ua, a, b, r_gain, r_off,
                  lambda code: (code - r_off) * ref_fs_ua * r_gain / (65536.0 * ONE))
    chans = {"current": cur, "voltage": vol, "reference": ref}
    for c in chans.values():
        ratios = _ratios(c.residuals, c.ys)
        k = max(range(len(ratios)), key=lambda j: ratios[j])
        if ratios[k] > 1.0:
            _blame(c, points, k)
    return chans


def _ratios(residuals, ys):
    return [abs(r) / _tolerance(y) for r, y in zip(residuals, ys)]


def _blame(c, points, worst):
    """Raise the FitError for channel `c`: one outlier named when leaving it out puts the
    others within tolerance (one bad reading pulls the line towards itself, so a
    neighbour may be off too: the fit without the culprit tells which one it is)."""
    n = len(c.xs)
    best = None
    if n >= 4:                  # three points must remain to judge a line by residuals
        for j in range(n):
            xs = [x for i, x in enumerate(c.xs) if i != j]
            ys = [y for i, y in enumerate(c.ys) if i != j]
            try:
                a, b = line(xs, ys)
            except FitError:
                continue
            worst_rest = max(abs(a * x + b - y) / _tolerance(y) for x, y in zip(xs, ys))
            if worst_rest <= 1.0 and (best is None or worst_rest < best[1]):
                best = (j, worst_rest, a * c.xs[j] + b)
    if best is not None:
        j, _, expect = best
        p = points[j]
        raise FitError("%s: point %d (%.1f mA nominal) reads %.0f %s where the other %d "
                       "points put it at %.0f %s: a mistyped or bad reading at that point"
                       % (c.name, j + 1, p.nominal_ua / 1000.0, c.ys[j], c.unit, n - 1,
                          expect, c.unit), point=j)
    r = c.residuals[worst]
    raise FitError("%s: the points are not on a line (point %d is off by %.1f %s, more than "
                   "%.1f, and no single point explains it): an unstable load or a "
                   "non-linear channel; repeat the calibration"
                   % (c.name, worst + 1, r, c.unit, _tolerance(c.ys[worst])))


def calibration(chans):
    """The firmware's calibration integers from a fit."""
    return {"i_gain": chans["current"].gain, "i_offset": chans["current"].offset,
            "v_gain": chans["voltage"].gain, "v_offset": chans["voltage"].offset,
            "r_gain": chans["reference"].gain, "r_offset": chans["reference"].offset}


def _tolerance(y):
    """The largest residual allowed at reference reading `y` (µA or mV)."""
    return max(abs(y) * TOL_PCT / 100.0, TOL_UA)


def _gain(name, g):
    gi = int(round(g))
    if not GAIN_MIN <= gi <= GAIN_MAX:
        raise FitError("%s gain %.3f is outside 0.75..1.25: a broken shunt or divider, "
                       "the wrong load resistor, or the meter on the wrong range"
                       % (name, g / ONE))
    return gi


def _offset(name, o):
    oi = int(round(o))
    if not -OFFSET_MAX <= oi <= OFFSET_MAX:
        raise FitError("%s offset %d codes is outside +-%d: check the wiring"
                       % (name, oi, OFFSET_MAX))
    return oi
