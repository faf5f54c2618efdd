"""Run an ngspice netlist in batch mode and return its traces (CPython host only).

ngspice is the Debian package (`apt-get install ngspice`); it is driven through spicelib
(pinned in requirements.txt; docs/frontend.md compares it with PySpice and InSpice):
`NGspiceSimulator.run` starts `ngspice -b -r file.raw`, `RawRead` reads the binary raw
file. Nothing else here knows about the simulator.

`available()` says whether ngspice can be run; `run(netlist, workdir)` returns a dict
{trace name (lower case, e.g. "time", "v(x1.out)", "i(v_im)"): numpy array}.
"""

import os
import shutil

_EXE = "ngspice"


class SpiceError(RuntimeError):
    """ngspice failed or wrote no raw file; the message carries the end of its log."""


def available():
    """True when an ngspice executable is on PATH."""
    return shutil.which(_EXE) is not None


def run(netlist, workdir, name="bench", timeout_s=120):
    """Write `netlist` to `workdir/name.cir`, simulate it, return its traces.

    `timeout_s` bounds one run (s); a busy 2-core machine runs each testbench here in
    well under 10 s. Raises SpiceError when ngspice fails or reports no output.
    """
    from spicelib.raw.raw_read import RawRead
    from spicelib.simulators.ngspice_simulator import NGspiceSimulator

    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, name + ".cir")
    with open(path, "w") as f:
        f.write(netlist)
    raw = path[:-4] + ".raw"
    log = path[:-4] + ".log"
    for p in (raw, log):
        if os.path.exists(p):
            os.remove(p)
    rc = NGspiceSimulator.run(path, timeout=timeout_s, exe_log=True)
    if rc != 0 or not os.path.exists(raw) or os.path.getsize(raw) == 0:
        tail = ""
        for p in (log, path[:-4] + ".exe.log"):
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    tail += f.read()[-3000:]
        raise SpiceError("ngspice failed (rc=%s) on %s:\n%s" % (rc, path, tail))
    rr = RawRead(raw, dialect="ngspice", verbose=False)
    out = {}
    for tname in rr.get_trace_names():
        out[tname.lower()] = rr.get_wave(tname).real.copy()
    return out
