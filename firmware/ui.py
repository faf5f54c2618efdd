"""Buttons, LED and buzzer on boards that have them (`board.build_ui()`).

`Ui(ui_hw, app).poll(now_ms)` runs in main's poll, after `app.poll()`. It never blocks
and, while no button changes, allocates nothing: buttons are plain attribute reads, the
LED and buzzer patterns are constant tuples played by index. `now_ms` is a wrapping ms
count: main passes the app clock's `ms` (clock.py, 2**29 period), and `time.ticks_ms()`
would do as well: times are only compared with `clock.ms_diff()`, modulo 2**29, which
divides every port's tick period, and every value stays a small int.

Buttons act through the host's command path, `app.commands.handle(cmd, fields)`, so
every prescription, state and permission check applies exactly as for the host; a
refused command (schema.Reject) plays the error beep and changes nothing.
  start/stop  while a session runs: a press (30 ms debounced) = "stop", at once, no hold:
              it is the patient's stop button. Otherwise: held 1 s = "start" (a bump or
              a brush does not start a session; the start tune confirms it).
  up / down   while a session runs: "adjust" to the target +/- 1 mA (0.5 mA steps at and
              below 5 mA), one step per press. Refused (outside the prescription, wrong
              state) -> error beep. Outside a session: error beep.
Every press does at most one thing: a button held since power-up (or since the press
that stopped a session) must be released before it counts again.
Service mode: up and down both held at power-up (`service_held()`, read once by main).

The LED shows the session state (LED_PATTERNS), the buzzer plays on state changes and
on refused buttons; see docs/boards.md ("Buttons, LED and buzzer").
"""

from micropython import const

import session as sm
from schema import Reject
from clock import ms_diff

DEBOUNCE_MS = const(30)      # a level must stay this long to count (contact bounce)
START_HOLD_MS = const(1000)  # start needs this long a hold; stop acts on the press
STEP_UA = const(1000)        # up/down step
FINE_UA = const(500)         # ... at and below FINE_BELOW_UA
FINE_BELOW_UA = const(5000)
COUNTDOWN_MS = const(3000)   # ramp-down countdown: a beep at 3, 2 and 1 s before the end
_DUTY = const(32768)         # buzzer PWM duty: a square wave
# ---- patterns: (level, ms, level, ms, ...); ms 0 = hold the level for good -----------
# LED levels are 0/1, the buzzer's are tones in Hz (0 = silent).
LED_ON = (1, 0)
LED_SLOW = (1, 100, 0, 1900)                      # IDLE: ready, a short flash every 2 s
LED_FAST = (1, 250, 0, 250)                       # WAIT_CONTACT: hands in the water
LED_HALF = (1, 500, 0, 500)                       # RAMP_DOWN: ending
LED_DOUBLE = (1, 150, 0, 150, 1, 150, 0, 1050)    # PAUSED
LED_DONE = (1, 1900, 0, 100)                      # DONE: on, a short gap every 2 s
LED_RAPID = (1, 100, 0, 100)                      # FAULT

TONE_START = (1500, 100, 0, 50, 2000, 100, 0, 50, 2600, 150)    # rising
TONE_STOPPED = (2600, 100, 0, 50, 2000, 100, 0, 50, 1500, 150)  # falling
TONE_DONE = (2000, 500)
TONE_CLICK = (3000, 30)                                         # a button was taken
TONE_ERROR = (400, 150, 0, 100, 400, 300)                       # refused
TONE_CONTACT = (1200, 250, 0, 100, 800, 400)                    # contact lost, paused
TONE_TICK = (1000, 120)                                         # ramp-down countdown
TONE_ALARM = (2800, 200, 0, 100, 2800, 200, 0, 100, 2800, 200, 0, 700)  # FAULT
ALARM_REPEAT = const(5)


# the LED pattern of each session state, indexed by the state's number (session.NAMES)
LED_BY_STATE = (LED_SLOW,      # IDLE: ready
                LED_FAST,      # WAIT_CONTACT: hands in the water
                LED_ON,        # RAMP_UP      \
                LED_ON,        # TREAT         } current may flow: steady
                LED_ON,        # REVERSE      /
                LED_HALF,      # RAMP_DOWN
                LED_DONE,      # DONE
                LED_DOUBLE,    # PAUSED
                LED_RAPID)     # FAULT


def led_pattern(state):
    """The LED pattern of a session state (anything unknown: steady, as for current)."""
    return LED_BY_STATE[state] if 0 <= state < len(LED_BY_STATE) else LED_ON


def step_ua(target, up):
    """The target one press of up/down asks for."""
    if up:
        return target + (FINE_UA if target < FINE_BELOW_UA else STEP_UA)
    return target - (FINE_UA if target <= FINE_BELOW_UA else STEP_UA)


