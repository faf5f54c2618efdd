"""Check a flashed board: MicroPython version, file hashes, calibration, on-board self test.

    python -m tools.check [--port PORT] [--vboard NAME] [--json]

Without --port the target is the running virtual board NAME (default "sim").
Prints a pass/fail table; exit status 0 when every row passes, 1 when any fails,
2 when the port does not answer (or the virtual board is not running).

Two mpremote calls, then a reset. The first reads the board's version, its manifest.json and the
sha256 of every file the manifest lists, and runs no firmware code. Only when every
file matches does the second run firmware code: the calibration check and
`selftest.run_board()` (firmware/selftest.py; it leaves the output off whatever
happens). A board whose files do not match its manifest never runs its self test. At the
end the board is reset and the check waits until its firmware answers (row `restart`), so
it is left running the firmware, as after `make flash`.
"""

import hashlib
import json
import sys
import time

from tools import manifest as mf
from tools.flash import (PROBE_TIMEOUT, SESSION_ASK_S, Refused, parser, probe_files,
                         refuse_a_session)
from tools.remote import RemoteError, exec_json, mpremote, mpremote_argv

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NO_BOARD = 2

PASS, FAIL, SKIP, INFO = "PASS", "FAIL", "skip", "info"

# ---- the calibration step (the one piece to change when the firmware's changes) ------------
# Mirrors what the firmware does at start-up (main.py -> app.App): the stored calibration
# record (data/cal.rec through storage/records, CRC-checked) if it loads; else, only while
# none is stored, the board file's DEFAULT_CALIBRATION; else the firmware refuses
# treatment, and this check fails. Firmware without the storage modules builds its HAL
# from `Calibration()` defaults: then those must validate, and the row says so.
CALIBRATION_CODE = r"""
import board
from calibration import Calibration
def _cal_text(c):
    return 'gains %d/%d/%d, offsets %d/%d/%d (I/V/ref)' % (c.i_gain, c.v_gain, c.r_gain,
                                                          c.i_offset, c.v_offset, c.r_offset)
try:
    import records, storage
except ImportError:
    records = None
if records is None or not hasattr(records, 'Store'):
    _c = Calibration().validate()
    _r['calibration'] = [True, 'firmware defaults, valid: ' + _cal_text(_c) +
                         ' (this firmware stores no calibration)']
else:
    _rec = records.Store(storage.Fs(), 'data').cal
    _rec.load()
    _dflt = getattr(board, 'DEFAULT_CALIBRATION', None)
    if _rec.data is not None:
        _c = records.calibration_of(_rec.data).validate()
        _r['calibration'] = [True, 'stored (%s, %s), valid: %s' % (_rec.status, _rec.source,
                                                                   _cal_text(_c))]
    elif _rec.status == storage.MISSING and _dflt is not None:
        _d = {}
        for _k in records.CAL_INTS:
            if _k in _dflt:
                _d[_k] = _dflt[_k]
        _c = Calibration(**_d).validate()
        _r['calibration'] = [True, 'none stored; the board file default is used: ' +
                             _cal_text(_c)]
    else:
        _r['calibration'] = [False, 'calibration %s (data/cal.rec): the firmware refuses '
                             'treatment until the board is calibrated' % _rec.status]
"""

ON_BOARD = r"""
import json
_r = {}
try:
%(calibration)s
except Exception as e:
    _r['calibration'] = [False, '%%s: %%s' %% (type(e).__name__, e)]
try:
    import selftest
    _r['selftest'] = [[n, ok, d] for n, ok, d in selftest.run_board()]
except Exception as e:
    _r['selftest'] = [['selftest', False, '%%s: %%s' %% (type(e).__name__, e)]]
print('CHECK ' + json.dumps(_r))
"""


def _indent(code, n=4):
    return "\n".join((" " * n + line) if line.strip() else line for line in code.strip("\n").splitlines())


def on_board_code():
    return ON_BOARD % {"calibration": _indent(CALIBRATION_CODE)}


def resolve_port(port, vboard_name):
    from emulators import find_by_port
    from emulators.vboard import VirtualBoard
    from tools import cli
    if port:
        problem = cli.port_problem(port)
        if problem:
            raise Refused(problem)
        return port, find_by_port(port)
    vb = VirtualBoard(vboard_name)
    st = vb.state()
    if not st:
        raise Refused(cli.no_vboard_text(vboard_name))
    return st["port"], vb


def local_hashes(board):
    """{name: sha256} of this checkout's sources for BOARD (not precompiled)."""
    return {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in mf.sources(board)}


