"""What the device stores: calibration, prescription and settings records, and the log.

Each record is validated field by field (schema) both when the host writes it and when
it is loaded from flash: a stored record that fails validation is treated as corrupt.

    calibration   per-channel gain/offset (calibration.Calibration ranges), date,
                  technician id, reference meter id
    prescription  the treatment limits and plan; start may only tighten it
    settings      user choices (induction marked done) and the log's session counter
    auth          the service code's salted hash and failure counter (auth.py)

The prescription (format 2) names the default session, which catalogue profiles
(profiles.CATALOG) the patient may choose and the highest current for each
(`<name>_max_ua`, 0 = not allowed), the session length range, the shortest ramp, whether
reversal is allowed, the dose for dose profiles, and the treatment plan. A format-1 record
(firmware 0.4: one max_target_ua) still loads, converted by rx_from_v1; `Store.rx_v1` says so.

`Store(fs, dirname)` bundles the four records and the treatment log; `load()` reads
them all (before the watchdog starts: the log scan reads every slot).
"""

import auth
import limits
import profiles
import schema
import storage
from calibration import Calibration
from schema import BOOL, CHOICE, DATE, INT, TEXT, Reject

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

def mode_limit_ua(name):
    """The highest target a prescription may allow for catalogue profile `name`: dose mode
    limits.DOSE_MAX_UA, pulsed the average whose peak is the ceiling, else the ceiling."""
    c = profiles.CATALOG[name]
    m = c.get("mode", profiles.MODE_DC)
    if m == profiles.MODE_DOSE:
        return limits.DOSE_MAX_UA
    if m == profiles.MODE_PULSED:
        return limits.CEILING_UA * c["duty_pct"] // 100
    return limits.CEILING_UA


_CAP_FIELDS = {}
for _n in profiles.NAMES:
    _CAP_FIELDS[_n] = _n + "_max_ua"


def cap_field(name):
    """The prescription's cap field of profile `name` (made once: adjust reads it while a
    session runs, when nothing may be allocated)."""
    f = _CAP_FIELDS.get(name)
    return f if f is not None else name + "_max_ua"