def pressed(pin):
    """Buttons switch to GND against a pull-up: level 0 = pressed."""
    return pin is not None and pin.value() == 0


def service_held(ui_hw):
    """Read once at power-up: up and down both held. None if the board lacks either."""
    if ui_hw is None:
        return None
    up = getattr(ui_hw, "btn_up", None)
    down = getattr(ui_hw, "btn_down", None)
    if up is None or down is None:
        return None
    return pressed(up) and pressed(down)


class _Player:
    """Plays one pattern on one output; `out(level)` drives it."""

    def __init__(self, out):
        self._out = out
        self.pattern = None
        self._i = 0
        self._t = 0
        self._loops = 0          # plays left after this one; -1: forever
        self.plays = 0           # patterns started (tests count tunes with it)
        self.timed = False       # a pattern plays and its level has an end: update() acts

    def play(self, pattern, now, loops=1):
        """Start `pattern` now; `loops` plays (-1: until replaced)."""
        self.pattern = pattern
        self._i = 0
        self._t = now
        self._loops = loops - 1 if loops > 0 else -1
        self.plays += 1
        self.timed = pattern[1] != 0
        self._out(pattern[0])

    def stop(self):
        self.pattern = None
        self.timed = False
        self._out(0)

    def update(self, now):
        p = self.pattern
        if p is None:
            return
        ms = p[self._i + 1]
        if ms == 0 or ms_diff(now, self._t) < ms:
            return
        self._t = now
        i = self._i + 2
        if i >= len(p):
            if self._loops == 0:
                self.stop()
                return
            if self._loops > 0:
                self._loops -= 1
            i = 0
        self._i = i
        self.timed = p[i + 1] != 0
        self._out(p[i])


class _Button:
    """One debounced push button (None pin: absent, never pressed)."""

    def __init__(self, pin, now):
        self.pin = pin
        down = pressed(pin)
        self.down = down         # debounced level
        self._raw = down
        self._since = now        # when the raw level last changed
        self.t_down = now        # when the debounced press began
        self.used = down         # held at power-up: ignored until released

    def update(self, now):
        """1 on a debounced press, -1 on a debounced release, else 0."""
        pin = self.pin
        if pin is None:
            return 0
        raw = pin.value() == 0
        if raw != self._raw:
            self._raw = raw
            self._since = now
            return 0
        if raw == self.down or ms_diff(now, self._since) < DEBOUNCE_MS:
            return 0
        self.down = raw
        if raw:
            self.t_down = now
            self.used = False
            return 1
        return -1


