"""What the device stores: calibration, prescription and settings records, and the log.

Each record is validated field by field (schema) both when the host writes it and when
it is loaded from flash: a stored record that fails validation is treated as corrupt.

    calibration   per-channel gain/offset (calibration.Calibration ranges), date,
                  technician id, reference meter id
    prescription  the treatment limits and plan; start may only tighten it
    settings      user choices (induction marked done) and the log's session counter

`Store(fs, dirname)` bundles the three records and the treatment log; `load()` reads
them all (before the watchdog starts: the log scan reads every slot).
"""

import limits
import schema
import storage
from calibration import Calibration
from schema import BOOL, DATE, INT, TEXT, Reject
from treatment_log import TreatmentLog

CAL_SPEC = (
    ("i_gain", INT, 12288, 20480, True),
    ("i_offset", INT, -4096, 4096, True),
    ("v_gain", INT, 12288, 20480, True),
    ("v_offset", INT, -4096, 4096, True),
    ("r_gain", INT, 12288, 20480, True),
    ("r_offset", INT, -4096, 4096, True),
    ("date", DATE, 0, 0, True),
    ("tech", TEXT, 1, 16, True),
    ("meter", TEXT, 1, 32, True),
)
CAL_INTS = ("i_gain", "i_offset", "v_gain", "v_offset", "r_gain", "r_offset")

RX_SPEC = (
    ("max_target_ua", INT, 1000, limits.CEILING_UA, True),
    ("target_ua", INT, 1000, limits.CEILING_UA, True),
    ("max_duration_s", INT, limits.MIN_DURATION_S, limits.MAX_DURATION_S, True),
    ("duration_s", INT, limits.MIN_DURATION_S, limits.MAX_DURATION_S, True),
    ("ramp_up_s", INT, limits.MIN_RAMP_MS // 1000, 120, True),
    ("ramp_down_s", INT, 5, 60, True),
    ("reverse_allowed", BOOL, 0, 0, True),
    ("induction_sessions", INT, 1, 100, True),
    ("induction_per_week", INT, 1, 7, True),
    ("maintenance_per_week", INT, 1, 7, True),
)
# the factory prescription (ARCHITECTURE §4): used only while no prescription file exists
RX_FACTORY = {
    "max_target_ua": limits.CEILING_UA, "target_ua": 15000,
    "max_duration_s": limits.MAX_DURATION_S, "duration_s": 600,
    "ramp_up_s": 30, "ramp_down_s": 15, "reverse_allowed": True,
    "induction_sessions": 12, "induction_per_week": 3, "maintenance_per_week": 1,
}

SETTINGS_SPEC = (
    ("induction_done", BOOL, 0, 0, True),
    ("log_seq", INT, 0, 0x3FFFFFFF, True),
)
SETTINGS_FACTORY = {"induction_done": False, "log_seq": 0}


def validate_cal(obj):
    d = schema.check(obj, CAL_SPEC)
    calibration_of(d).validate()
    return d


def calibration_of(d):
    return Calibration(d["i_gain"], d["i_offset"], d["v_gain"], d["v_offset"],
                       d["r_gain"], d["r_offset"])


def validate_rx(obj):
    d = schema.check(obj, RX_SPEC)
    if d["target_ua"] > d["max_target_ua"]:
        raise Reject("E_RANGE", "target_ua %d above max_target_ua %d" % (
            d["target_ua"], d["max_target_ua"]))
    if d["duration_s"] > d["max_duration_s"]:
        raise Reject("E_RANGE", "duration_s %d above max_duration_s %d" % (
            d["duration_s"], d["max_duration_s"]))
    return d


def validate_settings(obj):
    return schema.check(obj, SETTINGS_SPEC)


class Store:
    """The device's records and treatment log on one filesystem, under `dirname`."""

    def __init__(self, fs, dirname="data"):
        self.fs = fs
        base = dirname + "/" if dirname else ""
        self.dirname = dirname
        self.cal = storage.Record(fs, base + "cal.rec", storage.KIND_CAL, validate_cal)
        self.rx = storage.Record(fs, base + "rx.rec", storage.KIND_RX, validate_rx)
        self.settings = storage.Record(fs, base + "settings.rec", storage.KIND_SETTINGS,
                                       validate_settings)
        self.log = TreatmentLog(fs, base + "log")

    def load(self):
        if self.dirname:
            self.fs.mkdir(self.dirname)
        self.cal.load()
        self.rx.load()
        self.settings.load()
        self.log.load(self.settings_data()["log_seq"])
        return self

    def rx_data(self):
        """The prescription in force: the stored one, or the factory one when none exists.
        None when the stored one is corrupt: nothing may be treated until it is rewritten."""
        if self.rx.data is not None:
            return self.rx.data
        return RX_FACTORY if self.rx.status == storage.MISSING else None

    def settings_data(self):
        """Settings in force (factory values while none are stored or they are damaged)."""
        return self.settings.data if self.settings.data is not None else SETTINGS_FACTORY
