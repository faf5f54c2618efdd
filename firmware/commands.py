"""The protocol's commands: field specs, permission and state rules, and the handlers.

`Commands(app).handle(cmd, request)` returns the reply's fields or raises schema.Reject.
Checks run in a fixed order, and nothing changes before all of them passed:
    1. the command exists                       E_UNKNOWN_CMD
    2. service-only commands need service mode  E_DENIED
    3. fields: unknown, missing, type, range    E_UNKNOWN_FIELD, E_MISSING, E_TYPE, E_RANGE
    4. state (e.g. no storage writes while a session runs)          E_STATE
    5. command-specific: calibration/prescription validity (E_DENIED), prescription
       limits (E_RANGE, E_DENIED); storage failure (E_STORAGE: the old record stays)
Service mode is the constructor flag `app.service` (off on a board): the later
service-mode issue (technician code, salted hash, rate limit) sets it; nothing else can.
Every command and field is documented in docs/protocol.md.
"""

import sys

import limits
import records
import safety
import schedule
import schema
import session as sm
from profiles import Profile
from protocol import LINE_MAX
from schema import BOOL, INT, Reject

VERSION = "0.4.0"
PROTOCOL = 1

_IDLE = 1        # refused while a session is running (it touches flash or the output)
_SERVICE = 2     # service mode only

