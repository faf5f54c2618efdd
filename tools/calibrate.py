"""Guided calibration of one unit (technicians): `make calibrate PORT=...`.

    python -m tools.calibrate --port /dev/ttyACM0 --load-ohm 1000 --tech AB
    python -m tools.calibrate --meter visa:USB0::0x2A8D::0x1301::MY1234::INSTR --yes
    python -m tools.calibrate --meter sim          # the running virtual board

Setup: a known load resistor (e.g. 1 kΩ, 1 W) between the electrodes, and the reference
multimeter in series with it on its mA range. The procedure, in service mode (the
technician code is asked for, or taken from --code / $IONTO_SERVICE_CODE):
  1. the board holds each point in turn (default 2, 5, 10, 15, 20, 25 mA nominal) with
     its reference driven open loop and every safety check running; at each, the meter
     is read (typed in, or through pyvisa) while the board averages its raw ADC codes;
  2. current sense, reference output and voltage sense are fitted by least squares; a
     fit whose gain or residuals are out of tolerance is refused (nothing is written);
  3. the calibration is written (atomically, through the protocol), read back and
     compared, and verified at two points: the board's reading against the meter and the
     source against its nominal current; a failed verification restores the old one;
  4. a report (text + PNG) named after the board id and date goes to --out.
Every reading is checked against an independent truth before it is used: the board's
own (uncalibrated) current sense, the line through the earlier points, and the load (the
meter's voltage, or the board's voltage sense against I x --load-ohm: a wrong resistor is
refused, not fitted). A typed reading that fails is asked again, naming why (a
misplaced decimal point, swapped leads, the A range); the fit names an outlier point and
holds it again for a retype. A refusal names its cause and writes nothing.
On an emulated board the tool sets the calibration load (a --load-ohm resistor) itself
and puts the board's load back afterwards (--board-load: use the load already set).
The hold arms the board's watchdog (at the first current of a session; it cannot be
stopped), so the board is reset at the end and the tool waits for its firmware:
`make check` afterwards is safe (--no-reset: it is not, until a power cycle).
Ctrl-C at any point stops the hold; until step 3 nothing on the board has changed, and
an interruption during the verification restores the old calibration.
Exit status: 0 calibrated and verified, 1 refused or failed (old calibration kept),
2 no device, 130 interrupted (tools/cli.py: the same for every tool).
"""

import argparse
import datetime
import os
import sys
import time

from tools import calfit, calreport, cli
from tools.client import DeviceError
from tools.meters import MeterError, open_meter

POINTS_MA = (2, 5, 10, 15, 20, 25)
VERIFY_MA = (5, 20)
N_MIN = 200                 # board samples per point (one per loop period: 1 s)
READ_TOL_PCT = 0.5          # verification: board reading vs meter
SOURCE_TOL_PCT = 1.0        # verification: delivered vs nominal (open loop)
# the checks of each reading against an independent truth (see check_point)
RAW_GAIN_TOL = 0.25         # meter vs the board's uncalibrated current: the fit's gain range
RAW_OFFSET_UA = 300.0       # ... plus this much offset
LOAD_TOL_PCT = 5.0          # the load resistor as seen: V / I against --load-ohm
RETYPES = 2                 # typed readings: a flagged point may be retyped this many times
# the calibration load an emulated board is given (boards/sim.py control keys): a pure
# resistor of --load-ohm, no skin, no polarization
RESISTOR_KEYS = ("contact", "short", "lift_area", "nonlinear", "offset_v", "skin_ohm",
                 "water_ohm", "body_ohm", "skin_drift")
EXAMPLES = """
  python -m tools.calibrate --port /dev/ttyACM0 --load-ohm 1000 --tech AB --meter-id F87V-123
  python -m tools.calibrate --port /dev/ttyACM0 --meter visa:USB0::0x2A8D::0x1301::MY1::INSTR
  make calibrate                      # the running virtual board and its simulated meter
"""


class Aborted(cli.CliError):
    pass


class Refused(cli.CliError):
    """A reading failed its check: nothing is written."""

    def __init__(self, msg):
        cli.CliError.__init__(self, "refused, nothing written: " + msg)


