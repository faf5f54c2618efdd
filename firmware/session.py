"""Treatment state machine: decides the setpoint, the enable and the polarity each step.

IDLE -> WAIT_CONTACT -> RAMP_UP -> TREAT -> (REVERSE) -> RAMP_DOWN -> DONE,
PAUSED on contact loss or partial lift, FAULT when the safety monitor trips.
Setpoints are average currents (pulsed mode: the HAL turns them into the peak).
Dose mode starts the ramp down early enough that the ramp's own charge lands the
delivered charge on the dose; `set_target()` moves a running session's target at the
ramp slope.
It is pure logic over measurements and milliseconds: the controller applies its
outputs (`enable`, `sp_ua`, `polarity`). Every waiting state has a timeout, and every
way out of a current-carrying state ramps down or cuts the output.
"""

from micropython import const

from limits import (CONTACT_TIMEOUT_MS, DEAD_TIME_MS, DOSE_MAX_UA, MIN_RAMP_MS,
                    OPEN_UA, OPEN_V_PCT, PAUSE_LIMIT_MS, PAUSE_OFF_MS, PROBE_UA,
                    RAMP_DOWN_GRACE_MS, REVERSE_PROBE_MS)
import profiles
from charge import Charge
from lift import LiftDetector
from probe import Probe
from ramp import Ramp

IDLE = const(0)
WAIT_CONTACT = const(1)
RAMP_UP = const(2)
TREAT = const(3)
REVERSE = const(4)
RAMP_DOWN = const(5)
DONE = const(6)
PAUSED = const(7)
FAULT = const(8)
NAMES = ("IDLE", "WAIT_CONTACT", "RAMP_UP", "TREAT", "REVERSE", "RAMP_DOWN", "DONE",
         "PAUSED", "FAULT")

# End reasons (why the last session left the current-carrying states)
END_NONE = const(0)
END_COMPLETED = const(1)
END_STOPPED = const(2)
END_NO_CONTACT = const(3)
END_PAUSE_TIMEOUT = const(4)
END_FAULT = const(5)
END_DOSE = const(6)            # dose mode: the delivered charge reached the dose
END_DOSE_SHORT = const(7)      # dose mode: time ran out before the dose (under-dosed)
END_INTERRUPTED = const(8)     # log only: cut by a reset, recorded from its last checkpoint
END_NAMES = ("", "completed", "stopped", "no_contact", "pause_timeout", "fault", "dose",
             "dose_short", "interrupted")

# Pause causes
PAUSE_NONE = const(0)
PAUSE_CONTACT = const(1)
PAUSE_LIFT = const(2)
PAUSE_USER = const(3)
PAUSE_NAMES = ("", "contact", "lift", "user")

# REVERSE phases
_REV_DOWN = const(0)
_REV_DEAD = const(1)
_REV_PROBE = const(2)


