"""The protocol's commands: field specs, permission and state rules, and the handlers.

`Commands(app).handle(cmd, request)` returns the reply's fields or raises schema.Reject.
The technician's commands (calibration, prescription, log clearing, the code) are in
service_commands.py; this table holds every command's permission flags.
Checks run in a fixed order, and nothing changes before all of them passed:
    1. the command exists                       E_UNKNOWN_CMD
    2. service-only commands need service mode  E_DENIED
    3. commands refused while a session runs (they touch flash or the output)  E_STATE
    4. fields: unknown, missing, type, range    E_UNKNOWN_FIELD, E_MISSING, E_TYPE, E_RANGE
    5. command-specific: calibration/prescription validity (E_DENIED), prescription
       limits (E_RANGE, E_DENIED); storage failure (E_STORAGE: the old record stays)
Service mode is `app.service`: `service_enter` with the technician code (auth.py: salted
hash, rate limit) turns it on; it ends with `service_exit`, after SERVICE_IDLE_MS without
a command, when a session starts, and at every boot. Tests and tools that build the app
in-process may pass `App(service=True)`. A wrong code (E_AUTH) is the one refusal that
changes something: the stored failure counter. Every command and field is documented in
docs/protocol.md.
A flat request (flatreq.FlatReq, protocol.py) is answered without allocating when its
command is in QUICK, the commands a host sends while a session runs: checks 1-4 write
their refusal into the protocol's preallocated error line (replyline.ErrorLine), the
fields are read from the request in place (schema.check_flat), and the reply is a
preallocated replyline.FieldReply. A command-specific refusal (5) still raises Reject.
Any other command's flat request is made a dict and read the usual way.
"""

import sys

import limits
import profiles
import records
import safety
import schedule
import schema
import session as sm
import storage
from protocol import LINE_MAX
from schema import BOOL, CHOICE, INT, Reject
from service_commands import CAL_HOLD, CODE, ServiceCommands
from recorder import profile_code, dose_carry
from replyline import FieldReply, SplitInt

VERSION = "0.5.0"
PROTOCOL = 2      # 2: firmware 0.5 (profiles, prescription format 2, service mode)

_IDLE = 1        # refused while a session is running (it touches flash or the output)
_SERVICE = 2     # service mode only

