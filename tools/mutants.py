"""Break each safety number once and check that a test notices (`make mutants`).

Each mutant edits one line of a copy of the firmware in a temporary directory and runs
the tests that guard it; a mutant that no test kills is a safety number without a
guard. Prints a table and exits 1 if any mutant survives. Takes a few minutes.
`--only TEXT` runs the mutants whose description contains TEXT.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T = "host_tests/test_safety_numbers.py"
P = "host_tests/test_properties.py"
R = "host_tests/test_firmware_on_vms.py::test_regulator_mp_cpython"
M = "host_tests/test_modes.py"
D = "host_tests/test_density.py"

# (what is broken, file, exact old text, new text, tests to run)
MUTANTS = [
    ("ceiling 25 mA -> 26 mA", "firmware/limits.py", "CEILING_UA = const(25000)", "CEILING_UA = const(26000)", T),
    ("trip x1.1 -> x1.2", "firmware/limits.py", "t = target_ua + target_ua // 10", "t = target_ua + target_ua // 5", T),
    ("trip ignored", "firmware/safety.py", "elif i_ua > self.trip_ua or", "elif i_ua > 10 ** 6 or", T),
    ("short 300 -> 200 Ω", "firmware/limits.py", "SHORT_OHM = const(300)", "SHORT_OHM = const(200)", T),
    ("envelope margin 1 -> 6 mA", "firmware/limits.py", "ENV_MARGIN_UA = const(1000)", "ENV_MARGIN_UA = const(6000)", T),
    ("ramp floor 10 s -> 5 s", "firmware/limits.py", "MIN_RAMP_MS = const(10000)", "MIN_RAMP_MS = const(5000)", T),
    ("ramp slope doubled", "firmware/ramp.py", "self._up_q = (target_ua << _Q) // up_ms", "self._up_q = (target_ua << _Q) // up_ms * 2", T),
    ("ramp down slope doubled", "firmware/ramp.py", "self._down_q = (target_ua << _Q) // down_ms", "self._down_q = (target_ua << _Q) // (down_ms // 2)", T),
    ("contact loss ignored", "firmware/session.py", "return i_ua < limits.OPEN_UA and v_mv >= self._open_mv", "return False", T),
    ("pause limit 5 -> 10 min", "firmware/limits.py", "PAUSE_LIMIT_MS = const(300000)", "PAUSE_LIMIT_MS = const(600000)", T),
    ("contact timeout 2 -> 4 min", "firmware/limits.py", "CONTACT_TIMEOUT_MS = const(120000)", "CONTACT_TIMEOUT_MS = const(240000)", T),
    ("dead time 250 -> 100 ms", "firmware/limits.py", "DEAD_TIME_MS = const(250)", "DEAD_TIME_MS = const(100)", T),
    ("partial lift ignored", "firmware/lift.py", "return d >= LIFT_DENSITY_PM", "return False", T + " " + D),
    ("lift resume without the area back", "firmware/lift.py", "return n >= 2", "return True", D),
    ("density limit 1.5x -> 3x", "firmware/limits.py", "LIFT_DENSITY_PM = const(1500)", "LIFT_DENSITY_PM = const(3000)", D),
    ("skin share floor 25 % -> 100 %", "firmware/limits.py", "LIFT_SHARE_MIN_PCT = const(25)", "LIFT_SHARE_MIN_PCT = const(100)", D),
    ("body + water bound 1270 -> 300 Ω", "firmware/limits.py", "LIFT_RS_MAX_OHM = const(1270)", "LIFT_RS_MAX_OHM = const(300)", D),
    ("hard cap +60 s -> +600 s", "firmware/limits.py", "CAP_EXTRA_MS = const(60000)", "CAP_EXTRA_MS = const(600000)", T),
    ("overrun ignored", "firmware/safety.py", "elif dt_us > self._overrun_us:", "elif False:", T),
    ("no integrator rollback", "firmware/regulator.py", "self.integ = self._integ_ok   # undo", "pass  # undo", T + " " + P + " " + R),
    ("no bumpless setpoint", "firmware/ramp.py", "            if self._sp_q > cap:\n", "            if False:\n", T + " " + P),
    ("integrates while limited", "firmware/regulator.py", "if u == raw and not limited:", "if u == raw:", T + " " + P + " " + R),
    ("duration range 5-30 min -> 1-30 min", "firmware/limits.py", "MIN_DURATION_S = const(300)", "MIN_DURATION_S = const(60)", T),
    ("sensor check while disabled off", "firmware/safety.py", "if i_ua > limits.DISABLED_MAX_UA:", "if False:", T),
    ("dose: no ramp-down anticipation", "firmware/charge.py", "return left * _UAMS_PER_UAMIN - self._acc <= ramp_uams", "return left * _UAMS_PER_UAMIN - self._acc <= 0", M),
    ("pulsed: no peak clamp", "firmware/controller.py", "peak_top = limits.CEILING_UA * d // 100", "peak_top = top", M),
    ("pulsed: no peak check in the monitor", "firmware/safety.py", "elif i_ua > self.trip_ua or i_ua * 100 > limits.TRIP_ABS_UA * hal.duty_pct:", "elif i_ua > self.trip_ua:", M),
    ("set_target: trip lowered at once", "firmware/controller.py", "if trip >= self.safety.trip_ua:", "if True:", M),
    ("set_target: trip raised late", "firmware/controller.py", "if trip >= self.safety.trip_ua:", "if False:", M),
    ("set_target: setpoint steps to a lower target", "firmware/ramp.py", "nom -= self._down_q * dt_ms", "nom = top", M),
    ("cal hold: closed loop", "firmware/controller.py", "u = ses.sp_ua                    # calibration hold", "u = reg.step(ses.sp_ua, i, v)  # calibration hold", M),
    ("watchdog fed after an exception", "firmware/controller.py", "        i = hal.read_current_ua()\n", "        hal.feed_watchdog()\n        i = hal.read_current_ua()\n", T),
]


def run_one(name, path, old, new, tests):
    tmp = tempfile.mkdtemp(prefix="mutant-")
    try:
        for d in ("firmware", "boards", "simulation", "tools", "host_tests"):
            shutil.copytree(os.path.join(ROOT, d), os.path.join(tmp, d),
                            ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(os.path.join(ROOT, "pytest.ini"), tmp)
        f = os.path.join(tmp, path)
        src = open(f).read()
        if src.count(old) != 1:
            return "stale"       # the mutant no longer matches the code: update the list
        open(f, "w").write(src.replace(old, new))
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
                           + tests.split(), cwd=tmp, capture_output=True, text=True, timeout=900)
        return "killed" if r.returncode == 1 else ("survived" if r.returncode == 0 else "error %d" % r.returncode)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="run only mutants whose description contains this")
    a = ap.parse_args(argv)
    todo = [m for m in MUTANTS if a.only in m[0]]
    bad = 0
    w = max(len(m[0]) for m in todo) if todo else 0
    for m in todo:
        res = run_one(*m)
        bad += res != "killed"
        print("%-*s  %s" % (w, m[0], res), flush=True)
    print("%d mutants, %d not killed" % (len(todo), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