_NONE = ()
_START = (
    ("target_ua", INT, 1000, limits.CEILING_UA, False),
    ("duration_s", INT, limits.MIN_DURATION_S, limits.MAX_DURATION_S, False),
    ("ramp_up_s", INT, limits.MIN_RAMP_MS // 1000, 120, False),
    ("ramp_down_s", INT, 5, 60, False),
    ("reverse", BOOL, 0, 0, False),
)
TEL_HZ_MAX = 50
_TELEMETRY = (("on", BOOL, 0, 0, True), ("hz", INT, 1, TEL_HZ_MAX, False))
_TIME = (("epoch", INT, 1577836800, 4102444800, True),)     # 2020-01-01 .. 2100-01-01
LOG_PAGE = 8
_LOG_READ = (("from", INT, 0, 0x3FFFFFFF, False), ("n", INT, 1, LOG_PAGE, False))
_SETTINGS = (("induction_done", BOOL, 0, 0, True),)


def state_name(ctrl):
    return sm.NAMES[ctrl.session.state]


def _name(names, k):
    return names[k] if 0 <= k < len(names) else str(k)


def log_entry(r):
    """A log record as the protocol shows it (codes as names)."""
    out = dict(r)
    out["end"] = _name(sm.END_NAMES, r["end"])
    out["fault"] = _name(safety.NAMES, r["fault"])
    return out


class Commands:
    def __init__(self, app):
        self.app = app
        self.table = {
            "identify": (self.identify, _NONE, 0),
            "status": (self.status, _NONE, 0),
            "start": (self.start, _START, 0),
            "stop": (self.stop, _NONE, 0),
            "pause": (self.pause, _NONE, 0),
            "resume": (self.resume, _NONE, 0),
            "reset": (self.reset, _NONE, 0),
            "telemetry": (self.telemetry, _TELEMETRY, 0),
            "time_set": (self.time_set, _TIME, 0),
            "schedule": (self.schedule, _NONE, 0),
            "selftest": (self.selftest, _NONE, _IDLE),
            "settings_read": (self.settings_read, _NONE, 0),
            "settings_write": (self.settings_write, _SETTINGS, _IDLE),
            "log_read": (self.log_read, _LOG_READ, _IDLE),
            "log_clear": (self.log_clear, _NONE, _IDLE | _SERVICE),
            "cal_read": (self.cal_read, _NONE, _SERVICE),
            "cal_write": (self.cal_write, records.CAL_SPEC, _IDLE | _SERVICE),
            "rx_read": (self.rx_read, _NONE, _SERVICE),
            "rx_write": (self.rx_write, records.RX_SPEC, _IDLE | _SERVICE),
        }

    def handle(self, cmd, req):
        entry = self.table.get(cmd)
        if entry is None:
            raise Reject("E_UNKNOWN_CMD", "unknown command " + schema.quote(cmd))
        fn, spec, flags = entry
        if flags & _SERVICE and not self.app.service:
            raise Reject("E_DENIED", cmd + " needs service mode")
        f = schema.check(req, spec, ("id", "cmd"))
        if flags & _IDLE and self.app.session_active():
            raise Reject("E_STATE", "%s not allowed during a session (state %s)" % (
                cmd, state_name(self.app.ctrl)))
        return fn(f)

    # ---- reading ------------------------------------------------------------------------
    def identify(self, f):
        app = self.app
        impl = sys.implementation
        v = impl.version
        return {"fw": VERSION, "proto": PROTOCOL, "board": app.board_name, "uid": app.uid,
                "python": "%s %d.%d.%d" % (impl.name, v[0], v[1], v[2]),
                "line_max": LINE_MAX, "service": app.service}

    def status(self, f):
        app = self.app
        ctrl = app.ctrl
        ses = ctrl.session
        st = ses.state
        on = ctrl.hal.enabled
        i = ctrl.i_ua
        v = ctrl.v_mv
        target = getattr(ses, "target_ua", 0)
        dur = getattr(ses, "duration_ms", 0)
        left = dur - ses.elapsed_ms
        store = app.store
        return {
            "state": sm.NAMES[st], "target_ua": target, "sp_ua": ses.sp_ua if on else 0,
            "i_ua": i, "v_mv": v,
            "load_ohm": v * 1000 // i if on and i >= 500 else None,
            "flow_pct": i * 100 // target if st == sm.TREAT and target else None,
            "limited": bool(on and ctrl.regulator.limited),
            "elapsed_s": ses.elapsed_ms // 1000, "remaining_s": left // 1000 if left > 0 else 0,
            "charge_uamin": ses.charge_uamin, "pauses": ses.pauses,
            "pause": sm.PAUSE_NAMES[ses.pause_cause] if st == sm.PAUSED else "",
            "end": sm.END_NAMES[ses.end_reason], "fault": safety.NAMES[ctrl.safety.fault],
            "cal": app.cal_status, "rx": store.rx.status, "settings": store.settings.status,
            "log_last": store.log.last, "log_pending": len(app.recorder.pending),
            "time": app.clock.epoch(), "uptime_s": app.clock.uptime_s, "tel_hz": app.tel_hz,
        }

    def schedule(self, f):
        app = self.app
        store = app.store
        rx = store.rx_data()
        if rx is None:
            raise Reject("E_DENIED", "prescription corrupt: rewrite it")
        log = store.log
        return schedule.compute(log.counted, log.recent, rx,
                                store.settings_data()["induction_done"], app.clock.epoch())

    def settings_read(self, f):
        s = self.app.store.settings_data()
        return {"induction_done": s["induction_done"], "status": self.app.store.settings.status}

    def log_read(self, f):
        log = self.app.store.log
        recs, nxt = log.page(f.get("from", 0), f.get("n", LOG_PAGE))
        return {"records": [log_entry(r) for r in recs], "next": nxt or None,
                "first": log.first or None, "last": log.last or None, "count": log.count}

    def cal_read(self, f):
        app = self.app
        c = app.cal_in_use
        use = {}
        for k in records.CAL_INTS:
            use[k] = getattr(c, k)
        return {"cal": app.store.cal.data, "status": app.cal_status, "in_use": use}

    def rx_read(self, f):
        store = self.app.store
        return {"rx": store.rx_data(), "status": store.rx.status}

    # ---- the session --------------------------------------------------------------------
    def start(self, f):
        app = self.app
        ctrl = app.ctrl
        st = ctrl.session.state
        if st != sm.IDLE and st != sm.DONE:
            raise Reject("E_STATE", "start needs IDLE or DONE (state %s)" % sm.NAMES[st])
        if ctrl.safety.fault:
            raise Reject("E_STATE", "fault latched (%s): reset first"
                         % safety.NAMES[ctrl.safety.fault])
        if not app.cal_usable():
            raise Reject("E_DENIED", "no valid calibration (%s)" % app.cal_status)
        rx = app.store.rx_data()
        if rx is None:
            raise Reject("E_DENIED", "prescription corrupt: rewrite it")
        target = f.get("target_ua", rx["target_ua"])
        if target > rx["max_target_ua"]:
            raise Reject("E_RANGE", "target_ua %d above the prescription's %d" % (
                target, rx["max_target_ua"]))
        duration = f.get("duration_s", rx["duration_s"])
        if duration > rx["max_duration_s"]:
            raise Reject("E_RANGE", "duration_s %d above the prescription's %d" % (
                duration, rx["max_duration_s"]))
        ramp_up = f.get("ramp_up_s", rx["ramp_up_s"])
        if ramp_up < rx["ramp_up_s"]:
            raise Reject("E_RANGE", "ramp_up_s %d below the prescription's %d" % (
                ramp_up, rx["ramp_up_s"]))
        reverse = f.get("reverse", False)
        if reverse and not rx["reverse_allowed"]:
            raise Reject("E_DENIED", "reverse polarity is not prescribed")
        p = Profile(target, duration, ramp_up, f.get("ramp_down_s", rx["ramp_down_s"]), reverse)
        try:
            p.validate(rx["max_target_ua"])
        except ValueError as e:
            raise Reject("E_RANGE", str(e))
        app.recorder.observe(ctrl, app.clock)     # the previous session's record first
        try:
            ctrl.start(p)
        except ValueError as e:
            raise Reject("E_STATE", str(e))
        app.recorder.begin(app.clock)
        return {"state": state_name(ctrl), "target_ua": p.target_ua, "duration_s": p.duration_s,
                "ramp_up_s": p.ramp_up_s, "ramp_down_s": p.ramp_down_s, "reverse": p.reverse}

    def stop(self, f):
        """Always accepted: ramps down whatever runs; nothing to do when idle."""
        self.app.ctrl.stop()
        return {"state": state_name(self.app.ctrl)}

    def pause(self, f):
        ctrl = self.app.ctrl
        if not ctrl.pause():
            raise Reject("E_STATE", "nothing to pause (state %s)" % state_name(ctrl))
        return {"state": state_name(ctrl)}

    def resume(self, f):
        ctrl = self.app.ctrl
        if not ctrl.resume():
            raise Reject("E_STATE", "resume needs a user pause (state %s)" % state_name(ctrl))
        return {"state": state_name(ctrl)}

    def reset(self, f):
        app = self.app
        ctrl = app.ctrl
        st = ctrl.session.state
        if st != sm.FAULT and st != sm.DONE:
            raise Reject("E_STATE", "reset needs FAULT or DONE (state %s)" % sm.NAMES[st])
        app.recorder.observe(ctrl, app.clock)     # record the ended session first
        ctrl.reset()
        return {"state": state_name(ctrl)}

    # ---- device settings ----------------------------------------------------------------
    def telemetry(self, f):
        hz = f.get("hz", 10) if f["on"] else 0
        self.app.set_telemetry(hz)
        return {"on": hz > 0, "hz": hz}

    def time_set(self, f):
        self.app.clock.set_epoch(f["epoch"])
        return {"time": self.app.clock.epoch()}

    def selftest(self, f):
        ctrl = self.app.ctrl
        if ctrl.session.state == sm.FAULT:
            # the test drives the output unsupervised for ~50 ms: not while a fault says
            # the hardware may be broken (a deliberate reset first)
            raise Reject("E_STATE", "selftest not allowed in FAULT: reset first")
        checks = self.app.selftest()
        ok = bool(checks)
        for c in checks:
            ok = ok and c[1]
        return {"pass": ok, "checks": [[c[0], c[1], c[2]] for c in checks]}

    def settings_write(self, f):
        store = self.app.store
        s = dict(store.settings_data())
        s["induction_done"] = f["induction_done"]
        s["log_seq"] = store.log.last      # never lower the session counter's floor
        _save(store.settings, s)
        return {"induction_done": s["induction_done"]}

    # ---- service ------------------------------------------------------------------------
    def cal_write(self, f):
        d = records.validate_cal(f)
        _save(self.app.store.cal, d)
        self.app.use_calibration(records.calibration_of(d), self.app.store.cal.status)
        return {"status": self.app.cal_status}

    def rx_write(self, f):
        d = records.validate_rx(f)
        _save(self.app.store.rx, d)
        return {"status": self.app.store.rx.status}

    def log_clear(self, f):
        store = self.app.store
        log = store.log
        s = dict(store.settings_data())
        if s["log_seq"] != log.last:
            s["log_seq"] = log.last
            _save(store.settings, s)
        try:
            log.clear()
        except OSError as e:
            raise Reject("E_STORAGE", "log clear failed (%s): some records may remain" % e)
        return {"next_seq": log.last + 1}


def _save(record, obj):
    try:
        record.save(obj)
    except OSError as e:
        raise Reject("E_STORAGE", "storage write failed (%s): the previous record stays" % e)
