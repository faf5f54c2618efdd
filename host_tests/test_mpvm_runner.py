"""The MicroPython VM test machinery (tools/mpvm, host_tests/mp/mptest.py, mpvm_pytest.py).

Runs host_tests/mp/test_selfcheck_mp.py on the real interpreters, and proves that failures,
crashes, hangs, syntax errors and heap-lock misuse are reported as failures, never as passes.
"""

import textwrap

import pytest

from mpvm_pytest import (
    MP_DIR,
    RUN_KEY,
    check_test,
    collect_test_names,
    mp_module_test,
    parse_report,
    require,
    run_modules,
)
from tools.mpvm import Result, VmUnavailable, available, run

ALL = ("unix", "wasm", "cpython")
VMS = ("unix", "wasm")

# The self-check module, one pytest test per (interpreter, test function).
test_selfcheck_mp = mp_module_test("test_selfcheck_mp", interps=ALL)


def _write(directory, name, source):
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def _fail_text(func, *args):
    with pytest.raises(pytest.fail.Exception) as info:
        func(*args)
    return str(info.value)


@pytest.fixture(params=ALL)
def interp(request):
    require(request.param)
    return request.param


@pytest.fixture(params=VMS)
def vm(request):
    require(request.param)
    return request.param


def test_selfcheck_names_are_collected():
    names = collect_test_names(MP_DIR / "test_selfcheck_mp.py")
    assert "test_ticks_wrap" in names and "test_int_loop_allocates_nothing" in names
    assert names == sorted(names)


def test_failing_module_is_reported(interp, tmp_path):
    _write(tmp_path, "test_mixed_mp.py", """
        import mptest

        def test_a_passes():
            assert 1 + 1 == 2

        def test_b_fails():
            print("some output")
            assert 1 + 1 == 3, "arithmetic is broken"

        def test_c_skips():
            raise mptest.Skip("not here")

        def test_d_raises():
            {}["missing"]

        def test_e_generator():
            yield 1

        def helper():
            raise AssertionError("not a test")
    """)
    report = run_modules(interp, ["test_mixed_mp"], [tmp_path], timeout=30)
    assert report[RUN_KEY].passed is True, report[RUN_KEY].text  # a clean run, with failures
    assert report.done and not report.ok
    assert report.result.returncode == 1
    assert report["test_mixed_mp.test_a_passes"].passed is True
    failed = report["test_mixed_mp.test_b_fails"]
    assert failed.passed is False and "arithmetic is broken" in failed.text
    assert "AssertionError" in failed.text
    assert report["test_mixed_mp.test_c_skips"].passed is None
    assert "KeyError" in report["test_mixed_mp.test_d_raises"].text
    assert report["test_mixed_mp.test_e_generator"].passed is False
    assert "test_mixed_mp.helper" not in report
    assert sorted(report.failures()) == [
        "test_mixed_mp.test_b_fails", "test_mixed_mp.test_d_raises", "test_mixed_mp.test_e_generator"]
    # ... and what a pytest test built on it does with each entry
    check_test(report, "test_mixed_mp", "test_a_passes")
    assert "arithmetic is broken" in _fail_text(check_test, report, "test_mixed_mp", "test_b_fails")
    with pytest.raises(pytest.skip.Exception):
        check_test(report, "test_mixed_mp", "test_c_skips")
    assert "not reported" in _fail_text(check_test, report, "test_mixed_mp", "test_zz_absent")


def test_timeout_is_a_failure(interp, tmp_path):
    _write(tmp_path, "test_hang_mp.py", """
        def test_a_first():
            pass

        def test_b_hangs():
            while True:
                pass
    """)
    report = run_modules(interp, ["test_hang_mp"], [tmp_path], timeout=2)
    assert report.result.timed_out and report.result.returncode != 0
    assert 1.9 < report.result.elapsed < 20
    run_outcome = report[RUN_KEY]
    assert run_outcome.passed is False and "TIMEOUT" in run_outcome.text
    assert report["test_hang_mp.test_a_first"].passed is True  # output before the kill survives
    assert "TIMEOUT" in _fail_text(check_test, report, "test_hang_mp", RUN_KEY)
    assert "not reported" in _fail_text(check_test, report, "test_hang_mp", "test_b_hangs")


def test_syntax_error_module_fails(interp, tmp_path):
    _write(tmp_path, "test_broken_mp.py", """
        def test_a():
            return (
    """)
    report = run_modules(interp, ["test_broken_mp"], [tmp_path], timeout=30)
    imp = report["test_broken_mp.<import>"]
    assert imp.passed is False and "SyntaxError" in imp.text
    assert not report.ok and report.result.returncode == 1
    assert collect_test_names(tmp_path / "test_broken_mp.py") == []
    assert "SyntaxError" in _fail_text(check_test, report, "test_broken_mp", RUN_KEY)


def test_module_without_tests_fails(interp, tmp_path):
    _write(tmp_path, "test_empty_mp.py", "X = 1\n")
    report = run_modules(interp, ["test_empty_mp"], [tmp_path], timeout=30)
    assert report["test_empty_mp.<import>"].passed is False
    assert not report.ok


