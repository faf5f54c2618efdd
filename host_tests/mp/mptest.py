"""A tiny test runner that runs ON MicroPython (unix and webassembly ports) and on CPython.

Contract for a test module (e.g. host_tests/mp/test_regulator_mp.py):
  * it is importable by name from the interpreter's path;
  * every module-level callable whose name starts with `test_` is a test, called with no
    arguments; tests run sorted by name (MicroPython module dicts keep no definition order);
  * a test passes by returning None, fails by raising any Exception (e.g. AssertionError) or
    by returning anything else (a generator/async test body would not have run), and is
    skipped by raising mptest.Skip("reason");
  * a test must leave the heap unlocked: one micropython.heap_unlock() per heap_lock(), in a
    `finally`.  The runner detects and repairs a lock depth left wrong, and fails that test.

Output protocol, one line per test, then one closing line (parsed by host_tests/mpvm_pytest.py):
    PASS module.test_name
    FAIL module.test_name            followed by the traceback / message lines
    SKIP module.test_name reason
    MPTEST DONE passed=N failed=M skipped=K
A module that cannot be imported, or holds no test, is reported as `FAIL module.<import>`.
main() raises SystemExit(1) when anything failed.

Usage, as a script:   micropython mptest.py test_a_mp test_b_mp
or from a driver:     import mptest; mptest.main(["test_a_mp", "test_b_mp"])

Kept MicroPython-compatible: no f-strings, no typing, no dataclasses.
"""

import sys

try:
    import gc
except ImportError:  # pragma: no cover
    gc = None

try:
    import micropython as _mp

    if not (hasattr(_mp, "heap_lock") and hasattr(_mp, "heap_unlock")):
        _mp = None  # e.g. the CPython shim in tools/shims
except ImportError:
    _mp = None


class Skip(Exception):
    """Raise mptest.Skip("why") in a test that does not apply on this interpreter."""


def is_micropython():
    return sys.implementation.name == "micropython"


def allocated_by(func, *args):
    """Heap bytes `func(*args)` allocates (exact: the collector cannot run meanwhile)."""
    import gc
    gc.collect()
    gc.disable()
    try:
        a = gc.mem_alloc()
        func(*args)
        b = gc.mem_alloc()
    finally:
        gc.enable()
    return b - a


def _print_exception(exc):
    if hasattr(sys, "print_exception"):
        sys.print_exception(exc)  # MicroPython: to sys.stdout
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stdout)


def _heap_lock_depth():
    # heap_unlock() returns the depth left after unlocking, so lock-then-unlock reads the
    # current depth without allocating.  An extra heap_unlock() underflows it to a huge value.
    _mp.heap_lock()
    return _mp.heap_unlock()


def _repair_heap_lock():
    """Return the heap lock depth a test left behind (0 when fine) and bring it back to 0."""
    if _mp is None:
        return 0
    depth = _heap_lock_depth()
    n = 0
    if depth > 16384:  # underflow: more heap_unlock() than heap_lock()
        while _heap_lock_depth() != 0 and n < 70000:
            _mp.heap_lock()
            n += 1
    else:
        while _heap_lock_depth() != 0 and n < 70000:
            _mp.heap_unlock()
            n += 1
    return depth


def test_names(module):
    names = []
    for name in dir(module):
        if name.startswith("test_"):
            obj = getattr(module, name)
            if callable(obj) and not isinstance(obj, type):
                names.append(name)
    names.sort()
    return names


class Counts:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0


def _fail(counts, label, exc=None, message=None):
    counts.failed += 1
    print("FAIL " + label)
    if message:
        print(message)
    if exc is not None:
        _print_exception(exc)


def run_test(counts, label, func):
    if gc is not None:
        gc.collect()
    error = None
    skip = None
    returned = None
    try:
        returned = func()
    except Skip as exc:
        skip = exc
    except Exception as exc:  # SystemExit / KeyboardInterrupt end the run: reported as a crash
        error = exc
    depth = _repair_heap_lock()  # before anything here allocates
    if depth:
        _fail(counts, label, error, "test left the heap lock depth at %d (want 0)" % depth)
    elif error is not None:
        _fail(counts, label, error)
    elif returned is not None:  # e.g. a generator or coroutine: its body never ran
        _fail(counts, label, None, "test returned %r instead of None" % (returned,))
    elif skip is not None:
        counts.skipped += 1
        reason = " ".join(str(a) for a in skip.args)
        print("SKIP " + label + (" " + reason if reason else ""))
    else:
        counts.passed += 1
        print("PASS " + label)


def run_module(counts, modname):
    try:
        module = __import__(modname)
    except Exception as exc:  # SyntaxError, ImportError, an error at import time
        _fail(counts, modname + ".<import>", exc)
        return
    names = test_names(module)
    if not names:
        _fail(counts, modname + ".<import>", None, "no test_* functions in module " + modname)
        return
    for name in names:
        run_test(counts, modname + "." + name, getattr(module, name))


def main(modnames):
    counts = Counts()
    for modname in modnames:
        run_module(counts, modname)
    print(
        "MPTEST DONE passed=%d failed=%d skipped=%d" % (counts.passed, counts.failed, counts.skipped)
    )
    if counts.failed or not (counts.passed or counts.skipped):
        raise SystemExit(1)
    return counts


if __name__ == "__main__":
    # Re-import under the name `mptest`, so that test modules raising mptest.Skip use the same
    # class as the runner that catches it.
    import mptest

    mptest.main(sys.argv[1:])