def _same(a, b):
    return all(abs(x - y) <= 0.002 * max(abs(x), abs(y), 1.0) for x, y in zip(a, b))


def _ohm(r):
    """A resistance as read through 1 % of noise: three significant digits."""
    return "%.0f" % float("%.3g" % r)


def _scale_cause(ua, board_ua):
    """What a reading off by a factor says about how it was taken."""
    if board_ua <= 0:
        return "is current flowing through the meter?"
    r = ua / board_ua
    for f, what in ((1000.0, "the meter on its µA range, or the reading typed in µA"),
                    (0.001, "the meter on its A range, or the reading typed in A"),
                    (10.0, "a misplaced decimal point (a mistyped reading)"),
                    (0.1, "a misplaced decimal point (a mistyped reading)")):
        if 0.7 * f <= r <= 1.4 * f:
            return what
    if r < 0.05:
        return "the meter is not in series with the load (or its fuse is blown)"
    return "a mistyped reading, or the meter not in series with the load"


def _sleep(s):
    """Wait between polls of the board (tests replace it to run the device meanwhile)."""
    time.sleep(s)


class Calibration:
    """One calibration run on a connected, identified device."""

    def __init__(self, dev, meter, load_ohm, say=print, point_timeout=120.0):
        self.dev = dev
        self.meter = meter
        self.load_ohm = load_ohm
        self.say = say
        self.sleep = _sleep
        self.point_timeout = point_timeout
        self.fs = None
        self.holding = False

    # ---- the board's calibration hold -------------------------------------------------
    def hold(self, ua):
        r = self.dev.request("cal_hold", ua=int(ua))
        self.holding = True
        self.fs = (r["i_fs_ua"], r["v_fs_mv"], r["ref_fs_ua"])

    def sample(self, nominal_ua):
        """Wait for the hold to be steady with N_MIN samples; returns the cal_sample reply."""
        deadline = time.monotonic() + self.point_timeout
        last = None
        while time.monotonic() < deadline:
            s = self.dev.request("cal_sample")
            st = s["state"]
            if st == "FAULT":
                raise cli.CliError("the safety monitor tripped (%s) while holding %.1f mA: the "
                                   "current sense reads far from the truth (shunt, sense "
                                   "wiring) or the load is wrong; the fault stays latched "
                                   "until a reset" % (s.get("fault"), nominal_ua / 1000.0))
            if st in ("DONE", "IDLE"):
                raise cli.CliError("the hold ended (%s) at %.1f mA: is the load resistor "
                                   "connected, and the meter in series on its mA range?" % (
                                       s.get("end") or st, nominal_ua / 1000.0))
            if s["n"] >= N_MIN:
                return s
            last = st
            self.sleep(0.2)
        raise cli.CliError("the board did not hold %.1f mA steadily within %.0f s (state %s)"
                           % (nominal_ua / 1000.0, self.point_timeout, last))

    def stop(self):
        """End the hold and wait until it has ramped down (the output is off)."""
        if not self.holding:
            return
        try:
            self.dev.request("stop")
            deadline = time.monotonic() + self.point_timeout
            while self.dev.request("status")["state"] not in ("DONE", "IDLE", "FAULT"):
                if time.monotonic() > deadline:
                    raise cli.CliError("the hold did not end within %.0f s"
                                       % self.point_timeout)
                self.sleep(0.1)
        finally:
            self.holding = False

    def measure(self, nominal_ua, k=0, prior=()):
        """One point: the board's means and the meter's reading at the same time, checked
        against the independent truths (check_point). A typed reading that fails is asked
        again (RETYPES times; the same value twice is taken as meant); any other meter's
        failure, or a confirmed one, is a refusal that names the cause."""
        self.hold(nominal_ua)
        self.sample(nominal_ua)
        typed = getattr(self.meter, "typed", False)
        tries = []
        while True:
            ua, mv = self.meter.read(nominal_ua)
            s = self.sample(nominal_ua)    # the board's means now cover the meter's reading
            measured_mv = mv is not None
            if mv is None:
                mv = ua * self.load_ohm / 1000.0
            n = s["n"]
            p = calfit.Point(nominal_ua, s["i_sum"] / n, s["v_sum"] / n, s["ref_code"], ua, mv)
            cause = self.check_point(p, prior, measured_mv)
            if cause is None:
                return p
            where = "point %d (%.1f mA nominal): " % (k + 1, nominal_ua / 1000.0)
            again = bool(tries) and _same(tries[-1], (ua, mv))
            tries.append((ua, mv))
            if not typed or again or len(tries) > RETYPES:
                if again:
                    cause += " (the same reading typed twice: it stands)"
                raise Refused(where + cause)
            self.say("  " + where + cause + ". Read the meter again and retype it.")

    def check_point(self, p, prior, measured_mv):
        """None, or why point `p` cannot be right. The truths: the board's own current
        sense (uncalibrated, within the fit's gain range), the line through the earlier
        points, and the load: the board's voltage sense (uncalibrated) against I x
        --load-ohm, or the meter's own voltage."""
        i_fs, v_fs, _ = self.fs
        ua = p.meter_ua
        if ua < 0:
            return ("the meter reads %.3f mA, negative: its leads are swapped (COM and mA "
                    "inputs)" % (ua / 1000.0))
        board_ua = p.i_code * i_fs / 65536.0
        if abs(ua - board_ua) > RAW_GAIN_TOL * board_ua + RAW_OFFSET_UA:
            return "the meter reads %.3f mA, the board's current sense about %.2f mA: %s" % (
                ua / 1000.0, board_ua / 1000.0, _scale_cause(ua, board_ua))
        if ua < 1000.0:
            return None            # too little current to judge the load by
        board_mv = p.v_code * v_fs / 65536.0
        if measured_mv:
            if p.meter_mv < 0:
                return ("the meter reads %.3f V, negative: its voltage leads are swapped"
                        % (p.meter_mv / 1000.0))
            r_seen = p.meter_mv / ua * 1000.0
            if abs(r_seen - self.load_ohm) > self.load_ohm * LOAD_TOL_PCT / 100.0:
                return ("the meter's %.3f V at %.3f mA make the load %s ohm, not the %.0f "
                        "ohm given with --load-ohm (LOAD_OHM): a wrong resistor, or a "
                        "mistyped reading" % (p.meter_mv / 1000.0, ua / 1000.0, _ohm(r_seen),
                                              self.load_ohm))
            if abs(board_mv - p.meter_mv) > RAW_GAIN_TOL * p.meter_mv + 200.0:
                return ("the board's voltage sense reads about %.2f V where the meter reads "
                        "%.3f V: the electrode or sense wiring (swapped leads?) or the "
                        "divider" % (board_mv / 1000.0, p.meter_mv / 1000.0))
            return None
        # no voltage reading: the board's own (uncalibrated) voltage sense must agree
        # with I x R of the resistor given, or the voltage calibration would be fitted
        # to a wrong truth (issue 16: 1.2 kOhm given as 1 kOhm wrote v_gain 17 % off)
        r_seen = board_mv / ua * 1000.0
        if abs(r_seen - self.load_ohm) > self.load_ohm * LOAD_TOL_PCT / 100.0:
            if prior:
                hint = ("the earlier points read the load right: a mistyped reading, or "
                        "the load is changing")
            elif board_mv < 0.1 * p.meter_mv:
                hint = ("the board sees almost no voltage: are the electrode leads swapped "
                        "or the voltage sense disconnected?")
            else:
                hint = ("a wrong load resistor, or a voltage divider more than %g %% off; "
                        "measure the resistor, or give the voltage across it with "
                        "--ask-volts (VOLTS=1)" % LOAD_TOL_PCT)
            return ("the board's voltage sense reads %.2f V at %.3f mA: the load looks like "
                    "%s ohm, not the %.0f ohm given with --load-ohm (LOAD_OHM): %s"
                    % (board_mv / 1000.0, ua / 1000.0, _ohm(r_seen), self.load_ohm, hint))
        return None

    # ---- the steps ----------------------------------------------------------------------
    def run_points(self, points_ma):
        pts = []
        for k, ma in enumerate(points_ma):
            p = self.measure(ma * 1000, k, pts)
            pts.append(p)
            self.say("  [%d/%d] %5.1f mA nominal: meter %8.4f mA %7.3f V | board i_code %8.1f "
                     "v_code %8.1f ref %5d" % (k + 1, len(points_ma), ma, p.meter_ua / 1000.0,
                                               p.meter_mv / 1000.0, p.i_code, p.v_code,
                                               p.ref_code))
        self.stop()
        return pts

    def remeasure(self, pts, k):
        """Measure point k again (a typed reading the fit named as the outlier)."""
        others = [q for i, q in enumerate(pts) if i != k]
        pts[k] = self.measure(pts[k].nominal_ua, k, others)
        self.stop()
        return pts

    def verify(self, cal, points_ma):
        """Hold each point with the new calibration; the board's calibrated reading must
        match the meter, and the source its nominal current."""
        out = []
        i_fs = self.fs[0]
        for ma in points_ma:
            nominal = ma * 1000
            self.hold(nominal)
            self.sample(nominal)
            ua, _ = self.meter.read(nominal)
            s = self.sample(nominal)
            code = s["i_sum"] / s["n"]
            board = (code - cal["i_offset"]) * i_fs / 65536.0 * cal["i_gain"] / 16384.0
            read_err = 100.0 * (board - ua) / ua
            src_err = 100.0 * (ua - nominal) / nominal
            ok = abs(read_err) <= READ_TOL_PCT and abs(src_err) <= SOURCE_TOL_PCT
            out.append({"nominal_ua": nominal, "meter_ua": ua, "board_ua": board,
                        "read_err_pct": read_err, "source_err_pct": src_err, "ok": ok})
            self.say("  verify %5.1f mA: meter %.4f mA, board %.4f mA (%+.3f %%), source "
                     "%+.3f %%  %s" % (ma, ua / 1000.0, board / 1000.0, read_err, src_err,
                                       "ok" if ok else "FAIL"))
        self.stop()
        return out