def check(port=None, vboard_name="sim", timeout_scale=1.0, probe_timeout=PROBE_TIMEOUT):
    """Run every check; returns (rows, exit status). rows: [(name, status, detail)]."""
    rows = []

    def row(name, status, detail):
        rows.append((name, status, detail))

    try:
        mpremote_argv()
        port, vb = resolve_port(port, vboard_name)
        timeout_scale *= getattr(vb, "TIMEOUT_SCALE", 1.0)
    except (Refused, RemoteError) as e:
        row("port", FAIL, str(e))
        return rows, EXIT_NO_BOARD
    try:
        refuse_a_session(port, SESSION_ASK_S * timeout_scale)
    except Refused as e:
        row("port", FAIL, str(e))
        return rows, EXIT_NO_BOARD
    said = []
    try:
        info, _ = probe_files(port, [mf.MANIFEST_NAME], probe_timeout * timeout_scale, vb,
                              said.append, tool="check")
    except Refused as e:
        row("port", FAIL, str(e))
        return rows, EXIT_NO_BOARD
    for s in said:          # the board's reset on the way (a treatment armed its watchdog)
        row("watchdog", INFO, s.strip())
    version = mf.version_tuple(info["v"])
    vtext = ".".join(map(str, version))
    row("port", PASS, "%s%s: MicroPython %s, %s" % (
        port, " (%s %s)" % (vb.KIND, vb.name) if vb else "", vtext,
        info.get("machine") or info.get("platform")))

    doc = None
    if info.get("manifest") is None:
        row("manifest", FAIL, "no manifest.json on the board: flash it (make flash)")
    else:
        try:
            doc = mf.parse_manifest(info["manifest"])
            row("manifest", PASS, "firmware %s, git %s%s, board %s, %d files%s" % (
                doc.get("firmware"), str(doc.get("git"))[:12],
                " (modified)" if doc.get("git_dirty") else "", doc.get("board"),
                len(doc["files"]), ", precompiled .mpy %s" % doc["mpy"] if doc.get("mpy") else ""))
        except mf.ManifestError as e:
            row("manifest", FAIL, str(e))

    need = mf.version_tuple(doc.get("micropython_min", "0")) if doc else mf.MICROPYTHON_MIN
    if need < mf.MICROPYTHON_MIN:
        need = mf.MICROPYTHON_MIN
    ok = version >= need
    detail = "board %s, firmware needs >= %s" % (vtext, ".".join(map(str, need)))
    board_mpy = mf.mpy_version(info.get("mpy"))
    if ok and doc and doc.get("mpy"):
        if not board_mpy or board_mpy.split(".")[0] != str(doc["mpy"]).split(".")[0]:
            ok = False
            detail += "; files are .mpy %s, the board loads .mpy %s" % (doc["mpy"], board_mpy)
    row("micropython", PASS if ok else FAIL, detail)

    files_ok = False
    if doc is None:
        row("files", SKIP, "no valid manifest")
    else:
        on_board = info["files"]
        missing = sorted(n for n in doc["files"] if on_board.get(n) is None)
        unknown = sorted(n for n in doc["files"] if on_board.get(n) == "?")
        differ = sorted(n for n, h in doc["files"].items()
                        if on_board.get(n) not in (None, "?", h))
        problems = []
        if differ:
            problems.append("sha256 differs: " + ", ".join(differ))
        if missing:
            problems.append("missing: " + ", ".join(missing))
        if unknown:
            problems.append("cannot hash (no hashlib on the board): " + ", ".join(unknown))
        files_ok = not problems
        row("files", PASS if files_ok else FAIL,
            "%d files match the manifest" % len(doc["files"]) if files_ok else "; ".join(problems))
        if doc.get("board") in mf.boards() and not doc.get("mpy"):
            here = local_hashes(doc["board"])
            same = here == doc["files"]
            row("checkout", INFO, "same files as this checkout" if same else
                "differs from this checkout (make flash to update)")

    if not files_ok or not ok:
        row("calibration", SKIP, "not run: the board's files or version are not as flashed")
        row("selftest", SKIP, "not run: the board's files or version are not as flashed")
        return rows, EXIT_FAILED
    try:
        res = exec_json(port, on_board_code(), "CHECK", timeout=30.0 * timeout_scale,
                        resume=True)
    except RemoteError as e:
        row("calibration", FAIL, "the on-board check did not complete: %s" % e)
        row("selftest", FAIL, "not completed")
        return rows, EXIT_FAILED
    cal = res.get("calibration") or [False, "no result"]
    row("calibration", PASS if cal[0] else FAIL, cal[1])
    tests = res.get("selftest") or [["selftest", False, "no result"]]
    for name, passed, detail in tests:
        row("selftest " + name, PASS if passed else FAIL, detail)
    restart(port, timeout_scale, row)
    failed = any(status == FAIL for _, status, _ in rows)
    return rows, EXIT_FAILED if failed else EXIT_OK


def restart(port, timeout_scale, row):
    """Leave the board running its firmware: the check's mpremote calls stopped main.py
    and left the board at its REPL, where the next tool (monitor, calibrate) would get
    its own words echoed back. A hard reset (as flash does), then wait for the protocol."""
    from tools.flash import BOOT_TIMEOUT, _wait_firmware
    r = mpremote(port, ["reset"], timeout=15.0 * timeout_scale, resume=True)
    if not r.ok:
        row("restart", FAIL, "the reset failed (%s): reset the board by hand" % r.reason())
        return
    said = _wait_firmware(port, BOOT_TIMEOUT * timeout_scale)
    row("restart", PASS if "answers" in said else FAIL, said)


def format_table(rows):
    width = max(len(r[0]) for r in rows)
    lines = ["%-*s  %-4s  %s" % (width, "check", "", "detail"),
             "%s  %s  %s" % ("-" * width, "----", "-" * 40)]
    for name, status, detail in rows:
        lines.append("%-*s  %-4s  %s" % (width, name, status, detail))
    return "\n".join(lines)


def main(argv=None):
    ap = parser("python -m tools.check", __doc__)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead")
    ns = ap.parse_args(argv)
    t0 = time.monotonic()
    rows, status = check(ns.port, ns.vboard, probe_timeout=ns.probe_timeout)
    if ns.json:
        print(json.dumps({"rows": rows, "status": status}))
    else:
        print(format_table(rows))
        n_fail = sum(1 for r in rows if r[1] == FAIL)
        print("check: %s (%d failed) in %.1f s" % ("PASS" if status == EXIT_OK else "FAIL",
                                                   n_fail, time.monotonic() - t0))
    return status


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
