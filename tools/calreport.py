"""The calibration report: a text file and a PNG, named after the board id and date.

Text: the board, who and with what, the points (board codes, meter readings), the
fitted calibration against the old one, residuals and the worst point per channel, and
the verification after writing. PNG: one column per channel; top, the reference reading
against the board's raw code with the fitted line; bottom, the residuals.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tools.calfit import TOL_PCT, TOL_UA  # noqa: E402
from tools.trace_plot import save_png  # noqa: E402


def base_name(uid, when):
    """'cal_<uid>_<YYYYmmdd-HHMMSS>' (uid: the board's unique id, or 'unknown')."""
    return "cal_%s_%s" % (uid or "unknown", when.strftime("%Y%m%d-%H%M%S"))


def text(ident, info, points, chans, new_cal, old_cal, verify):
    """The report as a string. `info`: dict of header lines (technician, meter, load)."""
    out = ["Calibration report", "==================", ""]
    out.append("board      %s, uid %s, firmware %s" % (ident.get("board"), ident.get("uid"),
                                                       ident.get("fw")))
    for k in info:
        out.append("%-10s %s" % (k, info[k]))
    out += ["", "Points (means over the steady hold)",
            "  nominal mA   meter mA   meter V   i_code     v_code     ref_code"]
    for p in points:
        out.append("  %10.2f %10.4f %9.4f %10.1f %10.1f %8d" % (
            p.nominal_ua / 1000.0, p.meter_ua / 1000.0, p.meter_mv / 1000.0, p.i_code,
            p.v_code, p.ref_code))
    out += ["", "Fit (least squares; residual = calibrated value - reference)"]
    for key in ("current", "reference", "voltage"):
        c = chans[key]
        k, worst = c.worst()
        out.append("  %-17s gain %.5f  offset %5d codes   worst point %d: %+.2f %s (%+.3f %%)" % (
            c.name, c.gain / 16384.0, c.offset, k + 1, worst, c.unit,
            100.0 * worst / c.ys[k] if c.ys[k] else 0.0))
        out.append("  %-17s residuals: %s" % ("", "  ".join("%+.1f" % r for r in c.residuals)))
    out.append("  tolerance: %.2f %% of the reading or %.0f uA/mV, whichever is larger"
               % (TOL_PCT, TOL_UA))
    out += ["", "Calibration written (old -> new)"]
    for k in ("i_gain", "i_offset", "v_gain", "v_offset", "r_gain", "r_offset"):
        out.append("  %-9s %7s -> %d" % (k, old_cal.get(k, "-") if old_cal else "-", new_cal[k]))
    out += ["", "Verification after writing"]
    for v in verify:
        out.append("  %5.1f mA: meter %.4f mA, board reads %.4f mA (%+.3f %%), source %+.3f %% "
                   "of nominal  %s" % (v["nominal_ua"] / 1000.0, v["meter_ua"] / 1000.0,
                                       v["board_ua"] / 1000.0, v["read_err_pct"],
                                       v["source_err_pct"], "PASS" if v["ok"] else "FAIL"))
    return "\n".join(out) + "\n"


def plot(path, ident, points, chans, when):
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex="col",
                             gridspec_kw={"height_ratios": [3, 2]})
    panels = (("current", "raw current ADC code", "meter current (mA)", 1e-3),
              ("reference", "meter current (mA)", "raw reference code", None),
              ("voltage", "raw voltage ADC code", "electrode voltage (V)", 1e-3))
    for col, (key, xlabel, ylabel, yscale) in enumerate(panels):
        c = chans[key]
        top, bot = axes[0][col], axes[1][col]
        if key == "reference":
            # reference: code driven (y) against the meter's current (x), in mA
            top.plot([p.meter_ua / 1000.0 for p in points], c.xs, "o", label="points")
            xl = [min(p.meter_ua for p in points), max(p.meter_ua for p in points)]
            top.plot([x / 1000.0 for x in xl], [c.a * x + c.b for x in xl], "-",
                     label="fit: %.1f codes/mA, offset %+d codes" % (c.a * 1000.0, c.offset))
            bot.plot([p.meter_ua / 1000.0 for p in points], c.residuals, "o-")
            bot.set_xlabel("meter current (mA)")
            bot.set_ylabel("residual (uA)")
        else:
            top.plot(c.xs, [y * yscale for y in c.ys], "o", label="points")
            xl = [min(c.xs), max(c.xs)]
            top.plot(xl, [(c.a * x + c.b) * yscale for x in xl], "-",
                     label="fit: gain %.4f, offset %+d codes" % (c.gain / 16384.0, c.offset))
            bot.plot(c.xs, c.residuals, "o-")
            bot.set_xlabel(xlabel)
            bot.set_ylabel("residual (%s)" % ("uA" if key == "current" else "mV"))
        top.set_ylabel(ylabel)
        top.set_title(c.name)
        top.legend(loc="upper left", fontsize=8)
        top.grid(True, alpha=0.3)
        bot.axhline(0.0, color="grey", lw=0.8)
        bot.grid(True, alpha=0.3)
    fig.suptitle("Calibration of board %s (uid %s), %s" % (
        ident.get("board"), ident.get("uid"), when.strftime("%Y-%m-%d %H:%M")))
    fig.tight_layout()
    save_png(fig, path)
