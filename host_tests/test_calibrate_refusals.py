"""Calibration that cannot be fooled (issue 16): a table of wrong-resistor, swapped-lead,
wrong-range and typo cases, each run through `tools.calibrate.main` against the
firmware's app in-process (host_tests/mp/protorig.py: the sim board's plant in virtual
time). Every case must end in a refusal whose message names its cause, with the stored
calibration untouched and no report written. Then the other side: a typo that is
retyped, and an outlier the fit names and that is retyped, end calibrated.

The readings come from the plant's TRUE current and voltage, as a bench meter's would:
typed through the real ManualMeter (tools/meters.py), or returned by an automated meter
(like the SCPI meter through pyvisa), then spoilt as each case says.
"""

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "mp"))

from test_calibrate_tool import CODE, in_process  # noqa: E402
from tools import meters  # noqa: E402


def resistor(ohm):
    """The rig's load as one resistor of `ohm` (test_calibrate_tool.RESISTOR's shape)."""
    return {"nonlinear": False, "offset_v": 0.0, "skin_ohm": 1.0, "water_ohm": 0.0,
            "body_ohm": ohm - 1.0}


class Typist:
    """The technician at a bench meter: each prompt is answered from the plant's truth
    at that moment through `spoil(k, ma)` -> text (k: the 0-based count of current
    readings so far), and `spoil_v(k, volts)` for the voltage prompt."""

    def __init__(self, rig, spoil=None, spoil_v=None):
        self.rig = rig
        self.spoil = spoil or (lambda k, ma: "%.4f" % ma)
        self.spoil_v = spoil_v or (lambda k, v: "%.4f" % v)
        self.k = -1
        self.prompts = []

    def __call__(self, prompt):
        self.prompts.append(prompt)
        p = self.rig.bench.plant
        if "mA" in prompt:
            self.k += 1
            self.rig.seconds(1.0)
            return self.spoil(self.k, p.true_ua / 1000.0)
        return self.spoil_v(self.k, p.v_load)


class Automated:
    """A meter read by the computer (pyvisa): the truth through `spoil(k, ua, mv)`."""

    def __init__(self, rig, spoil=None, volts=True):
        self.rig = rig
        self.spoil = spoil or (lambda k, ua, mv: (ua, mv))
        self.volts = volts
        self.k = -1

    def describe(self):
        return "automated"

    def read(self, nominal_ua):
        self.k += 1
        self.rig.seconds(1.0)
        p = self.rig.bench.plant
        ua, mv = self.spoil(self.k, p.true_ua, p.v_load * 1000.0)
        return ua, (mv if self.volts else None)


def at(point, wrong, right="%.4f"):
    """A spoil that types `wrong` (text, or fn(ma) -> text) at reading `point`, and the
    truth elsewhere; reading indices count retypes too, so `point` may be a set."""
    points = point if isinstance(point, (set, frozenset)) else {point}

    def spoil(k, ma):
        if k in points:
            return wrong(ma) if callable(wrong) else wrong
        return right % ma
    return spoil


def repeated(index, wrong):
    """The same wrong reading typed at reading `index` and again at its retype."""
    return at({index, index + 1}, wrong)


