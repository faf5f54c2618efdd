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
Ctrl-C at any point stops the hold; until step 3 nothing on the board has changed, and
an interruption during the verification restores the old calibration.
Exit status: 0 calibrated and verified, 1 refused or failed (old calibration kept),
2 no device, 130 interrupted.
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
EXAMPLES = """
  python -m tools.calibrate --port /dev/ttyACM0 --load-ohm 1000 --tech AB --meter-id F87V-123
  python -m tools.calibrate --port /dev/ttyACM0 --meter visa:USB0::0x2A8D::0x1301::MY1::INSTR
  make calibrate                      # the running virtual board and its simulated meter
"""


class Aborted(cli.CliError):
    pass


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

    def measure(self, nominal_ua):
        """One point: the board's means and the meter's reading at the same time."""
        self.hold(nominal_ua)
        self.sample(nominal_ua)
        ua, mv = self.meter.read(nominal_ua)
        s = self.sample(nominal_ua)        # the board's means now cover the meter's reading
        if mv is None:
            mv = ua * self.load_ohm / 1000.0
        n = s["n"]
        return calfit.Point(nominal_ua, s["i_sum"] / n, s["v_sum"] / n, s["ref_code"], ua, mv)

    # ---- the steps ----------------------------------------------------------------------
    def run_points(self, points_ma):
        pts = []
        for k, ma in enumerate(points_ma):
            p = self.measure(ma * 1000)
            pts.append(p)
            self.say("  [%d/%d] %5.1f mA nominal: meter %8.4f mA %7.3f V | board i_code %8.1f "
                     "v_code %8.1f ref %5d" % (k + 1, len(points_ma), ma, p.meter_ua / 1000.0,
                                               p.meter_mv / 1000.0, p.i_code, p.v_code,
                                               p.ref_code))
            r_seen = p.meter_mv / p.meter_ua * 1000.0 if p.meter_ua > 0 else 0.0
            if abs(r_seen - self.load_ohm) > self.load_ohm * 0.05 and p.meter_ua > 1000:
                raise cli.CliError("the load reads %.0f ohm, not the %.0f ohm given with "
                                   "--load-ohm: wrong resistor?" % (r_seen, self.load_ohm))
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


def job(ns, dev, ident, meter=None, now=None, say=print):
    when = now or datetime.datetime.now()
    say("Calibrating %s" % cli.board_text(ident))
    if meter is None:
        sim_path = None
        if ns.meter == "sim" or ns.meter.startswith("sim:"):
            vb = _emulated(ns, ns.meter[4:])
            if vb is None:
                raise cli.CliError("--meter sim reads an emulated board's plant: %s is not "
                                   "one (use --meter manual or visa:RESOURCE)" % ns.port)
            sim_path = vb.meter_path()
            vb.set_load(meter=True)
        try:
            meter = open_meter(ns.meter, sim_path)
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
        points = cal_run.run_points(ns.points)
        try:
            chans = calfit.fit(points, *cal_run.fs)
        except calfit.FitError as e:
            raise cli.CliError("fit refused, nothing written: %s" % e)
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


def main(argv=None, opener=None, meter=None):
    """`opener`, `meter`: for tests (an in-process device, a meter object)."""
    ap = cli.parser("python -m tools.calibrate", __doc__, EXAMPLES)
    cli.add_port_arguments(ap)
    ap.add_argument("--meter", default="manual",
                    help="manual (type readings), sim[:BOARD] (virtual board's meter), "
                    "visa:RESOURCE (SCPI meter through pyvisa); default manual")
    ap.add_argument("--load-ohm", type=float, default=1000.0,
                    help="the known load resistor (default 1000 ohm)")
    ap.add_argument("--points", type=_points, default=POINTS_MA,
                    help="calibration points in mA (default 2,5,10,15,20,25)")
    ap.add_argument("--verify", type=_points, default=VERIFY_MA,
                    help="verification points in mA (default 5,20)")
    ap.add_argument("--tech", default="tech", help="technician id (1-16 chars)")
    ap.add_argument("--meter-id", default=None, help="reference meter id (default: its *IDN?)")
    ap.add_argument("--code", default=None, help="technician code (else asked)")
    ap.add_argument("--out", default="out/calibration", help="report folder")
    ap.add_argument("--yes", action="store_true", help="do not wait for Enter (automation)")
    ns = ap.parse_args(argv)
    if len(ns.points) < 3:
        ap.error("at least three --points are needed")
    return cli.run_with_device(ns, lambda ns, dev, ident: job(ns, dev, ident, meter=meter),
                               opener=opener)


if __name__ == "__main__":
    sys.exit(main())
