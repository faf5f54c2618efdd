"""Run the real `mpremote` against a board, always under a timeout.

mpremote reads a pseudo-terminal (the virtual board) without a timeout of its own, so a
board that hangs would hang it: every call here runs mpremote as a child process in its
own process group and kills the group when the time is up.

    from tools.remote import mpremote, exec_json
    r = mpremote(port, ["fs", "ls"], timeout=10)          # Result(ok, rc, out, err, ...)
    data = exec_json(port, code, "TAG", timeout=10)      # the JSON printed as "TAG {...}"
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import namedtuple


class RemoteError(RuntimeError):
    """mpremote failed or timed out; str() has the reason (last lines of its output)."""


class Result(namedtuple("Result", "rc out err timed_out elapsed argv aborted",
                         defaults=(None,))):
    __slots__ = ()

    @property
    def ok(self):
        return self.rc == 0 and not self.timed_out and not self.aborted

    def reason(self):
        if self.aborted:
            return self.aborted
        if self.timed_out:
            return "no answer within %.0f s" % self.elapsed
        text = (self.err.strip() or self.out.strip()).splitlines()
        return text[-1] if text else "mpremote exit status %s" % self.rc


def mpremote_argv():
    """How to run mpremote: the module from this Python (pip install mpremote)."""
    import importlib.util
    if importlib.util.find_spec("mpremote") is None:
        raise RemoteError("mpremote is not installed in %s (it is pinned in requirements.txt: "
                          "make venv)" % sys.executable)
    return [sys.executable, "-m", "mpremote"]


ABORT_POLL_S = 0.2


def mpremote(port, args, timeout=20.0, on_line=None, resume=False, abort=None):
    """Run `mpremote connect PORT [resume] ARGS...`; returns Result (raises RemoteError only
    when mpremote is not installed).

    on_line(str) is called for each stdout line as it arrives (progress displays).
    resume=True skips mpremote's soft reset before the first command.
    abort() is called every 0.2 s while mpremote runs: a true value (a reason) kills it
    and becomes Result.aborted (e.g. the board reset under it: mpremote would wait for
    an answer that never comes).
    """
    argv = mpremote_argv() + ["connect", port] + (["resume"] if resume else []) + list(args)
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    out_lines = []
    err_chunks = []

    def read_out():
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            out_lines.append(line)
            if on_line is not None:
                try:
                    on_line(line.rstrip("\r\n"))
                except Exception:       # a display problem must not hang the call
                    pass

    def read_err():
        err_chunks.append(proc.stderr.read())

    threads = [threading.Thread(target=read_out, daemon=True),
               threading.Thread(target=read_err, daemon=True)]
    for t in threads:
        t.start()
    timed_out = False
    aborted = None
    deadline = start + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                proc.wait(timeout=max(0.0, min(left, ABORT_POLL_S)) if abort else left)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    timed_out = True
                    _kill_group(proc)
                    break
                aborted = abort() or None
                if aborted:
                    _kill_group(proc)
                    break
    except BaseException:
        _kill_group(proc)
        raise
    for t in threads:
        t.join(timeout=5)
    err = b"".join(err_chunks).decode("utf-8", "replace")
    return Result(proc.returncode, "".join(out_lines), err, timed_out,
                  time.monotonic() - start, tuple(argv), aborted)


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def exec_json(port, code, tag, timeout=20.0, resume=False, abort=None):
    """Run `code` on the board; it must print one line `TAG <json>`. Returns the value.

    Raises RemoteError when mpremote fails, times out, is aborted (abort: see mpremote),
    or no such line comes back.
    """
    r = mpremote(port, ["exec", code], timeout=timeout, resume=resume, abort=abort)
    if r.aborted:
        raise RemoteError(r.aborted)
    prefix = tag + " "
    for line in r.out.splitlines():
        line = line.strip()
        if line.startswith(prefix):
            try:
                return json.loads(line[len(prefix):])
            except ValueError:
                raise RemoteError("bad %s line from the board: %r" % (tag, line[:200]))
    if not r.ok:
        raise RemoteError(r.reason())
    raise RemoteError("the board printed no %s line: %r" % (tag, r.out[-300:]))
