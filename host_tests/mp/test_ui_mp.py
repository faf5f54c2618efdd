"""firmware/ui.py on the sim board's stand-in buttons, LED and buzzer, driving a real App
and Controller (protorig.Rig) in virtual time: debounce, start (hold) and stop (press),
up/down through the `adjust` command, the LED pattern per state, the tunes (start,
refused, contact lost, fault alarm) and the three beeps before a ramp-down ends, a board
without a UI, and no garbage per poll.

MicroPython-compatible: run by mptest through host_tests/test_ui.py (CPython, unix, wasm).
"""

import clock
import main
import mptest
import records
import session as sm
import sim
import ui
from protorig import Rig

PERIOD_MS = 5
MAX_UA = 12000


def rx():
    """The factory prescription, quicker (10 s up, 5 s down) and capped at MAX_UA."""
    d = dict(records.RX_FACTORY)
    d.update({"target_ua": 10000, "duration_s": 300, "ramp_up_s": 10, "ramp_down_s": 5})
    if "max_target_ua" in d:                             # prescription format 1
        d["max_target_ua"] = MAX_UA
    else:                                                # format 2: a cap per profile
        d[records.cap_field(d["profile"])] = MAX_UA
    return d


class Dev:
    """Rig + the sim board's UI hardware + ui.Ui, stepped as main's loop does."""

    def __init__(self, with_rx=True, ui_hw=True, in_app=False, **kw):
        """`in_app`: the UI polled by the app's poll (app.ui_poll), as main wires it."""
        self.rig = Rig(**kw)
        if with_rx:
            self.rig.store.rx.save(rx())     # (too long for one protocol line)
        self.hw = sim.build_ui() if ui_hw is True else ui_hw
        self.clock = self.rig.app.clock      # what main gives the UI
        self.ui = ui.Ui(self.hw, self.rig.app, self.clock.ms)
        self.in_app = in_app
        if in_app:
            self.rig.app.ui_poll = self.ui.poll
        self.tones = []          # (ms, pattern) each time a new tune starts
        self.led_edges = []      # (ms, level) each time the LED changes
        self._plays = self.ui._buz.plays
        self._led = None

    def ms(self):
        return self.clock.ms

    def step(self, n=1):
        rig = self.rig
        u = self.ui
        hw = self.hw
        for _ in range(n):
            rig.step()                       # the app's poll updates the clock
            if not self.in_app:
                u.poll(self.clock.ms)
            n = u._buz.plays
            if n != self._plays:
                self._plays = n
                self.tones.append((self.clock.ms, u.tone))
            led = getattr(hw, "led", None)
            if led is not None and led.level != self._led:
                self._led = led.level
                self.led_edges.append((self.clock.ms, self._led))

    def wait(self, ms):
        self.step(ms // PERIOD_MS)

    def until(self, state, max_s):
        for _ in range(max_s * 1000 // PERIOD_MS):
            if self.rig.ctrl.session.state == state:
                return True
            self.step()
        return self.rig.ctrl.session.state == state

    def state(self):
        return self.rig.ctrl.session.state

    def hold_start(self, ms=1100):
        self.hw.btn_start.press()
        self.wait(ms)
        self.hw.btn_start.release()
        self.wait(50)

    def tap(self, btn, ms=100):
        btn.press()
        self.wait(ms)
        btn.release()
        self.wait(50)

    def treating(self):
        self.hold_start()
        assert self.until(sm.TREAT, 30), sm.NAMES[self.state()]

    def tunes(self, pattern):
        return [t for (t, p) in self.tones if p is pattern]


def _has_adjust(dev):
    if "adjust" not in dev.rig.app.commands.table:
        raise mptest.Skip("the adjust command is not in commands.py yet")


# ---- buttons ---------------------------------------------------------------------------

class _Pin:
    def __init__(self):
        self.level = 1

    def value(self):
        return self.level


def test_debounce_needs_30ms_stable():
    pin = _Pin()
    b = ui._Button(pin, 0)
    events = []
    # contact bounce: the level flips every 5 ms for 25 ms, then stays pressed
    for t in range(0, 200, 5):
        if t < 25:
            pin.level = 0 if (t // 5) % 2 == 0 else 1
        else:
            pin.level = 0
        e = b.update(t)
        if e:
            events.append((t, e))
    assert events == [(20 + ui.DEBOUNCE_MS, 1)], events    # 20: the last bounce
    # a 20 ms glitch of release is no release
    for t in range(200, 220, 5):
        pin.level = 1
        assert b.update(t) == 0
    for t in range(220, 400, 5):
        pin.level = 0
        assert b.update(t) == 0
    # a real release
    events = []
    for t in range(400, 500, 5):
        pin.level = 1
        e = b.update(t)
        if e:
            events.append((t, e))
    assert events == [(400 + ui.DEBOUNCE_MS, -1)], events


def test_short_press_does_not_start_a_hold_does():
    d = Dev()
    d.tap(d.hw.btn_start, 600)
    d.wait(2000)
    assert d.state() == sm.IDLE and not d.ui.refused
    d.hw.btn_start.press()
    d.wait(900)
    assert d.state() == sm.IDLE
    d.wait(200)          # 1 s after the debounced press
    assert d.state() == sm.WAIT_CONTACT
    t0 = d.tunes(ui.TONE_START)
    assert len(t0) == 1, d.tones
    d.wait(3000)         # still held: no second action (no stop)
    d.hw.btn_start.release()
    d.wait(100)
    assert d.state() in (sm.WAIT_CONTACT, sm.RAMP_UP), sm.NAMES[d.state()]
    assert d.until(sm.TREAT, 30)


def test_a_press_stops_at_once_in_every_running_state():
    d = Dev()
    d.treating()
    d.hw.btn_start.press()
    t_press = d.ms()
    for _ in range(20):
        d.step()
        if d.state() != sm.TREAT:
            break
    assert d.state() == sm.RAMP_DOWN and d.rig.ctrl.session.end_reason == sm.END_STOPPED
    assert d.ms() - t_press <= ui.DEBOUNCE_MS + 2 * PERIOD_MS, d.ms() - t_press
    assert d.tunes(ui.TONE_STOPPED)
    d.wait(3000)         # held on: nothing else happens
    d.hw.btn_start.release()
    assert d.until(sm.DONE, 10)
    d.wait(2000)
    assert d.state() == sm.DONE          # the stop press did not turn into a start

    # while waiting for contact, while ramping up, while paused by the user
    d = Dev()
    d.rig.bench.plant.contact = False
    d.hold_start()
    assert d.state() == sm.WAIT_CONTACT
    d.tap(d.hw.btn_start)
    assert d.state() == sm.DONE and d.rig.ctrl.session.end_reason == sm.END_STOPPED
    d = Dev()
    d.hold_start()
    assert d.until(sm.RAMP_UP, 5)
    d.wait(2000)
    d.tap(d.hw.btn_start)
    assert d.state() == sm.RAMP_DOWN
    d = Dev()
    d.treating()
    d.rig.ok("pause")
    assert d.until(sm.PAUSED, 10)
    d.tap(d.hw.btn_start)
    assert d.state() == sm.DONE and d.rig.ctrl.session.end_reason == sm.END_STOPPED


def test_stop_stops_even_when_the_command_path_fails():
    d = Dev()
    d.treating()

    def broken(cmd, fields):
        raise RuntimeError("a bug in the command path")
    d.ui._handle = broken
    d.tap(d.hw.btn_start)
    assert d.state() == sm.RAMP_DOWN and d.ui.internal == 1
    assert d.tunes(ui.TONE_STOPPED)      # the stop's tune wins over the error beep


def test_refused_start_plays_the_error_beep_and_changes_nothing():
    d = Dev(with_rx=False, cal=False)         # no calibration: start is refused (E_DENIED)
    before = d.rig.snapshot()
    d.hold_start()
    assert d.state() == sm.IDLE and d.rig.snapshot() == before
    assert d.ui.refused == 1 and d.ui.last_error == "E_DENIED" and d.ui.internal == 0
    assert len(d.tunes(ui.TONE_ERROR)) == 1 and not d.tunes(ui.TONE_START)
    # the error tune really sounds on the buzzer, then it is silent
    t = d.tunes(ui.TONE_ERROR)[0]
    assert t >= 1000
    d.wait(1000)
    assert d.hw.buzzer.duty == 0 and d.ui.tone is None


def test_up_and_down_adjust_through_the_command():
    d = Dev()
    _has_adjust(d)
    d.treating()
    ses = d.rig.ctrl.session
    assert ses.target_ua == 10000
    d.tap(d.hw.btn_up)
    assert ses.target_ua == 11000, ses.target_ua
    d.tap(d.hw.btn_up)
    assert ses.target_ua == 12000
    d.tap(d.hw.btn_up)                   # above the prescription's 12 mA: refused
    assert ses.target_ua == 12000 and d.ui.refused == 1 and d.tunes(ui.TONE_ERROR)
    for want in (11000, 10000, 9000, 8000, 7000, 6000, 5000, 4500, 4000):
        d.tap(d.hw.btn_down)
        assert ses.target_ua == want, (ses.target_ua, want)
    d.tap(d.hw.btn_up)
    assert ses.target_ua == 4500
    d.hw.btn_start.press()               # and stop still stops at once
    d.wait(50)
    assert d.state() == sm.RAMP_DOWN


def test_buttons_act_in_a_heap_locked_session():
    """As on a board, the app polls the UI inside its own poll, and a session's polls run
    with the heap locked (lock_polls): up, down and stop still act (the UI unlocks for a
    command: app.release), and the polls between presses ran locked (where MicroPython
    locks the heap: an allocation there would have raised)."""
    d = Dev(in_app=True, lock_polls=True)
    _has_adjust(d)
    d.treating()
    app = d.rig.app
    ses = d.rig.ctrl.session
    locked = app.locked_polls
    d.tap(d.hw.btn_up)
    assert ses.target_ua == 11000, ses.target_ua
    d.tap(d.hw.btn_down)
    d.tap(d.hw.btn_down)
    assert ses.target_ua == 9000, ses.target_ua
    d.hw.btn_start.press()
    d.wait(50)
    assert d.state() == sm.RAMP_DOWN and ses.end_reason == sm.END_STOPPED
    d.hw.btn_start.release()
    assert d.until(sm.DONE, 30)
    assert d.ui.internal == 0 and d.rig.ctrl.safety.fault == 0
    if mptest.is_micropython():
        assert app.locked_polls - locked >= 100, app.locked_polls - locked
    else:
        assert app.locked_polls == 0


class _Flood:
    """A host that floods the input with `status` lines, 8 bytes a read, nothing
    allocated per read."""

    def __init__(self):
        self.line = b'{"id":1,"cmd":"status"}\n'
        self.pos = 0

    def readinto(self, buf):
        line = self.line
        end = len(line)
        n = 0
        while n < 8 and n < len(buf):
            buf[n] = line[self.pos]
            self.pos += 1
            if self.pos == end:
                self.pos = 0
            n += 1
        return n


def test_the_stop_button_acts_at_once_while_a_host_floods_the_input():
    """The app skips the UI in a poll that sends telemetry, parses or answers a line (its
    costliest work): with a host flooding the input with `status` and telemetry at its
    top rate (50 Hz), the stop button still stops a locked session within the debounce
    and five periods (at most three polls in a row skip the UI), and the host's lines
    are answered."""
    d = Dev(in_app=True, lock_polls=True, reader=_Flood())
    app = d.rig.app
    proto = app.proto
    count = [0]

    def sink(data, n=0):        # consumed, nothing kept (a kept line would allocate)
        count[0] += 1
    proto.write = sink
    proto.write_n = sink
    d.treating()
    app.set_telemetry(50)
    lines = proto.lines
    d.wait(300)
    assert proto.lines - lines >= 2, proto.lines - lines
    d.hw.btn_start.press()
    t_press = d.ms()
    for _ in range(30):
        d.step()
        if d.state() != sm.TREAT:
            break
    assert d.state() == sm.RAMP_DOWN and d.rig.ctrl.session.end_reason == sm.END_STOPPED
    assert d.ms() - t_press <= ui.DEBOUNCE_MS + 5 * PERIOD_MS, d.ms() - t_press
    assert proto.busy_lines == 0 and proto.write_errors == 0 and d.ui.internal == 0
    assert app.tel_sent > 10
    d.hw.btn_start.release()


def test_up_and_down_outside_a_session_beep_and_do_nothing():
    d = Dev()
    before = d.rig.snapshot()
    d.tap(d.hw.btn_up)
    d.tap(d.hw.btn_down)
    after = d.rig.snapshot()
    assert after == before, [(i, x, y) for i, (x, y) in enumerate(zip(before, after)) if x != y]
    assert d.ui.refused == 2
    assert len(d.tunes(ui.TONE_ERROR)) == 2


def test_step_sizes():
    assert ui.step_ua(10000, True) == 11000 and ui.step_ua(10000, False) == 9000
    assert ui.step_ua(5000, True) == 6000 and ui.step_ua(5000, False) == 4500
    assert ui.step_ua(4500, True) == 5000 and ui.step_ua(1000, False) == 500


def test_buttons_held_at_power_up_are_ignored_and_read_as_the_service_button():
    hw = sim.build_ui()
    assert ui.service_held(hw) is False
    hw.btn_up.press()
    assert ui.service_held(hw) is False
    hw.btn_down.press()
    hw.btn_start.press()
    assert ui.service_held(hw) is True
    d = Dev(ui_hw=hw)
    d.wait(3000)
    assert d.state() == sm.IDLE and d.ui.refused == 0 and not d.tones
    hw.btn_start.release()
    hw.btn_up.release()
    hw.btn_down.release()
    d.wait(100)
    d.tap(hw.btn_up)                     # a new press counts
    assert d.ui.refused == 1


# ---- LED -------------------------------------------------------------------------------

def _on_ms(d, ms):
    """ms the LED is on over the next `ms`."""
    on = 0
    for _ in range(ms // PERIOD_MS):
        d.step()
        on += d.hw.led.level * PERIOD_MS
    return on


def test_led_pattern_per_state():
    assert ui.led_pattern(sm.IDLE) is ui.LED_SLOW
    assert ui.led_pattern(sm.WAIT_CONTACT) is ui.LED_FAST
    for st in (sm.RAMP_UP, sm.TREAT, sm.REVERSE):
        assert ui.led_pattern(st) is ui.LED_ON
    assert ui.led_pattern(sm.RAMP_DOWN) is ui.LED_HALF
    assert ui.led_pattern(sm.PAUSED) is ui.LED_DOUBLE
    assert ui.led_pattern(sm.DONE) is ui.LED_DONE
    assert ui.led_pattern(sm.FAULT) is ui.LED_RAPID
    for st in range(len(sm.NAMES)):
        p = ui.led_pattern(st)
        assert len(p) % 2 == 0 and p[0] == 1


def test_led_follows_the_session():
    d = Dev()
    d.wait(100)
    on = _on_ms(d, 4000)                 # IDLE: 100 ms every 2 s
    assert 190 <= on <= 215, on
    d.rig.bench.plant.contact = False
    d.hold_start()
    on = _on_ms(d, 2000)                 # WAIT_CONTACT: 250 / 250
    assert 950 <= on <= 1050, on
    d.rig.bench.plant.contact = True
    assert d.until(sm.TREAT, 30)
    assert _on_ms(d, 2000) == 2000       # TREAT: steady
    d.rig.ok("pause")
    assert d.until(sm.PAUSED, 10)
    d.wait(50)
    n0 = len(d.led_edges)
    d.wait(1500)                         # PAUSED: two flashes in 1.5 s
    ons = [e for e in d.led_edges[n0:] if e[1] == 1]
    assert len(ons) == 2, d.led_edges[n0:]
    d.rig.ok("stop")
    assert d.state() == sm.DONE
    on = _on_ms(d, 4000)                 # DONE: on but 100 ms every 2 s
    assert 3780 <= on <= 3810, on
    # FAULT: a short circuit; 100 / 100
    d.rig.ok("reset")
    d.treating()
    d.rig.bench.plant.short = True
    assert d.until(sm.FAULT, 2)
    d.step()
    n0 = len(d.led_edges)
    d.wait(1000)
    assert 9 <= len(d.led_edges) - n0 <= 11, d.led_edges[n0:]


# ---- tunes -----------------------------------------------------------------------------

def _ticks_before_done(d):
    assert d.until(sm.DONE, 30)
    t_done = d.ms()
    return t_done, [t_done - t for t in d.tunes(ui.TONE_TICK)]


def test_three_beeps_in_the_last_three_seconds_of_a_ramp_down():
    d = Dev()
    d.treating()
    d.wait(1000)
    d.rig.ok("stop")                     # from the host: the same tunes
    assert d.state() == sm.RAMP_DOWN
    t_done, before = _ticks_before_done(d)
    assert len(before) == 3, (t_done, d.tones)
    for got, want in zip(before, (3000, 2000, 1000)):
        assert want - 2 * PERIOD_MS <= got <= want + PERIOD_MS, before
    assert d.tunes(ui.TONE_STOPPED) and d.tunes(ui.TONE_DONE)[-1] >= t_done - PERIOD_MS


def test_a_short_ramp_down_beeps_only_the_marks_ahead():
    d = Dev()
    d.hold_start()
    assert d.until(sm.RAMP_UP, 5)
    d.wait(4000)                         # about 4.5 mA of 10: about 2.3 s to ramp down
    ses = d.rig.ctrl.session
    d.hw.btn_start.press()
    for _ in range(20):
        d.step()
        if ses.state != sm.RAMP_UP:
            break
    assert ses.state == sm.RAMP_DOWN
    left = d.ui._ramp_left()             # as the UI saw it entering RAMP_DOWN
    d.hw.btn_start.release()
    want = [m for m in (3000, 2000, 1000) if m < left]
    assert len(want) < 3, left
    t_done, before = _ticks_before_done(d)
    assert len(before) == len(want), (left, before)
    for got, m in zip(before, want):
        assert m - 2 * PERIOD_MS <= got <= m + PERIOD_MS, (left, before)


def test_contact_lost_and_fault_alarm():
    d = Dev()
    d.treating()
    d.rig.bench.plant.contact = False
    assert d.until(sm.PAUSED, 2)
    d.step()
    assert d.ui.tone is ui.TONE_CONTACT
    d.rig.bench.plant.contact = True
    assert d.until(sm.TREAT, 30)
    d.rig.bench.plant.short = True
    assert d.until(sm.FAULT, 2)
    d.step()
    assert d.ui.tone is ui.TONE_ALARM
    d.hold_start()                       # refused in FAULT (E_STATE): the alarm goes on
    assert d.ui.last_error == "E_STATE" and d.ui.tone is ui.TONE_ALARM
    d.rig.bench.plant.short = False
    d.rig.ok("reset")
    d.step()
    assert d.ui.tone is None and d.hw.buzzer.duty == 0 and d.state() == sm.IDLE


def test_no_contact_end_is_an_error_tune():
    d = Dev()
    d.rig.bench.plant.contact = False
    d.hold_start()
    assert d.until(sm.DONE, 125)
    d.step()
    assert d.rig.ctrl.session.end_reason == sm.END_NO_CONTACT and d.ui.tone is ui.TONE_ERROR


# ---- boards without (all of) it ----------------------------------------------------------

class _OnlyStart:
    def __init__(self):
        self.btn_start = sim._Button()


def test_board_without_ui():
    assert ui.service_held(None) is None
    assert ui.service_held(_OnlyStart()) is None
    d = Dev(ui_hw=None)
    d.wait(500)
    d.rig.ok("start")
    assert d.until(sm.TREAT, 30)
    d = Dev(ui_hw=_OnlyStart())          # a start/stop button only, no LED, no buzzer
    d.hold_start()
    assert d.until(sm.TREAT, 30)
    d.tap(d.hw.btn_start)
    assert d.state() == sm.RAMP_DOWN


def test_ms_clock_folds_microseconds():
    t = [0]

    def ticks():
        return t[0]
    c = clock.Clock(ticks)
    for _ in range(1000):
        t[0] += 1700
        c.update()
    assert c.ms == 1700
    for _ in range(3):
        t[0] += 333
        c.update()
    assert c.ms == 1700
    t[0] += 1
    c.update()
    assert c.ms == 1701 and c.uptime_s == 1
    # the count wraps at 2**29; ms_diff() sees across the wrap
    c.ms = (1 << 29) - 3
    t[0] += 5000
    c.update()
    assert c.ms == 2
    assert clock.ms_diff(2, (1 << 29) - 3) == 5 and clock.ms_diff((1 << 29) - 3, 2) == -5
    assert clock.ms_diff(1000, 0) == 1000
    assert clock.ms_add((1 << 29) - 3, 5) == 2 and clock.ms_add(7, 1000) == 1007


def test_the_epochs_small_parts_follow_the_clock_across_their_carry():
    """epoch_hi * 100000 + epoch_lo is epoch() at every update (status writes the parts:
    epoch seconds are a heap int on a 32-bit board), across lo's carry and big steps."""
    from ticks import ticks_add
    t = [0]

    def ticks():
        return t[0]
    c = clock.Clock(ticks)
    c.set_epoch(1796099990)                  # lo 99990: carries in 10 s
    for step_us in (700000, 1000000, 3000000, 250000000):
        for _ in range(40):
            t[0] = ticks_add(t[0], step_us)  # wraps at the port's period
            c.update()
            assert c.epoch_hi * 100000 + c.epoch_lo == c.epoch(), (step_us, c.epoch())
            assert 0 <= c.epoch_lo < 100000
    assert c.epoch() > 1796100000 + 10000
    c.set_epoch(5)                           # a set moves both parts
    assert (c.epoch_hi, c.epoch_lo) == (0, 5)


def test_patterns_and_buttons_across_the_wrap():
    d = Dev()
    base = (1 << 29) - 1000
    hw = d.hw
    u = ui.Ui(hw, d.rig.app, base)
    edges = []
    hw.btn_start.press()
    for k in range(0, 2500, 5):          # the hold to start spans the wrap
        now = (base + k) & ((1 << 29) - 1)
        d.rig.step()
        u.poll(now)
        if not edges or edges[-1][1] != hw.led.level:
            edges.append((k, hw.led.level))
    assert d.state() != sm.IDLE
    started = [k for (k, lvl) in edges if lvl == 1]
    assert started[:2] == [0, 1030], edges    # IDLE flash at 0, then steady on the start


# ---- no garbage --------------------------------------------------------------------------

def test_no_garbage_per_poll():
    if not mptest.is_micropython():
        raise mptest.Skip("heap accounting needs MicroPython")
    d = Dev()
    d.treating()
    d.rig.app.ui_poll = d.ui.poll        # main.loop_poll's wiring
    poll = d.rig.app.poll
    step = d.rig.bench.step
    worst = 0
    for _ in range(400):                 # TREAT, LED steady: main's whole poll
        step()
        a = mptest.allocated_by(poll)
        if a > worst:
            worst = a
    assert worst == 0, worst
    d.rig.ok("stop")                     # ramp-down: the countdown and LED blinking
    worst = 0
    while d.state() == sm.RAMP_DOWN:
        step()
        d.clock.update()                 # the app's poll does this on the board
        a = mptest.allocated_by(d.ui.poll, d.clock.ms)
        if a > worst:
            worst = a
    assert worst == 0, worst


def test_led_pattern_table_follows_the_session_states():
    want = {sm.IDLE: ui.LED_SLOW, sm.WAIT_CONTACT: ui.LED_FAST, sm.RAMP_UP: ui.LED_ON,
            sm.TREAT: ui.LED_ON, sm.REVERSE: ui.LED_ON, sm.RAMP_DOWN: ui.LED_HALF,
            sm.DONE: ui.LED_DONE, sm.PAUSED: ui.LED_DOUBLE, sm.FAULT: ui.LED_RAPID}
    assert len(ui.LED_BY_STATE) == len(sm.NAMES) == len(want)
    for state in want:
        assert ui.led_pattern(state) is want[state], sm.NAMES[state]
    assert ui.led_pattern(len(sm.NAMES)) is ui.LED_ON
