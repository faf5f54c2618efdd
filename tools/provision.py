"""Provision a board for a patient (technicians): clock, prescription, technician code.

    make provision [PORT=...] CODE=000000 [RX="target_ua=12000 duration_s=900"] [NEW_CODE=...]
    python -m tools.provision --port /dev/ttyACM0 --code 000000 --rx target_ua=12000 \
        --rx duration_s=900 --new-code 4711xy

In service mode (the technician code: --code, else $IONTO_SERVICE_CODE, else asked on
the terminal; a board with buttons wants UP and DOWN held at power-up, as for
calibration), in this order:
  1. sets the board's clock to the host's (`time_set`), so the treatment log is dated;
  2. --rx KEY=VALUE (repeatable): writes those prescription fields (`rx_write`, in the
     groups a 256-byte line allows, caps first: docs/protocol.md lists the fields and
     their ranges). An unknown key is refused before anything is sent, naming the
     nearest one. When the board refuses a group, the prescription read at the start is
     written back and the refusal is said;
  3. --new-code: stores a new technician code (`service_code`: 6..16 letters or digits,
     not the factory code 000000);
  4. prints the prescription in force (`rx_read`) and leaves service mode.
Exit status (tools/cli.py): 0 done, 1 refused or failed, 2 no device, 130 interrupted.
"""

import difflib
import os
import sys
import time

from tools import cli
from tools.client import DeviceError

# the prescription's fields in the order a valid prescription can be built group by group
# (caps with the default session first: docs/protocol.md rx_write)
RX_GROUPS = (("profile", "target_ua", "dose_uamin", "hands_max_ua", "feet_max_ua",
              "child_max_ua", "underarm_max_ua", "drug_max_ua"),
             ("min_duration_s", "max_duration_s", "duration_s", "ramp_up_s", "ramp_down_s"),
             ("reverse_allowed", "induction_sessions", "induction_per_week",
              "maintenance_per_week"))
RX_KEYS = tuple(k for g in RX_GROUPS for k in g)
EXAMPLES = """
  python -m tools.provision --code 000000 --rx target_ua=12000 --rx duration_s=900
  python -m tools.provision --port /dev/ttyACM0 --code 000000 --new-code 4711xy
  make provision CODE=000000 RX="profile=feet target_ua=18000"
"""


def parse_rx(items):
    """['key=value', ...] -> {key: int, bool or str}; CliError (nothing sent) if bad."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise cli.CliError("--rx %r: give KEY=VALUE" % item, cli.EXIT_NO_DEVICE)
        if key not in RX_KEYS:
            near = difflib.get_close_matches(key, RX_KEYS, 1, 0.7)
            raise cli.CliError("--rx %s: unknown prescription field%s (fields: %s)" % (
                key, " (did you mean %s?)" % near[0] if near else "", ", ".join(RX_KEYS)),
                cli.EXIT_NO_DEVICE)
        text = text.strip()
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        elif key == "profile":
            value = text
        else:
            try:
                value = int(text)
            except ValueError:
                raise cli.CliError("--rx %s=%s: a whole number is needed" % (key, text),
                                   cli.EXIT_NO_DEVICE)
        out[key] = value
    return out


def write_rx(dev, fields):
    """rx_write `fields` group by group; returns the prescription now stored."""
    rx = None
    for group in RX_GROUPS:
        part = {k: fields[k] for k in group if k in fields}
        if part:
            rx = dev.request("rx_write", **part)["rx"]
    return rx


def _code(ns):
    if ns.code is not None:
        return ns.code
    env = os.environ.get("IONTO_SERVICE_CODE")
    if env:
        return env
    if sys.stdin.isatty():
        import getpass
        return getpass.getpass("technician code: ")
    raise cli.CliError("the technician code is needed: --code (make: CODE=), "
                       "$IONTO_SERVICE_CODE, or run it in a terminal to be asked")


def job(ns, dev, ident, say=print, now=time.time):
    fields = parse_rx(ns.rx)
    say("Provisioning %s" % cli.board_text(ident))
    from tools.calibrate import enter_service     # holds an emulated board's button
    enter_service(ns, dev, _code(ns), say)
    try:
        dev.sync_time(int(now()))
        say("  clock set to %s UTC" % time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now())))
        old = dev.request("rx_read").get("rx")
        if fields:
            try:
                write_rx(dev, fields)
            except DeviceError as e:
                if old:
                    cli.guarded(write_rx, dev, old, err=open(os.devnull, "w"))
                raise cli.CliError("the board refused the prescription (%s): the one in "
                                   "force before is kept" % e)
            say("  prescription written: %s" % ", ".join(
                "%s=%s" % (k, fields[k]) for k in RX_KEYS if k in fields))
        if ns.new_code:
            dev.request("service_code", code=ns.new_code)
            say("  technician code changed (keep it: it is stored only as a salted hash)")
        rx = dev.request("rx_read").get("rx") or {}
        say("Prescription in force:")
        for k in RX_KEYS:
            if k in rx:
                say("  %-22s %s" % (k, rx[k]))
        return cli.EXIT_OK
    finally:
        try:
            dev.request("service_exit")
        except Exception:
            pass


def main(argv=None, opener=None, now=time.time):
    """`opener`, `now`: for tests (an in-process device, the host's clock)."""
    ap = cli.parser("python -m tools.provision", __doc__, EXAMPLES)
    cli.add_port_arguments(ap)
    ap.add_argument("--code", default=None,
                    help="technician code (else $IONTO_SERVICE_CODE, else asked; make: CODE=)")
    ap.add_argument("--rx", action="append", default=[], metavar="KEY=VALUE",
                    help="a prescription field to write (repeatable; docs/protocol.md rx_write)")
    ap.add_argument("--new-code", default=None, help="store this new technician code")
    ns = ap.parse_args(argv)
    return cli.run_with_device(ns, lambda ns, dev, ident: job(ns, dev, ident, now=now),
                               opener=opener)


if __name__ == "__main__":
    sys.exit(cli.entry(main))