# (id, plant, extra args, meter factory(rig) -> (meter object or None, ask or None), cause)
MANUAL = "manual"
CASES = [
    # ---- the wrong load resistor, typed current only (the voltage's truth is the board's
    # own voltage sense against I x LOAD_OHM) -------------------------------------------
    ("1k2-given-as-1k", resistor(1200), [], MANUAL, None, r"looks like 1[12]\d\d ohm"),
    ("1k1-given-as-1k", resistor(1100), [], MANUAL, None, r"looks like 1[01]\d\d ohm"),
    ("910-given-as-1k", resistor(910), [], MANUAL, None, r"looks like 9[01]\d ohm"),
    ("820-given-as-1k", resistor(820), [], MANUAL, None, r"looks like 8[12]\d ohm"),
    ("1k5-given-as-1k", resistor(1500), [], MANUAL, None, r"looks like 1[45]\d\d ohm"),
    ("470-given-as-1k", resistor(470), [], MANUAL, None, r"looks like 4[67]\d ohm"),
    ("1k-given-as-1k2", resistor(1000), ["--load-ohm", "1200"], MANUAL, None,
     r"looks like (99\d|10\d\d) ohm"),
    ("1k-given-as-470", resistor(1000), ["--load-ohm", "470"], MANUAL, None,
     r"looks like (99\d|10\d\d) ohm"),
    ("1k1-and-divider-3pct-low", dict(resistor(1100), adc_v_gain_error=-0.03), [], MANUAL,
     None, "wrong load resistor"),
    ("2k2-beyond-the-rail", resistor(1000), ["--load-ohm", "2200"], MANUAL, None,
     "needs 55.0 V"),
    # ---- the wrong resistor with a measured voltage -------------------------------------
    ("1k2-automated-meter", resistor(1200), [], "auto", None, r"make the load 1[12]\d\d ohm"),
    ("1k2-typed-volts", resistor(1200), ["--ask-volts"], MANUAL, None,
     r"make the load 1[12]\d\d ohm"),
    # ---- swapped leads, wrong range, meter not in series ----------------------------------
    ("meter-leads-swapped-typed", resistor(1000), [], MANUAL,
     lambda k, ma: "%.4f" % -ma, "leads are swapped"),
    ("meter-leads-swapped-automated", resistor(1000), [], "auto",
     lambda k, ua, mv: (-ua, mv), "leads are swapped"),
    ("volt-leads-swapped-typed", resistor(1000), ["--ask-volts"], MANUAL,
     ("volts", lambda k, v: "%.4f" % -v), "voltage leads are swapped"),
    ("reading-typed-in-amperes", resistor(1000), [], MANUAL,
     lambda k, ma: "%.6f" % (ma / 1000.0), "A range"),
    ("automated-meter-in-microamperes", resistor(1000), [], "auto",
     lambda k, ua, mv: (ua * 1000.0, mv), "µA range"),
    ("meter-not-in-series", resistor(1000), [], MANUAL, lambda k, ma: "0",
     "not in series"),
    ("voltmeter-read-as-ammeter", resistor(470), ["--load-ohm", "470"], MANUAL,
     lambda k, ma: "%.4f" % (ma * 0.47), "not in series"),
    # ---- typos, typed the same again (so meant), or retyped wrong each time ------------
    ("0.5-for-5-twice", resistor(1000), [], MANUAL, repeated(1, "0.5"),
     "misplaced decimal point"),
    ("2.5-for-25-twice", resistor(1000), [], MANUAL, repeated(5, "2.5"),
     "misplaced decimal point"),
    ("5.1-for-15-twice", resistor(1000), [], MANUAL, repeated(3, "5.1"),
     "a mistyped reading"),
    ("12-for-10-twice", resistor(1000), [], MANUAL, repeated(2, "12.0"),
     "the earlier points read the load right: a mistyped reading"),
    ("5.5-for-5-twice", resistor(1000), [], MANUAL, repeated(1, "5.5"),
     "the earlier points read the load right: a mistyped reading"),
    ("three-wrong-retypes", resistor(1000), [], MANUAL,
     at({2, 3, 4}, lambda ma, typed=iter(("1.0", "1.01", "0.99")): next(typed)),
     "misplaced decimal point"),
    ("volts-0.5-for-5-twice", resistor(1000), ["--ask-volts"], MANUAL,
     ("volts", lambda k, v: "%.4f" % (v / 10.0 if k in (1, 2) else v)),
     "mistyped reading"),
    # ---- the unit itself: a glitch the fit names, a weak source -------------------------
    ("automated-glitch-at-point-2", resistor(1000), [], "auto",
     lambda k, ua, mv: (ua * 1.02 if k == 1 else ua, mv * 1.02 if k == 1 else mv),
     r"point 2 \(5\.0 mA nominal\)"),
    ("weak-source", dict(resistor(1000), source_gain_error=-0.3), [], "auto", None,
     "reference output gain 0.700"),
]


