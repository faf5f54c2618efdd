"""Drive the controller on the sim board through every state and measure each tick's heap use.

Shared by test_heap_mp.py and tools/bench_mpy.py. MicroPython-compatible (CPython too, but
heap accounting needs MicroPython's `gc.mem_alloc` / `micropython.heap_lock`).

walk(measure) plays a fixed script of events, state-driven so that it does not depend on
exact timings: hands out (WAIT_CONTACT probing an open circuit), hands in, contact lost
during RAMP_UP (PAUSED, probing open then closed), re-ramp, TREAT (compliance limited with
the default plant at 15 mA), REVERSE (ramp down, dead time, flip, probe), TREAT, stop
(RAMP_DOWN), DONE, reset (IDLE), a second start and a short circuit (FAULT). The plant is
stepped outside the measured region; only `ctrl.tick(now)` is measured. The session's
length is cut to 40 s after start (the profile cannot ask for less than 300 s) so that
REVERSE comes after 20 s of treatment: the firmware's code paths are the same.

measure(ctrl, now_us) runs ctrl.tick(now_us) and returns the bytes it allocated.
On the WebAssembly port gc.collect() only marks a collection as pending (the port collects
when control returns to JavaScript, i.e. after the whole script), so its heap grows with
all the garbage of the run and gc.mem_alloc(), which scans the heap, gets slow (~1 ms per
call at 8 MB): there, measure with mem_alloc every N-th tick (walk(every=N)) and rely on
heap_lock, which is cheap, for every tick.
Each tick is labelled NAME/on or NAME/off: the session state the tick started in and
whether the output was enabled after it.
"""

import gc

import scenario
from ticks import ticks_add
import session as sm
from profiles import Profile

REQUIRED = ("IDLE/off", "WAIT_CONTACT/off", "WAIT_CONTACT/on", "RAMP_UP/on", "TREAT/on",
            "REVERSE/on", "REVERSE/off", "PAUSED/off", "PAUSED/on", "RAMP_DOWN/on",
            "DONE/off", "FAULT/off")
SESSION_MS = 60000


_count = [0]


def measure_mem_alloc(ctrl, now):
    # The difference of gc.mem_alloc() is exact while the collector cannot run (disabled).
    # A full collection before every tick would be cleaner but takes ~15 ms on the wasm
    # port's large heap, so collect only every 256 ticks (and the plant's garbage is
    # collected automatically outside the measured region).
    _count[0] += 1
    if _count[0] & 255 == 1:
        gc.collect()
    gc.disable()
    try:
        a = gc.mem_alloc()
        ctrl.tick(now)
        b = gc.mem_alloc()
    finally:
        gc.enable()
    return b - a


def measure_heap_lock(ctrl, now):
    """0, or the MemoryError that the first allocation raises propagates (with the line)."""
    import micropython
    micropython.heap_lock()
    try:
        ctrl.tick(now)
    finally:
        micropython.heap_unlock()
    return 0


class Coverage:
    def __init__(self):
        self.ticks = {}        # label -> ticks measured
        self.bytes = {}        # label -> bytes allocated in total
        self.worst = {}        # label -> most bytes in one tick
        self.transitions = 0   # ticks in which the session changed state
        self.measured_transitions = 0
        self.skipped = 0       # ticks run unmeasured (walk(every=N))
        self.limited = 0       # ticks with the regulator compliance limited
        self.states = []       # session states in order

    def add(self, label, n):
        self.ticks[label] = self.ticks.get(label, 0) + 1
        self.bytes[label] = self.bytes.get(label, 0) + n
        if n > self.worst.get(label, -1):
            self.worst[label] = n

    def total(self):
        t = 0
        for k in self.bytes:
            t += self.bytes[k]
        return t

    def missing(self):
        return [k for k in REQUIRED if k not in self.ticks]

    def report(self):
        lines = []
        for k in sorted(self.ticks):
            lines.append("%-18s ticks=%-6d bytes=%-7d worst=%d" % (
                k, self.ticks[k], self.bytes[k], self.worst[k]))
        return "\n".join(lines)


