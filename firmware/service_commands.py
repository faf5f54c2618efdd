"""The technician's protocol commands: calibration (read, write, the calibration hold and
its samples), the prescription, clearing the log, entering and leaving service mode and
changing the code. `commands.Commands` routes to them; its table holds their permission
flags (service mode only, not during a session) and checks them before any handler runs.
"""

import limits
import profiles
import records
import safety
import session as sm
from schema import INT, TEXT, Reject

CAL_HOLD = (("ua", INT, 1000, limits.CEILING_UA, True),)
CODE = (("code", TEXT, 1, 32, True),)


class ServiceCommands:
    def __init__(self, app):
        self.app = app

    def cal_read(self, f):
        app = self.app
        c = app.cal_in_use
        use = {}
        for k in records.CAL_INTS:
            use[k] = getattr(c, k)
        return {"cal": app.store.cal.data, "status": app.cal_status, "in_use": use}

    def rx_read(self, f):
        store = self.app.store
        return {"rx": store.rx_data(), "status": store.rx.status, "v1": store.rx_v1}

    def cal_write(self, f):
        d = records.validate_cal(f)
        records.save(self.app.store.cal, d)
        self.app.use_calibration(records.calibration_of(d), self.app.store.cal.status)
        return {"status": self.app.cal_status}

    def rx_write(self, f):
        """Fields given replace those of the prescription in force (the factory one while
        none is stored or the stored one is corrupt); the whole result is validated."""
        if not f:
            raise Reject("E_MISSING", "rx_write needs at least one prescription field")
        store = self.app.store
        base = store.rx_data()
        d = dict(base if base is not None else records.RX_FACTORY)
        d.update(f)
        d = records.validate_rx(d)
        records.save(store.rx, d)
        store.rx_v1 = False
        return {"status": store.rx.status, "rx": d}

    def log_clear(self, f):
        store = self.app.store
        log = store.log
        s = dict(store.settings_data())
        if s["log_seq"] != log.last:
            s["log_seq"] = log.last
            records.save(store.settings, s)
        try:
            log.clear()
        except OSError as e:
            raise Reject("E_STORAGE", "log clear failed (%s): some records may remain" % e)
        return {"next_seq": log.last + 1}

    def cal_hold(self, f):
        """Technician calibration: hold `ua` nominal with the reference driven open loop
        (profiles.MODE_CAL; every safety check runs). Starts a hold, or moves a running
        one to the new point at the ramp slope. The sampler starts again either way."""
        app = self.app
        ctrl = app.ctrl
        ses = ctrl.session
        ua = f["ua"]
        if app.session_active():
            if ses.profile.mode != profiles.MODE_CAL:
                raise Reject("E_STATE", "a treatment is running (state %s)"
                             % sm.NAMES[ses.state])
            if not ctrl.set_target(ua):
                raise Reject("E_STATE", "hold point %d not accepted in state %s" % (
                    ua, sm.NAMES[ses.state]))
        else:
            if ctrl.safety.fault:
                raise Reject("E_STATE", "fault latched (%s): reset first"
                             % safety.NAMES[ctrl.safety.fault])
            # started at the ceiling, so set_target's slope is the fastest ramp (2.5 mA/s)
            p = profiles.Profile(target_ua=limits.CEILING_UA,
                                 duration_s=limits.MAX_DURATION_S, ramp_up_s=10,
                                 ramp_down_s=5, mode=profiles.MODE_CAL)
            app.recorder.observe(ctrl, app.clock)     # the previous session's record first
            try:
                ctrl.start(p)
            except ValueError as e:
                raise Reject("E_STATE", str(e))
            ctrl.set_target(ua)
            app.profile_name = None                   # not a treatment: no adjust
        app.cal.restart()
        b = app.board
        return {"state": sm.NAMES[ses.state], "ua": ua, "i_fs_ua": b.I_FS_UA,
                "v_fs_mv": b.V_FS_MV, "ref_fs_ua": b.REF_FS_UA}

    def cal_sample(self, f):
        """The hold's raw means so far (calhold.CalSampler): sums over `n` steady polls."""
        app = self.app
        ctrl = app.ctrl
        ses = ctrl.session
        c = app.cal
        return {"state": sm.NAMES[ses.state], "n": c.n, "i_sum": c.i_sum, "v_sum": c.v_sum,
                "ref_code": c.ref_code, "i_ua": ctrl.i_ua, "v_mv": ctrl.v_mv,
                "end": sm.END_NAMES[ses.end_reason],
                "fault": safety.NAMES[ctrl.safety.fault]}

    def service_enter(self, f):
        app = self.app
        if app.service_button is False:
            raise Reject("E_DENIED", "hold the service button at power-up")
        if app.service:
            raise Reject("E_STATE", "already in service mode")
        app.auth.check(f["code"], app.clock.uptime_s)   # E_LOCKED / E_STORAGE / E_AUTH
        app.service_begin()
        return {"service": True, "code_default": app.auth.code_default,
                "timeout_s": app.SERVICE_IDLE_MS // 1000}

    def service_exit(self, f):
        self.app.service_end()
        return {"service": False}

    def service_code(self, f):
        self.app.auth.set_code(f["code"])
        return {"code_default": False}