def run(monkeypatch, tmp_path, plant, args, kind, spoil):
    rig, opener, calibrate = in_process(monkeypatch, **plant)
    volts = "--ask-volts" in args
    if kind == MANUAL:
        if isinstance(spoil, tuple):            # ("volts", spoil_v)
            typist = Typist(rig, spoil_v=spoil[1])
        else:
            typist = Typist(rig, spoil=spoil)
        meter = meters.ManualMeter(ask=typist, say=lambda text: None, volts=volts)
    else:
        meter = Automated(rig, spoil=spoil)
    resets = []
    rc = calibrate.main(["--port", "rig", "--code", CODE, "--yes", "--out", str(tmp_path)]
                        + args, opener=opener, meter=meter,
                        reboot=lambda ns: resets.append(ns.port) or "reset (test)")
    return rig, rc, resets


@pytest.mark.parametrize("plant, args, kind, spoil, cause",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_fooling_case_is_refused_naming_its_cause(monkeypatch, tmp_path, capsys,
                                                       plant, args, kind, spoil, cause):
    rig0, _, _ = in_process(monkeypatch, **plant)
    stored_before = dict(rig0.app.store.cal.data)
    rig, rc, resets = run(monkeypatch, tmp_path, plant, args, kind, spoil)
    out, err = capsys.readouterr()
    assert rc == 1, out + err
    assert "refused, nothing written" in err and re.search(cause, err), err
    assert "Traceback" not in err
    assert rig.app.store.cal.data == stored_before          # nothing written ...
    assert list(tmp_path.iterdir()) == []                   # ... and no report
    assert rig.app.service is False
    held = "Measuring" in out                                # a hold armed the watchdog:
    assert resets == (["rig"] if held else []) and held == ("watchdog" in out)   # reset
    rig.seconds(30)
    assert rig.bench.plant.true_ua == 0.0                   # the hold has ended


def test_the_table_has_at_least_20_cases_of_each_promised_kind():
    names = [c[0] for c in CASES]
    assert len(set(names)) == len(names) >= 20
    kinds = {"resistor": 0, "swapped": 0, "typo": 0}
    for c in CASES:
        if "ohm" in c[5] or "V" in c[5]:
            kinds["resistor"] += 1
        if "swapped" in c[5]:
            kinds["swapped"] += 1
        if "twice" in c[0] or "retype" in c[0]:
            kinds["typo"] += 1
    assert min(kinds.values()) >= 3, kinds


def test_a_typo_retyped_right_is_named_and_calibrates(monkeypatch, tmp_path, capsys):
    rig, rc, resets = run(monkeypatch, tmp_path, resistor(1000), [], MANUAL, at(1, "0.5"))
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "point 2 (5.0 mA nominal)" in out and "misplaced decimal point" in out
    assert "retype" in out
    assert rig.app.store.cal.data["tech"] == "tech"          # the new one is stored
    assert len(list(tmp_path.iterdir())) == 2 and resets == ["rig"]


def test_an_outlier_the_fit_names_is_held_again_and_retyped(monkeypatch, tmp_path, capsys):
    # 2.04 for 2.00 mA at the first point passes every per-point check (2 % is inside the
    # uncalibrated window, and no earlier points exist) but not the fit's 20 µA
    rig, rc, _ = run(monkeypatch, tmp_path, resistor(1000), [], MANUAL,
                     at(0, lambda ma: "%.4f" % (ma + 0.04)))
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "current sense: point 1 (2.0 mA nominal)" in out and "Holding that point again" \
        in out


def test_the_board_is_reset_after_a_hold_and_not_before_one(monkeypatch, tmp_path, capsys):
    rig, opener, calibrate = in_process(monkeypatch)
    resets = []
    rc = calibrate.main(["--port", "rig", "--code", "wrong-code", "--yes", "--out",
                         str(tmp_path)], opener=opener, meter=Automated(rig),
                        reboot=lambda ns: resets.append(1) or "x")
    assert rc == 1 and resets == []            # refused at service_enter: no hold ran
    rc = calibrate.main(["--port", "rig", "--code", CODE, "--yes", "--no-reset", "--out",
                         str(tmp_path)], opener=opener, meter=Automated(rig),
                        reboot=lambda ns: resets.append(1) or "x")
    out = capsys.readouterr().out
    assert rc == 0 and resets == [] and "power-cycle the board before `make check`" in out