class Ui:
    """The front panel: `poll(now_ms)` after every `app.poll()` (see the module doc)."""

    def __init__(self, ui_hw, app, now_ms=0):
        """`ui_hw`: the board's build_ui() object (any attribute may be None or absent);
        `app`: the App (its `commands.handle`, `session_active()`, `ctrl.session`)."""
        self.app = app
        self._handle = app.commands.handle
        ses = app.ctrl.session
        self._ses = ses
        self._ramp_left_ms = ses.ramp_left_ms           # bound once: no garbage per poll
        self.start_btn = _Button(getattr(ui_hw, "btn_start", None), now_ms)
        self.up_btn = _Button(getattr(ui_hw, "btn_up", None), now_ms)
        self.down_btn = _Button(getattr(ui_hw, "btn_down", None), now_ms)
        self.led = getattr(ui_hw, "led", None)
        self.buzzer = getattr(ui_hw, "buzzer", None)
        self._led = _Player(self._led_out)
        self._buz = _Player(self._buz_out)
        self.refused = 0         # buttons refused (error beep)
        self.last_error = None   # the last refusal's code
        self.internal = 0        # unexpected exceptions from a command (bugs)
        self._state = -1
        self._mark = 0           # next countdown mark (ms left in RAMP_DOWN), 0: none
        if self.buzzer is not None:
            self._buz_out(0)

    # ---- outputs ----------------------------------------------------------------------
    def _led_out(self, level):
        if self.led is not None:
            self.led.value(level)

    def _buz_out(self, hz):
        b = self.buzzer
        if b is None:
            return
        if hz:
            b.freq(hz)
            b.duty_u16(_DUTY)
        else:
            b.duty_u16(0)

    def beep(self, tone, now, loops=1):
        """Play a buzzer pattern; the FAULT alarm is not cut short by anything else."""
        if self._buz.pattern is TONE_ALARM and tone is not TONE_ALARM:
            return
        self._buz.play(tone, now, loops)

    @property
    def tone(self):
        """The buzzer pattern playing, or None."""
        return self._buz.pattern

    # ---- the poll ---------------------------------------------------------------------
    def poll(self, now):
        # Runs after every step (5 ms), so the quiet case (no button moving, no state
        # change, steady LED, silent buzzer) makes no call into the helpers below: each
        # is called only when a quick inline test says it would do something, and then
        # does exactly what an unconditional call would have done. A button's update()
        # is a no-op when it has no pin, or its pin reads the debounced level with no
        # change pending; a player's when it is not `timed`; _follow() when the state
        # is unchanged and no countdown mark is set.
        b = self.start_btn
        pin = b.pin
        e = 0
        if pin is not None and (b._raw != b.down or (pin.value() == 0) != b.down):
            e = b.update(now)
        if e > 0 or (b.down and not b.used):
            active = self.app.session_active()
            if e > 0 and active:
                b.used = True
                self._command("stop", now)
            elif b.down and not b.used and not active \
                    and ms_diff(now, b.t_down) >= START_HOLD_MS:
                b.used = True
                self._command("start", now)
        b = self.up_btn
        pin = b.pin
        if pin is not None and (b._raw != b.down or (pin.value() == 0) != b.down) \
                and b.update(now) > 0:
            self._adjust(True, now)
        b = self.down_btn
        pin = b.pin
        if pin is not None and (b._raw != b.down or (pin.value() == 0) != b.down) \
                and b.update(now) > 0:
            self._adjust(False, now)
        if self._mark or self._ses.state != self._state:
            self._follow(now)
        p = self._led
        if p.timed:
            p.update(now)
        p = self._buz
        if p.timed:
            p.update(now)

    def _command(self, cmd, now, target_ua=None):
        """`cmd` through the host's command path (with `target_ua` as its one field when
        given: adjust), with the heap unlocked if the poll holds it locked (app.release:
        a session's poll), and its fields built there."""
        relock = self.app.release()
        try:
            return self._act(cmd, {} if target_ua is None else {"target_ua": target_ua}, now)
        finally:
            if relock:
                self.app.relock()

    def _act(self, cmd, fields, now):
        try:
            self._handle(cmd, fields)
        except Reject as e:
            self.refused += 1
            self.last_error = e.code
            self.beep(TONE_ERROR, now)
            return False
        except Exception:        # a bug: keep the loop alive, and a stop still stops
            self.internal += 1
            if cmd == "stop":
                self.app.ctrl.stop()
            self.beep(TONE_ERROR, now)
            return False
        self.beep(TONE_CLICK, now)
        return True

    def _adjust(self, up, now):
        if not self.app.session_active():
            self.refused += 1
            self.last_error = "E_STATE"
            self.beep(TONE_ERROR, now)
            return
        self._command("adjust", now, step_ua(self._ses.target_ua, up))

    def _follow(self, now):
        """LED pattern and tunes on a state change; the ramp-down countdown."""
        ses = self._ses
        st = ses.state
        if st != self._state:
            old = self._state
            self._state = st
            self._led.play(led_pattern(st), now, -1)
            self._mark = 0
            if st == sm.WAIT_CONTACT and (old == sm.IDLE or old == sm.DONE):
                self.beep(TONE_START, now)
            elif st == sm.FAULT:
                self.beep(TONE_ALARM, now, ALARM_REPEAT)
            elif st == sm.PAUSED and ses.pause_cause != sm.PAUSE_USER:
                self.beep(TONE_CONTACT, now)
            elif st == sm.RAMP_DOWN:
                self._mark = self._first_mark(self._ramp_left())
                if ses.end_reason == sm.END_STOPPED:
                    self.beep(TONE_STOPPED, now)
            elif st == sm.DONE and old != -1:
                r = ses.end_reason
                if r == sm.END_COMPLETED or r == sm.END_STOPPED:
                    self.beep(TONE_DONE, now)     # current is off: hands may come out
                else:
                    self.beep(TONE_ERROR, now)    # no contact, paused too long
            if st != sm.FAULT and self._buz.pattern is TONE_ALARM:
                self._buz.stop()                  # reset out of FAULT: silence
        elif self._mark:
            left = self._ramp_left()
            if left <= self._mark:
                self._mark = self._first_mark(left)
                self.beep(TONE_TICK, now)

    @staticmethod
    def _first_mark(left):
        """The largest countdown mark (3000, 2000, 1000 ms) still ahead of `left`, or 0."""
        m = COUNTDOWN_MS
        while m > 0 and m >= left:
            m -= 1000
        return m

    def _ramp_left(self):
        """ms until RAMP_DOWN ends (the session's own estimate)."""
        return self._ramp_left_ms()
