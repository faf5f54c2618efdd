"""Run MicroPython test modules (host_tests/mp/test_*_mp.py) on real MicroPython interpreters
and report them as pytest tests.  A helper module, imported by test files; not a conftest.

    # host_tests/test_regulator_vm.py
    from mpvm_pytest import REPO_ROOT, mp_module_test
    test_regulator_mp = mp_module_test(
        "test_regulator_mp", path_dirs=[REPO_ROOT / "firmware", REPO_ROOT / "boards"])

gives one pytest test per (interpreter, test function), e.g.
`test_regulator_mp[wasm-test_step_response]`, plus one `[wasm-run]` test per interpreter that
fails on a timeout, a crash, a missing `MPTEST DONE` line or a failure not otherwise collected.
Each module runs once per interpreter per pytest session (cached).

Lower level: run_modules(interp, modules, path_dirs) -> ModuleReport (a dict).
The test-module contract and the PASS/FAIL protocol are in host_tests/mp/mptest.py.
"""

import ast
import os
import re
import shutil
import sys
import tempfile
from collections import namedtuple
from pathlib import Path

import pytest

HOST_TESTS = Path(__file__).resolve().parent
MP_DIR = HOST_TESTS / "mp"
REPO_ROOT = HOST_TESTS.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools.mpvm import VmUnavailable, available, run  # noqa: E402

DEFAULT_INTERPS = ("unix", "wasm")
RUN_KEY = "<run>"

_RESULT_RE = re.compile(r"^(PASS|FAIL|SKIP) (\S+)(?: (.*))?$")
_DONE_RE = re.compile(r"^MPTEST DONE passed=(\d+) failed=(\d+)(?: skipped=(\d+))?\s*$")

Outcome = namedtuple("Outcome", "passed text")
Outcome.__doc__ = """passed: True (PASS), False (FAIL) or None (SKIP); text: the result line
and, for a failure, the traceback lines that follow it."""


class ModuleReport(dict):
    """name -> Outcome(passed, text), names being "module.test_name", "module.<import>" (the
    module failed to import or has no test) and RUN_KEY ("<run>": the run as a whole, False on
    a timeout, a crash, a missing or inconsistent MPTEST DONE line).  Attributes: interp,
    modules, result (tools.mpvm.Result, with the full stdout/stderr), done (the DONE line was
    seen), ok (everything passed or was skipped, and the run is clean)."""

    def __init__(self, interp, modules, result):
        super().__init__()
        self.interp = interp
        self.modules = tuple(modules)
        self.result = result
        self.done = False

    @property
    def ok(self):
        return all(outcome.passed is not False for outcome in self.values())

    def failures(self):
        return dict((k, v) for k, v in self.items() if v.passed is False)

    def describe(self):
        """The whole run as text, for a failure message."""
        r = self.result
        head = "%s run of %s: exit status %s%s, %.2f s\n$ %s" % (
            self.interp,
            ", ".join(self.modules),
            r.returncode,
            " (TIMEOUT)" if r.timed_out else "",
            r.elapsed,
            " ".join(r.argv),
        )
        return head + "\n" + r.output


def _driver_source(modules):
    return "import mptest\nmptest.main(%r)\n" % (list(modules),)


def parse_report(interp, modules, result):
    """Turn a finished run (tools.mpvm.Result of an mptest driver) into a ModuleReport."""
    report = ModuleReport(interp, modules, result)
    problems = []
    current = None  # key of the FAIL whose traceback lines are being collected
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    done = None
    for line in result.stdout.splitlines():
        m = _RESULT_RE.match(line)
        if m and done is None:
            status, name = m.group(1), m.group(2)
            counts[status] += 1
            if name in report:
                problems.append("%s reported twice" % name)
                report[name] = Outcome(False, report[name].text + "\n" + line)
            else:
                report[name] = Outcome({"PASS": True, "FAIL": False, "SKIP": None}[status], line)
            current = name if status == "FAIL" else None
            continue
        d = _DONE_RE.match(line)
        if d and done is None:
            done = (int(d.group(1)), int(d.group(2)), int(d.group(3) or 0))
            current = None
            continue
        if current is not None:
            report[current] = Outcome(False, report[current].text + "\n" + line)

    report.done = done is not None
    if result.timed_out:
        problems.append("TIMEOUT: killed after %.1f s" % result.elapsed)
    if done is None:
        problems.append("no `MPTEST DONE` line: the run crashed, hung or exited early")
    elif done != (counts["PASS"], counts["FAIL"], counts["SKIP"]):
        problems.append(
            "MPTEST DONE says passed=%d failed=%d skipped=%d but %d PASS, %d FAIL, %d SKIP lines "
            "were printed" % (done + (counts["PASS"], counts["FAIL"], counts["SKIP"]))
        )
    if not result.timed_out:
        if result.returncode != 0 and counts["FAIL"] == 0:
            problems.append("exit status %s although no test failed" % result.returncode)
        if result.returncode == 0 and counts["FAIL"]:
            problems.append("exit status 0 although tests failed")
    for module in modules:
        prefix = module + "."
        if not any(k.startswith(prefix) for k in report):
            problems.append("module %s reported no result" % module)
    if problems:
        report[RUN_KEY] = Outcome(False, "\n".join(problems) + "\n\n" + report.describe())
    else:
        report[RUN_KEY] = Outcome(True, "clean run, %.2f s" % result.elapsed)
    return report