def record_text(text, limit):
    """`text` in the calibration record's character set (docs/protocol.md), cut to `limit`."""
    ok = "._-:/+# "
    out = "".join(c if c.isalnum() and c.isascii() or c in ok else "-" for c in text)
    return out[:limit].strip() or "-"


def write_calibration(dev, cal, tech, meter_id, today):
    """cal_write, then read back: the stored record and the one in use must be `cal`."""
    rec = dict(cal, date=today, tech=record_text(tech, 16), meter=record_text(meter_id, 32))
    dev.request("cal_write", **rec)
    back = dev.request("cal_read")
    stored = back.get("cal") or {}
    for k in cal:
        if stored.get(k) != cal[k] or back["in_use"].get(k) != cal[k]:
            raise cli.CliError("read-back mismatch on %s: wrote %d, stored %r, in use %r" % (
                k, cal[k], stored.get(k), back["in_use"].get(k)))
    return back


def enter_service(ns, dev, code, say):
    """service_enter; a board that wants its service button held at power-up gets it
    held (virtual board: through its control file, then a hard reset) or the technician
    is told how."""
    try:
        dev.request("service_enter", code=code)
        return
    except DeviceError as e:
        if e.code != "E_DENIED" or "service button" not in e.msg:
            raise
    vb = _emulated(ns)
    if vb is None:
        raise cli.CliError("the board asks for its service button: hold UP and DOWN while "
                           "powering it on, release them, then run the calibration again")
    say("%s: holding UP+DOWN through a power cycle (service button)" % vb.KIND)
    vb.set_load(service_button=True)
    try:
        vb.hard_reset()
        cli.identify(dev, 30.0, "the " + vb.KIND)
        dev.request("service_enter", code=code)
    finally:
        vb.set_load(service_button=False)


