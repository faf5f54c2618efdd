"""A simulated SCPI bench multimeter for the virtual board, on a pseudo-terminal.

    python -m tools.sim_meter [--vboard NAME]
    -> prints its VISA resource, e.g. ASRL/dev/pts/7::INSTR, and serves until Ctrl-C

It answers like a DMM in series with the load, from the virtual board's meter file
(boards/sim.py METER_FILE: the plant's TRUE mean current and voltage over one second of
virtual time), so `tools/calibrate.py --meter visa:ASRL/dev/pts/7::INSTR` goes through
pyvisa and a serial port exactly as with a bench meter on a USB-serial cable.
Commands: *IDN?, *RST, MEAS:CURR:DC? (amperes), MEAS:VOLT:DC? (volts), SYST:ERR?.
A measurement waits for a second of virtual time that began after the request.
"""

import argparse
import os
import pty
import select
import sys
import threading
import tty

from tools.meters import MeterError, SimMeter

IDN = "Iontophoresis-Project,SIM-DMM,0,1.0"


class ScpiMeter:
    """SCPI answers from a SimMeter, served on the slave side of a new pty."""

    def __init__(self, meter_path, timeout=30.0):
        self.meter = SimMeter(meter_path, timeout=timeout)
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave            # kept open so the pty survives client closes
        self.resource = "ASRL%s::INSTR" % self.port
        self._stop = False
        self.errors = []
        self._thread = None

    def answer(self, line):
        cmd = line.strip().upper()
        if not cmd:
            return None
        if cmd == "*IDN?":
            return IDN
        if cmd == "*RST" or cmd.startswith("CONF"):
            return None
        if cmd == "SYST:ERR?":
            return self.errors.pop(0) if self.errors else '0,"No error"'
        if cmd in ("MEAS:CURR:DC?", "MEAS:CURR?", "MEAS:VOLT:DC?", "MEAS:VOLT?"):
            try:
                ua, mv = self.meter.read(0)
            except MeterError:
                self.errors.append('-230,"Data stale"')
                return "9.9E37"                   # SCPI "overload / no value"
            return "%.9E" % (ua * 1e-6 if "CURR" in cmd else mv * 1e-3)
        self.errors.append('-113,"Undefined header"')
        return None

    def serve(self):
        buf = b""
        while not self._stop:
            r, _, _ = select.select([self.master], [], [], 0.1)
            if not r:
                continue
            try:
                data = os.read(self.master, 256)
            except OSError:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                reply = self.answer(line.decode("ascii", "replace"))
                if reply is not None:
                    os.write(self.master, reply.encode() + b"\n")

    def start(self):
        self._thread = threading.Thread(target=self.serve, daemon=True)
        self._thread.start()
        return self

    def close(self):
        self._stop = True
        if self._thread is not None:
            self._thread.join(1.0)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.sim_meter", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vboard", default="sim", help="the virtual board (default sim)")
    ns = ap.parse_args(argv)
    from emulators.vboard import VirtualBoard
    vb = VirtualBoard(ns.vboard)
    if not vb.state():
        print("error: virtual board %s is not running (make sim)" % ns.vboard, file=sys.stderr)
        return 2
    vb.set_load(meter=True)
    m = ScpiMeter(vb.meter_path()).start()
    print(m.resource, flush=True)
    try:
        while True:
            select.select([], [], [], 3600)
    except KeyboardInterrupt:
        return 0
    finally:
        m.close()


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
