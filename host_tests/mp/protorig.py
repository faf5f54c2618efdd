"""A device on the host: sim board + plant (scenario.Bench), fake flash, the app (protocol).

MicroPython-compatible: used by the CPython protocol tests, the MicroPython test modules
and the differential fuzz on the VMs. Virtual time only: `step()` advances the bench by
one control period and runs the app's poll, as main.run does on a board.
"""

import json

import records
import scenario
import session as sm
from app import App
from ticks import ticks_add, ticks_diff
from fakefs import FakeFs

# an rx_write line holds at most 256 bytes: a whole prescription goes in these groups, in this
# order (caps with the default session first, so each step is a valid prescription)
RX_GROUPS = (("profile", "target_ua", "dose_uamin", "hands_max_ua", "feet_max_ua",
              "child_max_ua", "underarm_max_ua", "drug_max_ua"),
             ("min_duration_s", "max_duration_s", "duration_s", "ramp_up_s", "ramp_down_s"),
             ("reverse_allowed", "induction_sessions", "induction_per_week",
              "maintenance_per_week"))

CAL = {"i_gain": 16384, "i_offset": 0, "v_gain": 16384, "v_offset": 0, "r_gain": 16384,
       "r_offset": 0, "date": "2025-01-31", "tech": "T01", "meter": "FLUKE-87V-1234"}


class Rig:
    def __init__(self, service=True, cal=True, fs=None, reader=None, hw_selftest=True,
                 service_button=None, urandom=None, flash_stalls=False,
                 lock_polls=False, **plant):
        self.skew_us = 0
        self.bench = scenario.Bench(**plant)
        self.bench.plant.contact = True
        self.fs = fs if fs is not None else FakeFs()
        if cal:
            s = records.Store(self.fs).load()
            if s.cal.data is None:
                s.cal.save(dict(CAL))
        self.store = records.Store(self.fs).load()
        self.out = []
        b = self.bench
        self.app = App(b.ctrl, self.store, self.write, self.ticks, reader=reader,
                       service=service, uid="sim-rig",
                       hw=b.hw if hw_selftest else None, sleep_us=self.sleep_us,
                       service_button=service_button, urandom=urandom,
                       flash_stalls=flash_stalls, lock_polls=lock_polls)
        self.ctrl = b.ctrl

    def ticks(self):
        return ticks_add(self.bench.now_us, self.skew_us)

    def skip(self, s):
        """Advance the app's clock (not the control loop) by `s` seconds, polling every
        60 s or less: hours of idle time for the service-mode timers in no time."""
        while s > 0:
            d = s if s < 60 else 60
            self.skew_us = ticks_diff(ticks_add(self.skew_us, d * 1000000), 0)   # signed
            self.app.poll()
            s -= d

    def write(self, line):
        self.out.append(bytes(line))   # a write consumes its data: telemetry reuses its buffer

    def sleep_us(self, us):
        """The self test's waits: the plant runs on (the loop does not tick meanwhile)."""
        b = self.bench
        while us > 0:
            d = us if us < b.period_us else b.period_us
            b.plant.step(d / 1000000)
            us -= d

    def step(self, n=1):
        b = self.bench
        app = self.app
        for _ in range(n):
            b.step()
            app.poll()

    def seconds(self, s):
        self.step(int(s * 1000000) // self.bench.period_us)

    def until(self, state, max_s):
        n = int(max_s * 1000000) // self.bench.period_us
        for _ in range(n):
            if self.ctrl.session.state == state:
                return True
            self.step()
        return self.ctrl.session.state == state

    def take(self):
        """Output lines so far (parsed), and forget them."""
        out = [json.loads(x.decode()) for x in self.out]
        self.out[:] = []
        return out

    def send_line(self, line):
        """Feed raw bytes (LF added) straight to the protocol; return the parsed replies."""
        self.out[:] = []
        self.app.feed(line + b"\n")
        return self.take()

    def ask(self, cmd, **fields):
        req = {"id": 1, "cmd": cmd}
        req.update(fields)
        got = self.send_line(json.dumps(req).encode())
        assert len(got) == 1, got
        return got[0]

    def ok(self, cmd, **fields):
        """The reply's fields (without id and ok); fails unless it was accepted."""
        r = self.ask(cmd, **fields)
        assert r["ok"] is True and r["id"] == 1, r
        del r["ok"]
        del r["id"]
        return r

    def write_rx(self, rx):
        """rx_write a whole prescription (dict) in RX_GROUPS lines; the last reply."""
        r = None
        for group in RX_GROUPS:
            part = {}
            for k in group:
                if k in rx:
                    part[k] = rx[k]
            if part:
                r = self.ok("rx_write", **part)
        return r

    def err(self, cmd, **fields):
        r = self.ask(cmd, **fields)
        assert r["ok"] is False, r
        return r["error"]["code"]

    def state(self):
        return sm.NAMES[self.ctrl.session.state]

    def snapshot(self, auth=True):
        """Everything a command could change (compare before/after a refused command).
        auth=False: without the file write counter and the service code's record and
        counters (what a wrong code, E_AUTH, changes)."""
        c = self.ctrl
        ses = c.session
        app = self.app
        st = self.store
        cal = app.cal_in_use
        prof = getattr(ses, "profile", None)
        core = (ses.state, ses.pauses, ses.pause_cause, ses.end_reason, ses.sp_ua,
                getattr(ses, "target_ua", None), getattr(ses, "duration_ms", None),
                None if prof is None else (prof.target_ua, prof.duration_s, prof.ramp_up_s,
                                           prof.ramp_down_s, prof.reverse, prof.mode,
                                           prof.dose_uamin),
                c.safety.fault, c.safety.trip_ua, c.safety.cap_ms, c.hal.enabled,
                c.hal.ref_code, c.hal.polarity, c.regulator.ceiling_ua,
                app.tel_hz, app.clock.epoch(), app.cal_status,
                (cal.i_gain, cal.i_offset, cal.v_gain, cal.v_offset, cal.r_gain, cal.r_offset),
                _items(st.cal.data), _items(st.rx.data), _items(st.settings.data),
                st.cal.status, st.rx.status, st.settings.status,
                st.log.last, st.log.count, self.app.recorder.running,
                len(self.app.recorder.pending), app.service, app.profile_name)
        if not auth:
            return core
        return core + (self.fs.gen, _items(st.auth.data), st.auth.status, app.auth.fails,
                       app.auth.lock_until)


def _items(d):
    if d is None:
        return None
    keys = sorted(d)
    return tuple((k, d[k]) for k in keys)