def _emulated(ns, name=None):
    """The emulated board behind --port (virtual board or emulated Pico), the virtual
    board `name` or --vboard without a port; None for a real board."""
    if ns.port:
        from emulators import find_by_port
        return find_by_port(ns.port)
    from emulators.vboard import VirtualBoard
    return VirtualBoard(name or ns.vboard)


def _code(ns):
    if ns.code is not None:
        return ns.code
    env = os.environ.get("IONTO_SERVICE_CODE")
    if env:
        return env
    if sys.stdin.isatty():
        import getpass
        return getpass.getpass("technician code: ")
    raise cli.CliError("the technician code is needed: --code, $IONTO_SERVICE_CODE, or run "
                       "it in a terminal to be asked")


def bring_load(ns, state, say):
    """An emulated board gets the calibration load it needs: a pure resistor of
    --load-ohm (no skin, no polarization), unless --board-load. What its control file
    held before is kept in `state` for finish() to put back. Returns the board or None."""
    vb = _emulated(ns)
    if vb is None or ns.board_load:
        return vb
    before = vb.load()
    want = {"contact": True, "short": False, "lift_area": 1.0, "nonlinear": False,
            "offset_v": 0.0, "skin_ohm": 1.0, "water_ohm": 0.0,
            "body_ohm": max(ns.load_ohm - 1.0, 0.0), "skin_drift": 0.0}
    state["load"] = (vb, before)
    vb.set_load(**want)
    say("%s %s: calibration load in place (a %.0f ohm resistor; it is removed afterwards)"
        % (vb.KIND, vb.name, ns.load_ohm))
    return vb