def walk(measure, noise_lsb=2.0, seed=7, every=1):
    """Play the script; measure every tick, or with every=N > 1 only each N-th tick, the
    first 100 ms of each state and the 20 ticks after each scripted event (the others
    run unmeasured)."""
    b = scenario.Bench(adc_noise_lsb=noise_lsb, seed=seed)
    ctrl = b.ctrl
    ses = ctrl.session
    plant = b.plant
    prof = Profile(target_ua=15000, duration_s=300, ramp_up_s=10, ramp_down_s=5, reverse=True)
    cov = Coverage()
    names = sm.NAMES
    phase = 0
    mark = 0              # step count at the last phase change
    k = 0
    plant.contact = False
    while True:
        assert k < 40000, "walk stuck in phase %d, state %s" % (phase, names[ses.state])
        st = ses.state
        # ---- the event script (between ticks, never measured) ----
        if phase == 0 and k >= 40:                       # IDLE for 0.2 s, then start
            ctrl.start(prof)
            ses.duration_ms = SESSION_MS
            phase, mark = 1, k
        elif phase == 1 and k - mark >= 200:             # probing an open circuit: 1 s
            plant.contact = True
            phase, mark = 2, k
        elif phase == 2 and st == sm.RAMP_UP and ses.state_ms >= 3000:
            plant.contact = False                        # hands out during the ramp
            phase, mark = 3, k
        elif phase == 3 and st == sm.PAUSED and ses.state_ms >= 1000:
            plant.contact = True
            phase, mark = 4, k
        elif phase == 4 and st == sm.REVERSE:
            phase, mark = 5, k
        elif phase == 5 and st == sm.TREAT:
            phase, mark = 6, k
        elif phase == 6 and k - mark >= 200:
            plant.lift_area = 0.2                        # one hand lifted: the density guard
            phase, mark = 61, k
        elif phase == 61 and st == sm.PAUSED and ses.state_ms >= 1000:
            plant.lift_area = 1.0                        # back: the probe sees the area back
            phase, mark = 62, k
        elif phase == 62 and st == sm.TREAT:
            phase, mark = 63, k
        elif phase == 63 and k - mark >= 200:
            ctrl.stop()
            phase, mark = 7, k
        elif phase == 7 and st == sm.DONE:
            phase, mark = 71, k
        elif phase == 71 and k - mark >= 100:
            ctrl.reset()
            phase, mark = 8, k
        elif phase == 8 and k - mark >= 40:
            ctrl.start(prof)
            phase, mark = 9, k
        elif phase == 9 and st == sm.RAMP_UP and ses.state_ms >= 1000:
            plant.short = True
            phase, mark = 10, k
        elif phase == 10 and st == sm.FAULT:
            phase, mark = 11, k
        elif phase == 11 and k - mark >= 40:
            phase = 12
            break
        # ---- the measured tick ----
        before = ses.state
        if every == 1 or k % every == 0 or ses.state_ms < 100 or k - mark < 20:
            n = measure(ctrl, b.now_us)
            cov.add(names[before] + ("/on" if ctrl.hal.enabled else "/off"), n)
            measured = True
        else:
            ctrl.tick(b.now_us)
            cov.skipped += 1
            measured = False
        if ses.state != before:
            cov.transitions += 1
            cov.states.append(ses.state)
            if measured:
                cov.measured_transitions += 1
        if ctrl.regulator.limited:
            cov.limited += 1
        # ---- the plant, outside the measured region ----
        plant.step(b.dt_s)
        b.now_us = ticks_add(b.now_us, b.period_us)
        k += 1
    return cov


# ---- the modes: pulsed, dose, set_target, calibration hold ------------------------------
MODES_REQUIRED = ("pulsed:WAIT_CONTACT/on", "pulsed:RAMP_UP/on", "pulsed:TREAT/on",
                  "pulsed:target_up", "pulsed:target_down", "pulsed:RAMP_DOWN/on",
                  "pulsed:DONE/off", "dose:RAMP_UP/on", "dose:TREAT/on", "dose:dose_end",
                  "dose:RAMP_DOWN/on", "dose:DONE/off", "cal:RAMP_UP/on", "cal:TREAT/on",
                  "cal:target_up", "cal:target_down", "cal:RAMP_DOWN/on")