# prescription (format 2): the default session, the allowed profiles with their caps, the plan
RX_SPEC = (
    ("profile", CHOICE, profiles.NAMES, 0, True),
    ("target_ua", INT, 1000, limits.CEILING_UA, True),
    ("min_duration_s", INT, limits.MIN_DURATION_S, limits.MAX_DURATION_S, True),
    ("max_duration_s", INT, limits.MIN_DURATION_S, limits.MAX_DURATION_S, True),
    ("duration_s", INT, limits.MIN_DURATION_S, limits.MAX_DURATION_S, True),
    ("ramp_up_s", INT, limits.MIN_RAMP_MS // 1000, 120, True),
    ("ramp_down_s", INT, 5, 60, True),
    ("reverse_allowed", BOOL, 0, 0, True),
    ("dose_uamin", INT, 1000, limits.DOSE_CAP_UAMIN, True),
) + tuple((cap_field(n), INT, 0, mode_limit_ua(n), True) for n in profiles.NAMES) + (
    ("induction_sessions", INT, 1, 100, True),
    ("induction_per_week", INT, 1, 7, True),
    ("maintenance_per_week", INT, 1, 7, True),
)
# rx_write: any subset, merged onto the prescription in force
RX_WRITE_SPEC = tuple((f[0], f[1], f[2], f[3], False) for f in RX_SPEC)
# the factory prescription (docs/requirements.md, safety numbers): used only while no prescription file exists;
# drug delivery is never allowed without a written prescription
RX_FACTORY = {
    "profile": "hands", "target_ua": 15000,
    "min_duration_s": limits.MIN_DURATION_S, "max_duration_s": limits.MAX_DURATION_S,
    "duration_s": 600, "ramp_up_s": 30, "ramp_down_s": 15, "reverse_allowed": True,
    "dose_uamin": 40000, "hands_max_ua": limits.CEILING_UA, "feet_max_ua": limits.CEILING_UA,
    "child_max_ua": 8000, "underarm_max_ua": mode_limit_ua("underarm"), "drug_max_ua": 0,
    "induction_sessions": 12, "induction_per_week": 3, "maintenance_per_week": 1,
}
# format 1 (firmware 0.4): still loaded, converted by validate_rx (see rx_from_v1)
RX_SPEC_V1 = (
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


def rx_from_v1(obj):
    """A format-1 prescription (one current cap for plain DC) as format 2: the DC profiles
    hands/feet/child capped at its max_target_ua, hands the default with its target and
    length, the pulsed and dose profiles not allowed (never prescribed by format 1)."""
    d = schema.check(obj, RX_SPEC_V1)
    top = d["max_target_ua"]
    out = {"profile": "hands", "target_ua": d["target_ua"],
           "min_duration_s": limits.MIN_DURATION_S, "max_duration_s": d["max_duration_s"],
           "duration_s": d["duration_s"], "ramp_up_s": d["ramp_up_s"],
           "ramp_down_s": d["ramp_down_s"], "reverse_allowed": d["reverse_allowed"],
           "dose_uamin": RX_FACTORY["dose_uamin"]}
    for n in profiles.NAMES:
        m = profiles.CATALOG[n].get("mode", profiles.MODE_DC)
        out[cap_field(n)] = (top if top < mode_limit_ua(n) else mode_limit_ua(n)) \
            if m == profiles.MODE_DC else 0
    for k in ("induction_sessions", "induction_per_week", "maintenance_per_week"):
        out[k] = d[k]
    return out


def rx_defaults(rx, name):
    """Profile fields `start` uses for catalogue profile `name` when the patient gives none:
    the default profile runs the prescription's target_ua/duration_s/ramps; any other its
    catalogue values, the target capped, the length clamped into the prescribed range,
    the ramp up not faster than prescribed. Dose profiles deliver the prescription's dose."""
    if name == rx["profile"]:
        d = {"target_ua": rx["target_ua"], "duration_s": rx["duration_s"],
             "ramp_up_s": rx["ramp_up_s"], "ramp_down_s": rx["ramp_down_s"]}
    else:
        c = profiles.CATALOG[name]
        cap = rx[cap_field(name)]
        dur = c["duration_s"]
        if dur < rx["min_duration_s"]:
            dur = rx["min_duration_s"]
        if dur > rx["max_duration_s"]:
            dur = rx["max_duration_s"]
        up = c["ramp_up_s"]
        d = {"target_ua": c["target_ua"] if c["target_ua"] < cap else cap, "duration_s": dur,
             "ramp_up_s": up if up > rx["ramp_up_s"] else rx["ramp_up_s"],
             "ramp_down_s": c["ramp_down_s"]}
    if profiles.CATALOG[name].get("mode", profiles.MODE_DC) == profiles.MODE_DOSE:
        d["dose_uamin"] = rx["dose_uamin"]
    return d


def validate_rx(obj):
    """A format-2 prescription (a format-1 one is converted first); Reject E_RANGE when it
    is inconsistent. Every allowed profile must be startable with its defaults."""
    if "max_target_ua" in obj:
        obj = rx_from_v1(obj)
    d = schema.check(obj, RX_SPEC)
    if d["min_duration_s"] > d["max_duration_s"]:
        raise Reject("E_RANGE", "min_duration_s %d above max_duration_s %d" % (
            d["min_duration_s"], d["max_duration_s"]))
    if d["duration_s"] < d["min_duration_s"] or d["duration_s"] > d["max_duration_s"]:
        raise Reject("E_RANGE", "duration_s %d outside min_duration_s..max_duration_s %d..%d"
                     % (d["duration_s"], d["min_duration_s"], d["max_duration_s"]))
    for n in profiles.NAMES:
        cap = d[cap_field(n)]
        if 0 < cap < 1000:
            raise Reject("E_RANGE", "%s %d: 0 (not allowed) or 1000..%d" % (
                cap_field(n), cap, mode_limit_ua(n)))
    name = d["profile"]
    cap = d[cap_field(name)]
    if cap == 0:
        raise Reject("E_RANGE", "default profile %s is not allowed (%s 0)" % (
            name, cap_field(name)))
    if d["target_ua"] > cap:
        raise Reject("E_RANGE", "target_ua %d above %s %d" % (d["target_ua"], cap_field(name), cap))
    for n in profiles.NAMES:
        if d[cap_field(n)]:
            try:
                profiles.from_catalog(n, **rx_defaults(d, n)).validate(d[cap_field(n)])
            except ValueError as e:
                raise Reject("E_RANGE", "profile %s would not start: %s" % (n, e))
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
        self.rx_v1 = False         # the prescription in use was stored in format 1
        self.rx = storage.Record(fs, base + "rx.rec", storage.KIND_RX, self._validate_rx)
        self.settings = storage.Record(fs, base + "settings.rec", storage.KIND_SETTINGS,
                                       validate_settings)
        self.auth = storage.Record(fs, base + "auth.rec", storage.KIND_AUTH, auth.validate)
        self.log = TreatmentLog(fs, base + "log")

    def _validate_rx(self, obj):
        d = validate_rx(obj)
        self.rx_v1 = "max_target_ua" in obj      # the last copy validated is the one used
        return d

    def load(self):
        if self.dirname:
            self.fs.mkdir(self.dirname)
        self.cal.load()
        self.rx.load()
        self.settings.load()
        self.auth.load()
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


def save(record, obj):
    """record.save(obj) for a protocol command: a storage failure is E_STORAGE, and the
    previous record stays (storage.Record writes atomically)."""
    try:
        record.save(obj)
    except OSError as e:
        raise Reject("E_STORAGE", "storage write failed (%s): the previous record stays" % e)