def job(ns, dev, ident, meter=None, now=None, say=print, state=None):
    when = now or datetime.datetime.now()
    state = {} if state is None else state
    say("Calibrating %s" % cli.board_text(ident))
    check_load_range(ns, ident)
    vb = bring_load(ns, state, say)
    if "load" in state:
        # a fresh plant: a load used before may have left its polarization behind
        vb.hard_reset()
        cli.identify(dev, 30.0, "the " + vb.KIND)
    if meter is None:
        sim_path = None
        if ns.meter == "sim" or ns.meter.startswith("sim:"):
            vb = _emulated(ns, ns.meter[4:])
            if vb is None:
                raise cli.CliError("--meter sim reads an emulated board's plant: %s is not "
                                   "one (use --meter manual or visa:RESOURCE)" % ns.port)
            sim_path = vb.meter_path()
            if "load" not in state:
                state["load"] = (vb, vb.load())
            vb.set_load(meter=True)
        try:
            meter = open_meter(ns.meter, sim_path, volts=ns.ask_volts)
        except MeterError as e:
            raise cli.CliError(str(e))
    enter_service(ns, dev, _code(ns), say)
    st = dev.request("status")
    if st["state"] not in ("IDLE", "DONE") or st.get("fault", "ok") != "ok":
        raise cli.CliError("the board is %s (fault %s): finish or reset it first" % (
            st["state"], st.get("fault")))
    old = dev.request("cal_read")
    old_cal = old.get("cal")
    say("Old calibration: %s (%s)" % (old["status"], ", ".join(
        "%s %d" % (k, v) for k, v in sorted(old["in_use"].items()))))
    if ns.meter == "manual" and not ns.yes:
        input("Connect the %.0f ohm load resistor with the meter in series (mA range), "
              "then press Enter (Ctrl-C aborts) " % ns.load_ohm)
    cal_run = Calibration(dev, meter, ns.load_ohm, say=say)
    unverified = False          # written but not yet verified: an interruption restores
    try:
        say("Measuring %d points (each holds about 2 s once steady):" % len(ns.points))
        state["held"] = True    # from the first hold on, the watchdog is armed
        points = cal_run.run_points(ns.points)
        chans = fit_points(cal_run, points, say)
        cal = calfit.calibration(chans)
        say("Fit: " + ", ".join("%s %d" % (k, cal[k]) for k in sorted(cal)))
        write_calibration(dev, cal, ns.tech, ns.meter_id or meter.describe(),
                          when.strftime("%Y-%m-%d"))
        unverified = True
        say("Written and read back. Verifying:")
        verify = cal_run.verify(cal, ns.verify)
        unverified = False
        passed = all(v["ok"] for v in verify)
        if not passed:
            _restore(dev, old_cal, say)
        os.makedirs(ns.out, exist_ok=True)
        base = os.path.join(ns.out, calreport.base_name(ident.get("uid"), when))
        info = {"date": when.strftime("%Y-%m-%d %H:%M"), "technician": ns.tech,
                "meter": meter.describe(), "load": "%.1f ohm" % ns.load_ohm,
                "result": "calibrated and verified" if passed else
                "VERIFICATION FAILED: old calibration restored"}
        with open(base + ".txt", "w") as f:
            f.write(calreport.text(ident, info, points, chans, cal, old_cal or old["in_use"],
                                   verify))
        calreport.plot(base + ".png", ident, points, chans, when)
        say("Report: %s.txt and %s.png" % (base, base))
        if not passed:
            raise cli.CliError("verification failed: the old calibration is back in place")
        return cli.EXIT_OK
    except BaseException:
        _safe(cal_run.stop)
        if unverified:
            _restore(dev, old_cal, say)
        raise
    finally:
        _safe(lambda: dev.request("service_exit"))
        if hasattr(meter, "close"):
            _safe(meter.close)