def walk_modes(measure, noise_lsb=2.0, seed=7, every=1):
    """Three sessions on one bench, each measured tick labelled MODE:STATE/on|off (the
    ticks just after a set_target as MODE:target_up/target_down for 2 s, the tick in
    which dose mode starts its ramp down as dose:dose_end):
    pulsed (20 % duty, 4 mA average = 20 mA peak): ramp, TREAT, target up to 5 mA and
    down to 3 mA, stop, DONE (gate back to DC), reset; dose (4 mA, 1000 µA·min: the
    dose-triggered ramp down after ~15 s); calibration hold (open loop): 2 mA, target
    up to 5 mA, down to 3 mA, stop."""
    from profiles import MODE_PULSED, MODE_DOSE, MODE_CAL
    b = scenario.Bench(adc_noise_lsb=noise_lsb, seed=seed, skin_ohm=800.0)
    ctrl = b.ctrl
    ses = ctrl.session
    plant = b.plant
    plant.contact = True
    cov = Coverage()
    names = sm.NAMES
    runs = (("pulsed", Profile(target_ua=4000, duration_s=300, ramp_up_s=10, ramp_down_s=5,
                               mode=MODE_PULSED, pulse_hz=4300, duty_pct=20)),
            ("dose", Profile(target_ua=4000, duration_s=300, ramp_up_s=10, ramp_down_s=5,
                             mode=MODE_DOSE, dose_uamin=1000)),
            ("cal", Profile(target_ua=2000, duration_s=300, ramp_up_s=10, ramp_down_s=5,
                            mode=MODE_CAL)))
    k = 0
    for name, prof in runs:
        ctrl.start(prof)
        phase = 0
        mark = k
        tag_until = -1
        tag = ""
        while True:
            assert k < 200000, "walk_modes stuck: %s phase %d %s" % (name, phase, names[ses.state])
            st = ses.state
            if phase == 0 and st == sm.TREAT and ses.state_ms >= 500 and name != "dose":
                assert ctrl.set_target(prof.target_ua + 1000 if name != "cal" else 5000)
                phase, mark, tag, tag_until = 1, k, "target_up", k + 400
            elif phase == 1 and k - mark >= 3000:
                assert ctrl.set_target(3000)
                phase, mark, tag, tag_until = 2, k, "target_down", k + 400
            elif phase == 2 and k - mark >= 2000:
                ctrl.stop()
                phase = 3
            elif st == sm.DONE:
                break
            before = ses.state
            if k < tag_until:
                label = name + ":" + tag
            else:
                label = name + ":" + names[before] + ("/on" if ctrl.hal.enabled else "/off")
            near_dose = name == "dose" and ses.charge_uamin * 10 >= prof.dose_uamin * 8
            if every == 1 or k % every == 0 or ses.state_ms < 100 or k < tag_until \
                    or near_dose:
                n = measure(ctrl, b.now_us)
                if name == "dose" and before == sm.TREAT and ses.state == sm.RAMP_DOWN:
                    label = "dose:dose_end"
                cov.add(label, n)
            else:
                ctrl.tick(b.now_us)
                cov.skipped += 1
            if ses.state != before:
                cov.transitions += 1
                cov.states.append(ses.state)
            plant.step(b.dt_s)
            b.now_us = ticks_add(b.now_us, b.period_us)
            k += 1
        # DONE: one more measured tick (the gate returns to DC), then reset
        n = measure(ctrl, b.now_us)
        cov.add(name + ":DONE/off", n)
        plant.step(b.dt_s)
        b.now_us = ticks_add(b.now_us, b.period_us)
        k += 1
        plant.step(b.dt_s)              # applies a gate write of the last tick
        cov.gate_duty_after = plant.gate_duty
        ctrl.reset()
    cov.end_reason = ses.end_reason
    return cov


def missing_modes(cov):
    return [x for x in MODES_REQUIRED if x not in cov.ticks]