_NONE = ()
_START = (
    ("profile", CHOICE, profiles.NAMES, 0, False),
    ("target_ua", INT, 1000, limits.CEILING_UA, False),
    ("duration_s", INT, limits.MIN_DURATION_S, limits.MAX_DURATION_S, False),
    ("ramp_up_s", INT, limits.MIN_RAMP_MS // 1000, 120, False),
    ("ramp_down_s", INT, 5, 60, False),
    ("reverse", BOOL, 0, 0, False),
    ("dose_uamin", INT, 1000, limits.DOSE_CAP_UAMIN, False),
)
_ADJUST = (("target_ua", INT, 1000, limits.CEILING_UA, True),)
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
    k = r.get("profile", 0)
    out["profile"] = profiles.NAMES[k - 1] if 0 < k <= len(profiles.NAMES) else ""
    return out


# the status reply's fields, in the order of its line (replyline.FieldReply)
STATUS_KEYS = ("state", "profile", "mode", "target_ua", "sp_ua", "i_ua", "v_mv", "peak_ua",
               "load_ohm", "flow_pct", "density_pm", "limited", "elapsed_s", "remaining_s", "charge_uamin",
               "dose_uamin", "pauses", "pause", "end", "fault", "cal", "rx", "settings",
               "log_last", "log_pending", "time", "uptime_s", "tel_hz", "service",
               "code_default", "locked_s", "loop_worst_us", "loop_late", "overruns",
               "heap_free", "heap_largest", "heap_largest_s", "build_tries")
# every string a status field can hold (an unknown one sends the reply the usual way)
STATUS_NAMES = (sm.NAMES + sm.END_NAMES + sm.PAUSE_NAMES + safety.NAMES + profiles.NAMES +
                profiles.MODE_NAMES + (storage.OK, storage.RECOVERED, storage.MISSING,
                                       storage.CORRUPT, storage.DEFAULT))


# answered from a flat request with nothing allocated (see the top)
QUICK = ("status", "identify", "stop", "pause", "resume", "telemetry", "adjust")
# ...and between sessions, where only these read-only ones are answered heap-locked
# (app.py): the others may act (stop ends a DONE, telemetry sets the rate) on paths a
# session never takes, so they are answered with the heap unlocked
IDLE_QUICK = ("status", "identify")
_IDENTIFY_KEYS = ("fw", "proto", "board", "uid", "python", "line_max", "service",
                  "code_default")


class Commands:
    def __init__(self, app):
        self.app = app
        self._status = FieldReply(STATUS_KEYS, STATUS_NAMES, 4, self._status_more)
        self._time = SplitInt()
        # the output's reading the last status took: state, output on, i, v, setpoint,
        # peak, density, limited, target (status(); _status_more writes its fields)
        self._reading = [sm.IDLE, False, 0, 0, 0, 0, 0, False, 0]
        self._state = FieldReply(("state",), sm.NAMES)
        self._adjusted = FieldReply(("state", "target_ua"), sm.NAMES)
        self._tel = FieldReply(("on", "hz"), ())
        impl = sys.implementation
        v = impl.version
        self._python = "%s %d.%d.%d" % (impl.name, v[0], v[1], v[2])
        names = (VERSION, self._python)
        for k in ("board_name", "uid"):       # app None: a table-only instance (tests)
            v = getattr(app, k, None)
            if isinstance(v, str):
                names += (v,)
        self._identify = FieldReply(_IDENTIFY_KEYS, names)
        self._quick = {}
        for k in QUICK:
            self._quick[k] = True
        svc = ServiceCommands(app)
        self.table = {
            "identify": (self.identify, _NONE, 0),
            "status": (self.status, _NONE, 0),
            "start": (self.start, _START, _IDLE),
            "stop": (self.stop, _NONE, 0),
            "pause": (self.pause, _NONE, 0),
            "resume": (self.resume, _NONE, 0),
            "reset": (self.reset, _NONE, _IDLE),
            "telemetry": (self.telemetry, _TELEMETRY, 0),
            "time_set": (self.time_set, _TIME, 0),
            "schedule": (self.schedule, _NONE, 0),
            "selftest": (self.selftest, _NONE, _IDLE),
            "settings_read": (self.settings_read, _NONE, 0),
            "settings_write": (self.settings_write, _SETTINGS, _IDLE),
            "log_read": (self.log_read, _LOG_READ, _IDLE),
            "adjust": (self.adjust, _ADJUST, 0),
            # the technician's (service_commands.py); every permission stays in this table
            "service_enter": (svc.service_enter, CODE, _IDLE),
            "service_exit": (svc.service_exit, _NONE, 0),
            "service_code": (svc.service_code, CODE, _IDLE | _SERVICE),
            "log_clear": (svc.log_clear, _NONE, _IDLE | _SERVICE),
            "cal_read": (svc.cal_read, _NONE, _SERVICE),
            "cal_write": (svc.cal_write, records.CAL_SPEC, _IDLE | _SERVICE),
            "cal_hold": (svc.cal_hold, CAL_HOLD, _SERVICE),
            "cal_sample": (svc.cal_sample, _NONE, _SERVICE),
            "rx_read": (svc.rx_read, _NONE, _SERVICE),
            "rx_write": (svc.rx_write, records.RX_WRITE_SPEC, _IDLE | _SERVICE),
        }

    def is_quick(self, cmd):
        """True for a flat request of `cmd` answered without allocating in a session:
        a command in QUICK (its reply built in place) or one refused by checks 1-3 (see
        refused_in_place). The app answers it with the heap locked."""
        return cmd in self._quick or self.refused_in_place(cmd)

    def is_idle_quick(self, cmd, req):
        """True for a request answered without allocating between sessions: a flat
        request (not a dict) of a command in IDLE_QUICK, or one refused by checks 1-3."""
        if isinstance(req, dict):
            return False
        return cmd in IDLE_QUICK or self.refused_in_place(cmd)

    def refused_in_place(self, cmd):
        """True when handle() refuses a flat request of `cmd` (None: an unknown name) by
        checks 1-3, as things stand: an unknown command, a service-only one outside
        service mode, one refused while a session runs. Those refusals are written into
        the preallocated error line: nothing allocated, nothing changed."""
        entry = self.table.get(cmd) if cmd is not None else None
        if entry is None:
            return True
        flags = entry[2]
        app = self.app
        return bool((flags & _SERVICE and not app.service) or
                    (flags & _IDLE and app.session_active()))

    def names(self):
        """Every command and field name (the protocol's table for flat requests)."""
        out = list(self.table)
        for entry in self.table.values():
            for f in entry[1]:
                if f[0] not in out:
                    out.append(f[0])
        return tuple(out) + sm.NAMES

    def handle(self, cmd, req):
        """The reply to command `cmd` (str; None: a flat request's unknown name) with
        request `req` (a dict, or a flatreq.FlatReq): a dict, a replyline reply
        object, or a Reject raised."""
        flat = not isinstance(req, dict)
        entry = self.table.get(cmd) if cmd is not None else None
        if entry is None:
            if flat:
                i = req.cmd_at
                return self.app.proto.err.begin("E_UNKNOWN_CMD").text(
                    b"unknown command ").quoted(req.buf, req.str_start(i), req.str_end(i))
            raise Reject("E_UNKNOWN_CMD", "unknown command " + schema.quote(cmd))
        fn, spec, flags = entry
        app = self.app
        if app.service:
            app.service_touch()          # any command keeps service mode alive
        if flags & _SERVICE and not app.service:
            if flat:
                return app.proto.err.begin("E_DENIED").text(cmd).text(b" needs service mode")
            raise Reject("E_DENIED", "%s needs service mode" % cmd)
        if flags & _IDLE and app.session_active():
            st = state_name(app.ctrl)
            if flat:
                return app.proto.err.begin("E_STATE").text(cmd).text(
                    b" not allowed during a session (state ").text(st).text(b")")
            raise Reject("E_STATE", "%s not allowed during a session (state %s)" % (cmd, st))
        if flat:
            if cmd in self._quick:
                bad = schema.check_flat(req, spec, app.proto.err)
                return fn(req) if bad is None else bad
            req = req.as_dict()
        return fn(schema.check(req, spec, ("id", "cmd")))

    # ---- reading ------------------------------------------------------------------------
    def identify(self, f):
        app = self.app
        d = self._identify.fields
        d["fw"] = VERSION
        d["proto"] = PROTOCOL
        d["board"] = app.board_name
        d["uid"] = app.uid
        d["python"] = self._python
        d["line_max"] = LINE_MAX
        d["service"] = app.service
        d["code_default"] = app.auth.code_default
        return self._identify

    def status(self, f):
        """The `status` reply: the output's reading taken here, in one period; its fields
        and the rest are filled in _status_more's four stages (the protocol runs them in
        the next polls, before it writes a field: on an RP2040 each field filled takes
        ~25 µs, a list item ~10 µs)."""
        ctrl = self.app.ctrl
        ses = ctrl.session
        r = self._reading
        r[0] = ses.state
        r[1] = ctrl.hal.enabled
        r[2] = ctrl.i_ua
        r[3] = ctrl.v_mv
        r[4] = ses.sp_ua
        r[5] = ctrl.peak_ua
        r[6] = ses.density_pm
        r[7] = ctrl.regulator.limited
        r[8] = ses.target_ua
        self._status.restart()
        return self._status

    def _status_more(self, stage):
        """status's fill stage 1 (the output's reading), 2 (the session's profile and
        progress), 3 (its pauses and end, the stored records, the time) or 4 (the
        technician code, the loop's health)."""
        app = self.app
        d = self._status.fields     # filled in place: its keys exist (replyline.py)
        if stage == 1:
            r = self._reading
            st = r[0]
            on = r[1]
            i = r[2]
            v = r[3]
            target = r[8]
            d["state"] = sm.NAMES[st]
            d["sp_ua"] = r[4] if on else 0
            d["i_ua"] = i
            d["v_mv"] = v
            d["peak_ua"] = r[5] if on else 0
            d["load_ohm"] = v * 1000 // i if on and i >= 500 else None
            d["flow_pct"] = i * 100 // target if st == sm.TREAT and target else None
            d["density_pm"] = r[6] if on else None
            d["limited"] = bool(on and r[7])
            return
        if stage == 2:
            ses = app.ctrl.session
            left = ses.remaining_ms()
            prof = getattr(ses, "profile", None)      # none before the first start
            mode = None
            dose = None
            if prof is not None:
                mode = prof.mode
                if mode == profiles.MODE_DOSE:
                    dose = prof.dose_uamin
            d["profile"] = app.profile_name
            d["mode"] = profiles.MODE_NAMES[mode] if mode is not None else None
            d["target_ua"] = self._reading[8]       # the target flow_pct was judged on
            d["elapsed_s"] = ses.elapsed_ms // 1000
            d["remaining_s"] = left // 1000 if left > 0 else 0
            d["charge_uamin"] = ses.charge_uamin
            d["dose_uamin"] = dose
            return
        clock = app.clock
        if stage == 3:
            ctrl = app.ctrl
            ses = ctrl.session
            store = app.store
            d["pauses"] = ses.pauses
            # the state the reply shows (status's own reading)
            d["pause"] = sm.PAUSE_NAMES[ses.pause_cause] if self._reading[0] == sm.PAUSED \
                else ""
            d["end"] = _name(sm.END_NAMES, ses.end_reason)
            d["fault"] = safety.NAMES[ctrl.safety.fault]
            d["cal"] = app.cal_status
            d["rx"] = store.rx.status
            d["settings"] = store.settings.status
            d["log_last"] = store.log.last
            d["log_pending"] = len(app.recorder.pending)
            if clock.valid:
                t = self._time             # epoch seconds without a heap int (replyline)
                t.hi = clock.epoch_hi
                t.lo = clock.epoch_lo
                d["time"] = t
            else:
                d["time"] = None
            return
        now = clock.uptime_s
        h = app.health               # the heap as last measured (health.py: never here)
        d["uptime_s"] = clock.uptime_s
        d["tel_hz"] = app.tel_hz
        d["service"] = app.service
        d["code_default"] = app.auth.code_default
        d["locked_s"] = app.auth.locked_s(now)
        d["loop_worst_us"] = h.worst_us
        d["loop_late"] = h.late
        d["overruns"] = app.ctrl.safety.overruns
        d["heap_free"] = h.free
        d["heap_largest"] = h.largest
        d["heap_largest_s"] = h.largest_s
        d["build_tries"] = h.build_tries

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
        name = f.get("profile", rx["profile"])
        cap = rx[records.cap_field(name)]
        if not cap:
            raise Reject("E_DENIED", "profile %s is not prescribed" % name)
        d = records.rx_defaults(rx, name)
        target = f.get("target_ua", d["target_ua"])
        if target > cap:
            raise Reject("E_RANGE", "target_ua %d above the prescription's %d for %s" % (
                target, cap, name))
        duration = f.get("duration_s", d["duration_s"])
        if duration < rx["min_duration_s"] or duration > rx["max_duration_s"]:
            raise Reject("E_RANGE", "duration_s %d outside the prescription's %d..%d" % (
                duration, rx["min_duration_s"], rx["max_duration_s"]))
        ramp_up = f.get("ramp_up_s", d["ramp_up_s"])
        if ramp_up < rx["ramp_up_s"]:
            raise Reject("E_RANGE", "ramp_up_s %d below the prescription's %d" % (
                ramp_up, rx["ramp_up_s"]))
        reverse = f.get("reverse", False)
        if reverse and not rx["reverse_allowed"]:
            raise Reject("E_DENIED", "reverse polarity is not prescribed")
        args = {"target_ua": target, "duration_s": duration, "ramp_up_s": ramp_up,
                "ramp_down_s": f.get("ramp_down_s", d["ramp_down_s"]), "reverse": reverse}
        if "dose_uamin" in f:
            if "dose_uamin" not in d:
                raise Reject("E_RANGE", "dose_uamin only with a dose profile (%s is %s)" % (
                    name, _mode_name(name)))
            if f["dose_uamin"] > rx["dose_uamin"]:
                raise Reject("E_RANGE", "dose_uamin %d above the prescription's %d" % (
                    f["dose_uamin"], rx["dose_uamin"]))
            args["dose_uamin"] = f["dose_uamin"]
        elif "dose_uamin" in d:
            args["dose_uamin"] = d["dose_uamin"]
        carry = 0
        if "dose_uamin" in args:                  # a partial dose counts (recorder.py)
            carry = dose_carry(app.store.log, app.recorder.pending, profile_code(name),
                               args["dose_uamin"])
            args["dose_uamin"] -= carry
        p = profiles.from_catalog(name, **args)
        try:
            p.validate(cap)
        except ValueError as e:
            raise Reject("E_RANGE", str(e))
        app.recorder.observe(ctrl, app.clock)     # the previous session's record first
        app.collect()                             # the session's heap, garbage-free
        try:
            ctrl.start(p)
        except ValueError as e:
            raise Reject("E_STATE", str(e))
        app.recorder.begin(app.clock)
        app.profile_name = name
        app.service_end()                         # a session ends service mode
        out = {"state": state_name(ctrl), "profile": name,
               "mode": profiles.MODE_NAMES[p.mode], "target_ua": p.target_ua,
               "duration_s": p.duration_s, "ramp_up_s": p.ramp_up_s,
               "ramp_down_s": p.ramp_down_s, "reverse": p.reverse}
        if p.mode == profiles.MODE_PULSED:
            out["pulse_hz"] = p.pulse_hz
            out["duty_pct"] = p.duty_pct
            out["peak_ua"] = p.peak_ua()
        elif p.mode == profiles.MODE_DOSE:
            out["dose_uamin"] = p.dose_uamin
            out["dose_carried_uamin"] = carry
        return out

    def adjust(self, f):
        """Move a running session's target, within the prescription's cap for its profile."""
        app = self.app
        ctrl = app.ctrl
        if not app.session_active() or app.profile_name is None:
            raise Reject("E_STATE", "adjust needs a running session (state %s)" % state_name(ctrl))
        rx = app.store.rx_data()
        if rx is None:
            raise Reject("E_DENIED", "prescription corrupt: rewrite it")
        name = app.profile_name
        cap = rx[records.cap_field(name)]
        ua = f["target_ua"]
        if ua > cap:
            raise Reject("E_RANGE", "target_ua %d above the prescription's %d for %s" % (
                ua, cap, name))
        if not ctrl.set_target(ua):
            raise Reject("E_STATE", "target %d not accepted in state %s" % (ua, state_name(ctrl)))
        d = self._adjusted.fields
        d["state"] = state_name(ctrl)
        d["target_ua"] = ua
        return self._adjusted

    def _state_reply(self):
        self._state.fields["state"] = state_name(self.app.ctrl)
        return self._state

    def stop(self, f):
        """Always accepted: ramps down whatever runs; nothing to do when idle."""
        self.app.ctrl.stop()
        return self._state_reply()

    def pause(self, f):
        ctrl = self.app.ctrl
        if not ctrl.pause():
            raise Reject("E_STATE", "nothing to pause (state %s)" % state_name(ctrl))
        return self._state_reply()

    def resume(self, f):
        ctrl = self.app.ctrl
        if not ctrl.resume():
            raise Reject("E_STATE", "resume needs a user pause (state %s)" % state_name(ctrl))
        return self._state_reply()

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
        d = self._tel.fields
        d["on"] = hz > 0
        d["hz"] = hz
        return self._tel

    def time_set(self, f):
        app = self.app
        why = app.clock.refusal(f["epoch"], app.store.log.time_floor, app.service)
        if why is not None:
            raise Reject("E_DENIED", why)
        app.clock.set_epoch(f["epoch"], app.service or not app.clock.valid)
        return {"time": app.clock.epoch()}

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
        records.save(store.settings, s)
        return {"induction_done": s["induction_done"]}

def _mode_name(name):
    return profiles.MODE_NAMES[profiles.CATALOG[name].get("mode", profiles.MODE_DC)]