def board_compliance_mv(board):
    """COMPLIANCE_MV of boards/BOARD.py (the rail the source can drive), or None."""
    import re
    from tools import paths
    try:
        with open(os.path.join(paths.ROOT, "boards", "%s.py" % board)) as f:
            text = f.read()
    except (OSError, TypeError):
        return None
    m = re.search(r"^COMPLIANCE_MV\s*=\s*(?:const\()?(\d+)", text, re.M)
    return int(m.group(1)) if m else None


def check_load_range(ns, ident):
    """The largest point through --load-ohm must stay below the board's rail (with 10 %
    to spare), or the hold would be compliance limited and read wrong."""
    rail = board_compliance_mv(ident.get("board"))
    if rail is None:
        return
    top = max(ns.points)
    need = top * ns.load_ohm
    if need > 0.9 * rail:
        raise Refused("%.0f mA through %.0f ohm needs %.1f V, beyond what the %s board's "
                      "%.0f V rail drives with margin: use a resistor of at most %.0f ohm, or "
                      "lower --points" % (top, ns.load_ohm, need / 1000.0, ident.get("board"),
                                          rail / 1000.0, 0.9 * rail / top))


def fit_points(cal_run, points, say):
    """The fit; a typed reading the fit names as the one outlier is measured and typed
    again (RETYPES times); any other refusal names its cause."""
    typed = getattr(cal_run.meter, "typed", False)
    for attempt in range(RETYPES + 1):
        try:
            return calfit.fit(points, *cal_run.fs)
        except calfit.FitError as e:
            if not typed or e.point is None or attempt == RETYPES:
                raise Refused("the fit: %s" % e)
            say("  %s. Holding that point again: read the meter and retype it." % e)
            points = cal_run.remeasure(points, e.point)


def finish(ns, state, status, reboot=None, say=print):
    """After the port is closed: put an emulated board's load back, and reset a board
    whose watchdog the calibration hold armed (the firmware arms it at the first current
    of a session and cannot stop it; mpremote and `make check` interrupt the loop that
    feeds it, so the board would reset in the middle of them). Returns the exit status."""
    if "load" in state:
        vb, before = state["load"]
        now = vb.load()
        _safe(lambda: vb.set_load(**dict({k: None for k in now if k not in before}, **before)))
        say("%s %s: calibration load removed, its load is as before" % (vb.KIND, vb.name))
    if not state.get("held") or ns.no_reset:
        if state.get("held"):
            say("note: the calibration hold armed the board's watchdog (--no-reset): "
                "power-cycle the board before `make check` or `make flash`, or the watchdog "
                "resets it in the middle of them")
        return status
    say("The calibration hold armed the board's watchdog; resetting the board so that "
        "`make check` and mpremote can use it ...")
    try:
        text = (reboot or _reboot)(ns)
    except Exception as e:      # the calibration's own result stands; say what to do
        text = None
        say("warning: the reset failed (%s): power-cycle the board before `make check`" % e)
    if text:
        say("  reset: %s; the board runs its firmware, watchdog off until the next session"
            % text)
    return status