def run_modules(interp, modules, path_dirs=(), timeout=60, heapsize=None, mp_dir=MP_DIR):
    """Run the MicroPython test modules `modules` (names) on `interp` ("unix", "wasm" or
    "cpython") with mp_dir (holding mptest.py and the modules) then `path_dirs` importable.

    Returns a ModuleReport: dict name -> Outcome(passed, text), see its docstring.  Raises
    tools.mpvm.VmUnavailable when the interpreter is missing.
    """
    if isinstance(modules, str):
        modules = [modules]
    dirs = [Path(mp_dir)] + [Path(d) for d in path_dirs]
    tmp = tempfile.mkdtemp(prefix="mpvm_")
    try:
        driver = Path(tmp) / "mpvm_driver.py"
        driver.write_text(_driver_source(modules))
        result = run(interp, str(driver), [str(d) for d in dirs], timeout=timeout, heapsize=heapsize)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return parse_report(interp, modules, result)


# ---------------------------------------------------------------------------------- pytest side


def in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(interp):
    """Skip the calling test when `interp` is missing (outside CI); fail it in CI."""
    ok, reason = available(interp)
    if not ok:
        message = "MicroPython %s interpreter unavailable: %s" % (interp, reason)
        if in_ci():
            pytest.fail(message + " (CI is set, so this is a failure)", pytrace=False)
        pytest.skip(message)


def find_module_file(module, path_dirs=(), mp_dir=MP_DIR):
    for d in [Path(mp_dir)] + [Path(p) for p in path_dirs]:
        candidate = d / (module + ".py")
        if candidate.is_file():
            return candidate
    return None


def collect_test_names(path):
    """Top-level `def test_*` / `test_* = ...` names of a module file, sorted like mptest does.
    [] when the file does not parse on CPython (the run then reports the error)."""
    try:
        tree = ast.parse(Path(path).read_text(), str(path))
    except (SyntaxError, ValueError):
        return []
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return sorted(n for n in names if n.startswith("test_"))


_CACHE = {}


def cached_run(interp, module, path_dirs=(), timeout=60, heapsize=None, mp_dir=MP_DIR):
    """run_modules for one module, once per pytest session per argument set."""
    key = (interp, module, tuple(str(p) for p in path_dirs), timeout, heapsize, str(mp_dir))
    if key not in _CACHE:
        _CACHE[key] = run_modules(interp, [module], path_dirs, timeout, heapsize, mp_dir)
    return _CACHE[key]


def check_test(report, module, test_name, collected=()):
    """Turn one entry of a ModuleReport into a pytest outcome (pass, fail or skip)."""
    if test_name == RUN_KEY:
        outcome = report[RUN_KEY]
        if not outcome.passed:
            pytest.fail(outcome.text, pytrace=False)
        stray = sorted(
            k for k, v in report.items()
            if v.passed is False and k != RUN_KEY and k.split(".", 1)[-1] not in collected
        )
        if stray:  # failures that no parametrized case shows (import error, dynamic tests)
            pytest.fail(
                "\n\n".join(report[k].text for k in stray) + "\n\n" + report.describe(),
                pytrace=False,
            )
        return
    key = module + "." + test_name
    outcome = report.get(key)
    if outcome is None:
        why = "%s was not reported by the %s run" % (key, report.interp)
        imp = report.get(module + ".<import>")
        if imp is not None:
            why += "\n\n" + imp.text
        pytest.fail(why + "\n\n" + report.describe(), pytrace=False)
    if outcome.passed is None:
        pytest.skip("%s: %s" % (report.interp, outcome.text))
    if not outcome.passed:
        pytest.fail("%s on MicroPython %s:\n%s" % (key, report.interp, outcome.text), pytrace=False)


def mp_module_test(module, path_dirs=(), interps=DEFAULT_INTERPS, timeout=60, heapsize=None,
                   mp_dir=MP_DIR):
    """A pytest test function, parametrized over (interp, test name) of MicroPython test module
    `module` (a file in mp_dir or path_dirs).  Assign it to a `test_*` name in a test file."""
    path = find_module_file(module, path_dirs, mp_dir)
    names = collect_test_names(path) if path is not None else []
    cases = []
    for interp in interps:
        cases.append(pytest.param(interp, RUN_KEY, id="%s-run" % interp))
        for name in names:
            cases.append(pytest.param(interp, name, id="%s-%s" % (interp, name)))

    @pytest.mark.parametrize("interp,test_name", cases)
    def test(interp, test_name):
        require(interp)
        if path is None:
            pytest.fail("MicroPython test module %s.py not found in %s" % (
                module, ", ".join(str(d) for d in [mp_dir] + list(path_dirs))), pytrace=False)
        report = cached_run(interp, module, path_dirs, timeout, heapsize, mp_dir)
        check_test(report, module, test_name, names)

    test.__name__ = "test_" + module if not module.startswith("test_") else module
    test.__doc__ = "MicroPython test module %s on %s" % (module, ", ".join(interps))
    return test