@pytest.mark.parametrize("code", ["raise SystemExit(0)", "raise SystemExit(3)", "raise KeyboardInterrupt"])
def test_crash_mid_run_is_a_failure(interp, tmp_path, code):
    _write(tmp_path, "test_crash_mp.py", """
        def test_a():
            pass

        def test_b_crashes():
            %s
    """ % code)
    report = run_modules(interp, ["test_crash_mp"], [tmp_path], timeout=30)
    assert not report.done
    assert report[RUN_KEY].passed is False
    assert "MPTEST DONE" in report[RUN_KEY].text
    assert not report.ok


def test_fake_output_without_done_line_is_a_failure(interp, tmp_path):
    script = _write(tmp_path, "fake.py", 'print("PASS m.test_a")\nprint("PASS m.test_b")\n')
    result = run(interp, str(script), [], timeout=30)
    assert result.ok
    report = parse_report(interp, ["m"], result)
    assert report["m.test_a"].passed is True
    assert report[RUN_KEY].passed is False and not report.ok


def test_inconsistent_done_line_is_a_failure():
    stdout = "PASS m.test_a\nPASS m.test_a\nMPTEST DONE passed=1 failed=0 skipped=0\n"
    report = parse_report("unix", ["m"], Result(0, stdout, "", False, 0.1, ("x",)))
    assert report[RUN_KEY].passed is False
    assert "reported twice" in report[RUN_KEY].text
    stdout = "FAIL m.test_a\nMPTEST DONE passed=0 failed=1 skipped=0\n"
    report = parse_report("unix", ["m"], Result(0, stdout, "", False, 0.1, ("x",)))
    assert "exit status 0 although tests failed" in report[RUN_KEY].text


def test_heap_lock_misuse_fails_cleanly(vm, tmp_path):
    # Leaving the heap locked, or unlocking it once too often, would hang the wasm port at the
    # next error; mptest repairs the lock depth and fails the test instead.
    _write(tmp_path, "test_lock_mp.py", """
        import micropython

        def test_a_leaves_heap_locked():
            micropython.heap_lock()

        def test_b_unlocks_too_often():
            micropython.heap_unlock()
            x = [1, 2, 3]

        def test_c_after():
            x = [1, 2, 3]
            assert len(x) == 3
    """)
    report = run_modules(vm, ["test_lock_mp"], [tmp_path], timeout=30)
    assert report[RUN_KEY].passed is True, report[RUN_KEY].text
    a = report["test_lock_mp.test_a_leaves_heap_locked"]
    assert a.passed is False and "lock depth at 1" in a.text
    b = report["test_lock_mp.test_b_unlocks_too_often"]
    assert b.passed is False and "MemoryError" in b.text
    assert report["test_lock_mp.test_c_after"].passed is True


@pytest.mark.parametrize("source,status", [
    ("print('ok')", 0),
    ("raise ValueError('boom')", 1),
    ("raise SystemExit(4)", 4),
    ("import sys\nsys.exit()", 0),
    ("x = (", 1),
])
def test_exit_status(vm, tmp_path, source, status):
    script = _write(tmp_path, "s.py", source + "\n")
    result = run(vm, str(script), [], timeout=30)
    assert result.returncode == status, result.output
    if status == 1:  # the unix port prints the traceback on stdout, the wasm runner on stderr
        assert "Traceback" in result.output


def test_path_dirs_first_wins(interp, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _write(a, "modx.py", "X = 'a'\n")
    _write(b, "modx.py", "X = 'b'\n")
    _write(b, "mody.py", "Y = 'b'\n")
    script = _write(tmp_path, "s.py", "import modx, mody\nprint(modx.X + mody.Y)\n")
    result = run(interp, str(script), [a, b], timeout=30)
    assert result.ok and result.stdout.strip() == "ab", result.output


def test_heapsize_bounds_unix_but_not_wasm(vm, tmp_path):
    script = _write(tmp_path, "s.py", "b = bytearray(1024 * 1024)\nprint(len(b))\n")
    result = run(vm, str(script), [], timeout=30, heapsize="64K")
    if vm == "unix":
        assert result.returncode == 1 and "MemoryError" in result.output, result.output
    else:  # the wasm heap grows on demand: heapsize is only its initial size
        assert result.ok and result.stdout.strip() == "1048576", result.output


def test_missing_node_is_reported_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("MPVM_NODE", str(tmp_path / "no-such-node"))
    ok, reason = available("wasm")
    assert not ok and "npm ci" in reason
    with pytest.raises(VmUnavailable, match="npm ci"):
        run("wasm", str(_write(tmp_path, "s.py", "pass\n")), [])
    monkeypatch.setenv("CI", "true")
    assert "CI is set" in _fail_text(require, "wasm")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="npm ci"):
        require("wasm")


def test_unknown_interpreter():
    ok, reason = available("pyboard")
    assert not ok and "unknown interpreter" in reason


def test_missing_npm_package_is_reported_clearly(monkeypatch, tmp_path):
    import tools.mpvm.runner as runner

    monkeypatch.setattr(runner, "WASM_PACKAGE_DIR", tmp_path / "node_modules" / "absent")
    ok, reason = available("wasm")
    assert not ok and "npm ci" in reason and "micropython-webassembly-pyscript" in reason