class Session:
    def __init__(self, compliance_mv):
        self._open_mv = compliance_mv * OPEN_V_PCT // 100
        self._lift = LiftDetector()
        self._prober = Probe(self._open_mv)
        self.state = IDLE
        self.end_reason = END_NONE
        self.fault_code = 0
        self.polarity = 0
        self.target_ua = 0
        self._charge = Charge()
        self._ramp = Ramp()      # the setpoint while current flows (ramp.py)
        self._down_timeout_ms = 0   # RAMP_DOWN's limit, set on entering it (_go)
        self._clear()

    def _clear(self):
        self.sp_ua = 0           # the setpoint: the ramp's, or the contact probe's
        self._ramp.zero()
        self.enable = False
        self.elapsed_ms = 0      # treatment timer (runs in RAMP_UP, TREAT, REVERSE)
        self.state_ms = 0        # time in the current state
        self.pause_ms = 0
        self.pauses = 0
        self.pause_cause = PAUSE_NONE
        self._pausing = False    # RAMP_DOWN towards a user pause, not the end
        self._paused_ms = 0
        self._charge.clear()     # delivered charge (measured current, output on)
        self.i_min_ua = 0        # current range while in TREAT (0 = not yet)
        self.i_max_ua = 0
        self.i_ua = 0            # last measured current (for remaining_ms)
        self._prober.restart()
        self.r_probe = 0         # last two-level probe load (Ω), polarization cancelled
        self._phase = 0
        self._reversed = False
        self._r_ref = 0          # probe load when the hands were last confirmed in
        self._lift.reset()

    # ---- commands -------------------------------------------------------------
    def start(self, profile):
        """Begin a session with a validated profile. Only from IDLE or DONE."""
        if self.state != IDLE and self.state != DONE:
            raise ValueError("session already running")
        self._clear()
        p = profile
        self.profile = p
        self.target_ua = p.target_ua
        self.duration_ms = p.duration_s * 1000
        up_ms = p.ramp_up_s * 1000
        if up_ms < MIN_RAMP_MS:
            up_ms = MIN_RAMP_MS
        self._ramp.configure(p.target_ua, up_ms, p.ramp_down_s * 1000)
        if p.mode == profiles.MODE_DOSE:
            top = p.target_ua if p.target_ua > DOSE_MAX_UA else DOSE_MAX_UA   # set_target's cap
            self._charge.set_dose(p.dose_uamin, self._ramp.down_uams_from(top))
        else:
            self._charge.set_dose(0, 0)
        self.polarity = 0
        self.end_reason = END_NONE
        self.fault_code = 0
        self._go(WAIT_CONTACT)

    def set_target(self, ua):
        """New target for a running session (the caller checked the limits). The
        setpoint moves to it at the profile's ramp slopes, never in a step."""
        s = self.state
        if s != WAIT_CONTACT and s != RAMP_UP and s != TREAT and s != PAUSED:
            return False
        self.target_ua = ua
        return True

    def remaining_ms(self):
        """Treatment time left: duration - elapsed; dose mode: charge left at the
        present current (the target while the current is below 1 mA)."""
        if self.state == IDLE or self.state == DONE or self.state == FAULT:
            return 0
        if self._charge.dose_uamin:
            return self._charge.remaining_ms(self.i_ua if self.i_ua >= 1000 else self.target_ua)
        left = self.duration_ms - self.elapsed_ms
        return left if left > 0 else 0

    @property
    def density_pm(self):
        """The guard's density estimate, per mille of full immersion at the target."""
        return self._lift.density_pm

    @property
    def charge_uamin(self):
        """Delivered charge so far, µA·min."""
        return self._charge.uamin

    def ramp_left_ms(self):
        """Time until RAMP_DOWN ends (the setpoint at the probe level, where the output
        is cut); 0 in any other state."""
        return self._ramp.left_ms() if self.state == RAMP_DOWN else 0

    def stop(self):
        """The user's stop: ramp down from wherever current flows; end otherwise."""
        s = self.state
        self._pausing = False
        if s == RAMP_UP or s == TREAT or (s == REVERSE and self._phase == _REV_DOWN):
            self.end_reason = END_STOPPED
            self._go(RAMP_DOWN)
        elif s == RAMP_DOWN:
            self.end_reason = self.end_reason or END_STOPPED
        elif s == WAIT_CONTACT or s == PAUSED or s == REVERSE:
            self._end(END_STOPPED)

    def pause(self):
        """The user's pause: ramp down, then PAUSED (timer stopped) until resume()."""
        s = self.state
        if s == RAMP_UP or s == TREAT or (s == REVERSE and self._phase == _REV_DOWN):
            self._pausing = True
            self._go(RAMP_DOWN)
            return True
        if s == REVERSE or s == PAUSED:
            self._pause(PAUSE_USER)
            return True
        return False

    def resume(self):
        """After a user pause: probe for contact, then re-ramp from zero."""
        if self.state == PAUSED and self.pause_cause == PAUSE_USER:
            self.pause_cause = PAUSE_CONTACT
            self.state_ms = 0     # the probe starts after the usual off time
            return True
        return False

    def fault(self, code):
        """Called by the controller after the safety monitor latched `code`."""
        if self.state != FAULT:
            self.fault_code = code
            self.end_reason = END_FAULT
            self._go(FAULT)

    def reset(self):
        """Back to IDLE from DONE or FAULT (the controller clears the safety latch)."""
        if self.state == DONE or self.state == FAULT:
            self.state = IDLE
            self._clear()

    # ---- one control step -----------------------------------------------------
    def update(self, dt_ms, i_ua, v_mv, limited, flow_ua=-1):
        """One step. `limited`: the regulator cannot reach the setpoint (compliance);
        `flow_ua`: what the source delivers there (regulator.flow_ua: at a rail, the
        rail's current, not lowered by the command), the measured current if < 0."""
        s = self.state
        if s == IDLE or s == DONE or s == FAULT:
            return     # no clock here: a counter growing for weeks would become a bigint
        self.state_ms += dt_ms
        self.i_ua = i_ua
        if self.enable and i_ua > 0:
            self._charge.add(i_ua, dt_ms)
        if s == TREAT:
            if i_ua > self.i_max_ua:
                self.i_max_ua = i_ua
            if self.i_min_ua == 0 or i_ua < self.i_min_ua:
                self.i_min_ua = i_ua
        if s == WAIT_CONTACT:
            self._wait_contact(dt_ms, i_ua, v_mv)
        elif s == PAUSED:
            self._paused(dt_ms, i_ua, v_mv)
        elif s == RAMP_DOWN:
            if self._open(i_ua, v_mv) or self.state_ms > self._down_timeout_ms \
                    or self._ramp_down(dt_ms):
                if self._pausing:
                    self._pausing = False
                    self._pause(PAUSE_USER)
                else:
                    self._end(self.end_reason or END_COMPLETED)
        else:
            self._treating(s, dt_ms, i_ua, v_mv, limited, i_ua if flow_ua < 0 else flow_ua)

    def _treating(self, s, dt_ms, i_ua, v_mv, limited, flow_ua):
        elapsed = self.elapsed_ms + dt_ms
        self.elapsed_ms = elapsed
        if s == REVERSE and self._phase != _REV_DOWN:
            self._reverse_off(dt_ms, i_ua, v_mv)
            return
        if i_ua < OPEN_UA and v_mv >= self._open_mv:      # self._open(), written out
            self._pause(PAUSE_CONTACT)
            return
        charge = self._charge
        if elapsed >= self.duration_ms:
            # dose mode: the longest allowed time ran out before the dose was delivered
            self.end_reason = END_DOSE_SHORT if charge.dose_uamin else END_COMPLETED
            self._go(RAMP_DOWN)
            return
        dose = charge.dose_uamin   # the exact check (~60 µs on an RP2040) only near the dose
        if dose and dose - charge.uamin <= charge.near_uamin and \
                charge.reached(self._ramp.down_uams()):
            self.end_reason = END_DOSE
            self._go(RAMP_DOWN)
            return
        if s == REVERSE:   # phase DOWN: ramp to zero, then the dead time
            if self._ramp_down(dt_ms):
                self._phase = _REV_DEAD
                self.state_ms = 0
                self.enable = False
                self._ramp.zero()
                self.sp_ua = 0
            return
        tgt = self.target_ua
        sp = self.sp_ua
        # density relative to the target; while a lowered target is ramped to, to the
        # setpoint (the current above the new target was the old target's)
        if self._lift.lifted(i_ua, v_mv, tgt if tgt >= sp else sp,
                             s == TREAT or i_ua >= tgt >> 1):
            self._pause(PAUSE_LIFT)
            return
        r = self._ramp
        there = r.toward(dt_ms, self.target_ua, limited, flow_ua)
        self.sp_ua = r.ua
        if s == RAMP_UP and there:
            self._go(TREAT)     # the ramp is over even if the load holds the current lower
        elif s == TREAT and self.profile.reverse and not self._reversed \
                and elapsed >= self.duration_ms >> 1:
            self._reversed = True
            self._phase = _REV_DOWN
            self._go(REVERSE)

    def _reverse_off(self, dt_ms, i_ua, v_mv):
        """REVERSE after the ramp down: dead time, flip (output off), probe, re-ramp."""
        if self._phase == _REV_DEAD:
            if self.state_ms >= DEAD_TIME_MS:
                self.polarity ^= 1       # applied by the controller only while disabled
                self._phase = _REV_PROBE
                self.state_ms = 0
                self._prober.restart()
            return
        if self.state_ms < DEAD_TIME_MS // 5:
            return                       # let the flip settle before probing
        if self._probe(dt_ms, i_ua, v_mv):
            self._r_ref = self.r_probe
            self._lift.reset()           # the new polarity reads ~20 % higher: new baseline
            self._lift.set_ref()
            self._start_ramp()
        elif self.state_ms > REVERSE_PROBE_MS:
            self._pause(PAUSE_CONTACT)

    def _wait_contact(self, dt_ms, i_ua, v_mv):
        if self.state_ms > CONTACT_TIMEOUT_MS:
            self._end(END_NO_CONTACT)
            return
        if self.state_ms < PAUSE_OFF_MS:
            return     # output off first: the monitor sees a disabled, quiet output
        if self._probe(dt_ms, i_ua, v_mv):
            self._r_ref = self.r_probe
            self._lift.set_ref()
            self._start_ramp()

    def _paused(self, dt_ms, i_ua, v_mv):
        self.pause_ms += dt_ms
        self._paused_ms += dt_ms
        if self._paused_ms > PAUSE_LIMIT_MS:
            self._end(END_PAUSE_TIMEOUT)
            return
        if self.pause_cause == PAUSE_USER or self.state_ms < PAUSE_OFF_MS:
            return         # output off; a user pause waits for resume()
        if self._probe(dt_ms, i_ua, v_mv):
            if self.pause_cause == PAUSE_LIFT:
                # closed is not enough: the area must be back (the probe's load near
                # its value with the hands in), or the current would crowd onto the
                # lifted hand's skin (lift.area_back)
                if not self._lift.area_back(self.r_probe, self._r_ref):
                    return
            else:
                self._r_ref = self.r_probe
                self._lift.set_ref()
            self._start_ramp()

    # ---- helpers --------------------------------------------------------------
    def _go(self, state):
        self.state = state
        self.state_ms = 0
        self._prober.restart()
        if state == WAIT_CONTACT or state == PAUSED or state == DONE or state == FAULT:
            self.enable = False
            self.sp_ua = 0
            self._ramp.zero()
        elif state == RAMP_DOWN:
            # the ramp's own time from here (a target raised above the profile's ramps
            # down longer than ramp_down_s) and the grace
            self._down_timeout_ms = self._ramp.left_ms() + RAMP_DOWN_GRACE_MS

    def _end(self, reason):
        self.end_reason = reason
        self._go(DONE)

    def _pause(self, cause):
        self.pauses += 1
        self.pause_cause = cause
        self._paused_ms = 0      # this pause's length (state_ms restarts on resume)
        self._go(PAUSED)

    def _start_ramp(self):
        """Ramp from zero (the first ramp, after a pause, after a reversal)."""
        self._ramp.start(PROBE_UA)
        self.sp_ua = PROBE_UA
        self.enable = True
        self._lift.rearm()       # the baseline stays (reset: a new session, a reversal)
        self._go(RAMP_UP)

    def _ramp_down(self, dt_ms):
        """One step of a ramp down; True once it reached the end level (cut there)."""
        r = self._ramp
        done = r.down(dt_ms)
        self.sp_ua = r.ua
        return done

    def _open(self, i_ua, v_mv):
        return i_ua < OPEN_UA and v_mv >= self._open_mv

    def _probe(self, dt_ms, i_ua, v_mv):
        """Drive the contact probe this step; True once it saw a closed circuit."""
        p = self._prober
        done = p.step(dt_ms, i_ua, v_mv, self.enable)
        self.enable = p.enable
        self.sp_ua = p.sp_ua
        if done:
            self.r_probe = p.r_probe
        return done