def _reboot(ns):
    """Hard reset: an emulated board through its emulator, a real one with `mpremote
    reset` (the firmware lets Ctrl-C in while no session runs); then wait for the
    firmware to answer. Returns what to say."""
    from tools.flash import BOOT_TIMEOUT, _wait_firmware
    vb = _emulated(ns)
    port = ns.port
    if vb is not None:
        scale = getattr(vb, "TIMEOUT_SCALE", 1.0)
        st = vb.hard_reset()
        port = port or st["port"]
        return _wait_firmware(port, BOOT_TIMEOUT * scale)
    from tools.remote import mpremote
    r = mpremote(port, ["reset"], timeout=15.0)
    if not r.ok:
        raise RuntimeError(r.reason())
    return _wait_firmware(port, BOOT_TIMEOUT)


def _restore(dev, old_cal, say):
    if old_cal:
        _safe(lambda: dev.request("cal_write", **old_cal))
        say("The old calibration was written back.")
    else:
        say("There was no stored calibration before; the new one stays (unverified).")


def _safe(fn):
    try:
        fn()
    except Exception:
        pass


def _points(text):
    try:
        pts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("points: comma-separated mA values")
    if len(pts) < 1 or any(not 1.0 <= p <= 25.0 for p in pts):
        raise argparse.ArgumentTypeError("points must be within 1..25 mA")
    return pts


def main(argv=None, opener=None, meter=None, reboot=None):
    """`opener`, `meter`, `reboot`: for tests (an in-process device, a meter object, the
    reset after the hold)."""
    ap = cli.parser("python -m tools.calibrate", __doc__, EXAMPLES)
    cli.add_port_arguments(ap)
    ap.add_argument("--meter", default="manual",
                    help="manual (type readings), sim[:BOARD] (virtual board's meter), "
                    "visa:RESOURCE (SCPI meter through pyvisa); default manual")
    ap.add_argument("--load-ohm", type=float, default=1000.0,
                    help="the known load resistor (default 1000 ohm)")
    ap.add_argument("--ask-volts", action="store_true",
                    help="manual meter: also ask for the voltage across the load resistor "
                    "(the voltage channel's truth; without it the board's own voltage sense "
                    "must agree with I x --load-ohm within %g %%%%)" % LOAD_TOL_PCT)
    ap.add_argument("--points", type=_points, default=POINTS_MA,
                    help="calibration points in mA (default 2,5,10,15,20,25)")
    ap.add_argument("--verify", type=_points, default=VERIFY_MA,
                    help="verification points in mA (default 5,20)")
    ap.add_argument("--tech", default="tech", help="technician id (1-16 chars)")
    ap.add_argument("--meter-id", default=None, help="reference meter id (default: its *IDN?)")
    ap.add_argument("--code", default=None,
                    help="technician code (else $IONTO_SERVICE_CODE, else asked; make: CODE=)")
    ap.add_argument("--out", default="out/calibration", help="report folder")
    ap.add_argument("--yes", action="store_true", help="do not wait for Enter (automation)")
    ap.add_argument("--board-load", action="store_true",
                    help="emulated boards: calibrate on the load already set (default: the "
                    "tool sets a --load-ohm resistor and removes it afterwards)")
    ap.add_argument("--no-reset", action="store_true",
                    help="do not reset the board afterwards (its watchdog stays armed)")
    ns = ap.parse_args(argv)
    if len(ns.points) < 3:
        ap.error("at least three --points are needed")
    if not 100.0 <= ns.load_ohm <= 10000.0:
        ap.error("--load-ohm %g is not a calibration resistor (100..10000 ohm)" % ns.load_ohm)
    state = {}
    status = cli.run_with_device(
        ns, lambda ns, dev, ident: job(ns, dev, ident, meter=meter, state=state),
        opener=opener)
    return cli.guarded(finish, ns, state, status, reboot)


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
