"""Reference meters for calibration: a technician typing readings, a SCPI bench
multimeter through pyvisa, or the virtual board's simulated bench meter.

Every meter has `describe()` (for the calibration record and report) and
`read(nominal_ua) -> (ua, mv)`: the true current in µA and, where the meter measures
it, the electrode voltage in mV (None otherwise: the caller uses I x R of the known
load resistor). `spec` strings for `open_meter()`:
    manual              prompt on the terminal (the default)
    sim[:NAME]          the virtual board NAME's meter file (boards/sim.py METER_FILE)
    visa:RESOURCE       e.g. visa:USB0::0x2A8D::0x1301::MY1234::INSTR,
                        visa:ASRL/dev/ttyUSB0::INSTR (pyvisa, pure-Python backend)
"""

import json
import time


class MeterError(Exception):
    pass


class ManualMeter:
    """The technician reads the bench meter and types the value (mA), and with
    `volts=True` also the voltage across the load resistor (V). A sign is kept (a
    negative reading means swapped leads, which the calibration names); what is not a
    number or is beyond any plausible reading is asked again at once. `typed`: the
    calibration may ask for a flagged reading again (tools/calibrate.py)."""

    typed = True

    def __init__(self, ask=input, say=print, volts=False):
        self._ask = ask
        self._say = say
        self.volts = volts

    def describe(self):
        return "manual"

    def _number(self, prompt, limit, unit, hint):
        while True:
            text = self._ask(prompt).strip()
            if text.lower() in ("q", "quit"):
                raise KeyboardInterrupt
            try:
                v = float(text.replace(",", "."))
            except ValueError:
                self._say("  not a number: %r" % text)
                continue
            if not -limit <= v <= limit or v != v:
                self._say("  %s %s is not plausible (-%g..%g %s): %s"
                          % (text, unit, limit, limit, unit, hint))
                continue
            return v

    def read(self, nominal_ua):
        ma = self._number("  meter reading in mA (nominal %.1f mA), or q to abort: "
                          % (nominal_ua / 1000.0), 40.0, "mA", "meter on the right range?")
        mv = None
        if self.volts:
            mv = 1000.0 * self._number("  voltage across the load resistor in V, or q to "
                                       "abort: ", 100.0, "V", "meter on the V range?")
        return ma * 1000.0, mv


class SimMeter:
    """The virtual board's bench meter: the plant's true mean current and voltage over
    one second of virtual time, from the board's meter file. A reading is taken from a
    second that began after the request (the hold was already steady)."""

    def __init__(self, path, timeout=30.0, clock=time.monotonic, sleep=time.sleep):
        self.path = path
        self.timeout = timeout
        self._clock = clock
        self._sleep = sleep

    def describe(self):
        return "sim meter (virtual board)"

    def _load(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def read(self, nominal_ua):
        first = self._load()
        seq0 = first["seq"] if first else -1
        deadline = self._clock() + self.timeout
        while self._clock() < deadline:
            d = self._load()
            if d is not None and d["seq"] >= seq0 + 2:
                return float(d["ua"]), float(d["v"]) * 1000.0
            self._sleep(0.05)
        raise MeterError("no reading from the simulated meter %s within %.0f s (is the "
                         "virtual board running with \"meter\": true?)"
                         % (self.path, self.timeout))


class VisaMeter:
    """A SCPI digital multimeter in series with the load, through pyvisa."""

    def __init__(self, resource, backend="@py", timeout_ms=10000):
        try:
            import pyvisa
        except ImportError:
            raise MeterError("pyvisa is not installed (pip install -r requirements.txt)")
        try:
            self._rm = pyvisa.ResourceManager(backend)
            self._inst = self._rm.open_resource(resource, timeout=timeout_ms,
                                                read_termination="\n", write_termination="\n")
            self.idn = self._inst.query("*IDN?").strip()
        except Exception as e:      # pyvisa raises many kinds: all mean "no meter there"
            raise MeterError("meter %s: %s" % (resource, e))
        self.resource = resource

    def describe(self):
        return self.idn[:32] or self.resource[:32]

    def read(self, nominal_ua):
        try:
            amps = float(self._inst.query("MEAS:CURR:DC?").strip())
        except Exception as e:
            raise MeterError("meter read failed: %s" % e)
        return amps * 1e6, None

    def close(self):
        try:
            self._inst.close()
        except Exception:
            pass


def open_meter(spec, sim_path=None, volts=False):
    """A meter from its spec string (see the module docstring); `volts`: the manual meter
    also asks for the voltage across the load."""
    if spec == "manual":
        return ManualMeter(volts=volts)
    if spec == "sim" or spec.startswith("sim:"):
        if sim_path is None:
            raise MeterError("--meter sim needs the virtual board's meter file")
        return SimMeter(sim_path)
    if spec.startswith("visa:"):
        return VisaMeter(spec[5:])
    raise MeterError("unknown meter %r: use manual, sim or visa:RESOURCE" % spec)
