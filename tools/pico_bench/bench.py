"""On-board loop benchmark: main.run's loop on the real board file, state by state.

Runs ON the board (MicroPython), e.g. on the emulated Pico or a real one:

    mpremote connect PORT run tools/pico_bench/bench.py
    mpremote connect PORT exec "BENCH = {'flood': 1, 'treat_s': 120}" run tools/pico_bench/bench.py

It builds the app exactly as main.main() does (main.build(): board.py, HAL, controller,
app with HostIO on USB, the UI), turns telemetry on (10 Hz, to USB), and drives
main.run() itself through a scripted session sequence (commands straight to the app's
command handler, as the protocol would):
    IDLE; DC: start -> WAIT_CONTACT -> RAMP_UP -> TREAT (treat_s) -> pause (RAMP_DOWN ->
    PAUSED) -> resume -> RAMP_UP -> TREAT -> stop -> RAMP_DOWN -> DONE; reset;
    then a pulsed and a dose session (-> TREAT, stop, DONE, reset each).
The load is whatever the host puts on ADC0/ADC1 (the emulator's plant, or a real load):
a state the load never lets the session reach is simply not reported.

Settings (a dict `BENCH` defined in the board's globals before the run, all optional):
    flood    1: a host flooding the input (status, identify, refused commands, garbage,
             invalid UTF-8, over-long lines, served by an in-board reader in place of
             USB input; replies go to USB like any reply). Default 0.
    tel_hz   telemetry rate (default 10; 0 = off).
    status_hz  a host asking `status` this many times a second (as make monitor does),
             from an in-board reader like the flood's; default 0.
    treat_s  seconds of the first DC TREAT phase (default 120).
    The app runs a session's polls with the heap locked itself (app.py `lock_polls`, as
    main.py builds it on this board): a byte allocated there raises MemoryError, which
    refuses the request E_BUSY (counted: "busy_lines") or, anywhere else, ends the
    run (its traceback, and "alloc_error"). The bench counts per state the polls that
    ran locked throughout ("locked") and a session's polls the app ran unlocked by
    design ("event_polls": its start, its numbering and checkpoints, a line read or
    answered the usual way); between sessions too, polls run locked unless they have
    work that allocates (app._idle_may_lock: a record, the heap's measurement, a request
    that is not quick there; the collector is on).
    soak_s   extra seconds of DC TREAT after it, for the heap figure (default 0; 180
             makes 5 minutes of treatment; treat_s + soak_s at most 320: 16-bit counts).
    phase_s  seconds spent in each other waiting phase (IDLE, PAUSED, each DONE, TREAT
             in pulsed and dose; default 5).
Output: one JSON line per state reached, starting {"bench": STATE, ...}, then one
{"bench": "summary", ...}; other lines on the port (telemetry, replies) never carry
"bench". Per state: n (periods), tick_p50/p99 and poll_p50/p99 (µs, main.run's step and
poll; 20 µs histogram bins up to 3 ms, so percentiles are bin upper edges, or the maximum above 3 ms), period_p50/max (µs),
late (health.LoopHealth late periods), overruns (safety monitor), locked (polls run
with the heap locked: each of them allocated nothing), event_polls (see above).
The summary: fault, worst period, late periods and overruns in all, collections,
locked polls, event_polls, busy_lines, alloc_error (null, or where the loop allocated),
alloc_bytes (bytes allocated over all `periods`, commands and session ends included,
from gc.mem_alloc before and
after the run with the automatic collection off, so every byte shows; null when the
app collected meanwhile; gc.mem_alloc takes ~9 ms on an RP2040, so it is never called
between periods: called while current flows it would stretch a period into the
monitor's overrun fault), heap_free, heap_largest_after_gc (health.LoopHealth.measure:
a collection, then the largest free block), bench_own (heap bytes the script's
code and histograms hold, which a real boot does not) and reserve (main's import-time
reserve as the bench took it: main.RESERVE_BYTES less bench_own) and start_us_max (the
longest session start, made between two periods as the start command makes it in a poll:
the period after it is that much late), faults (the faults that ended sessions, in order;
the scripted sessions end with none). The control step
always runs with the heap locked in main.run: an allocation there would raise and fault.
The bench turns the automatic collection off (gc.disable); the app's own collections
(app.py, GC_LOW) still run.
"""

import gc
import json
import time
from array import array

import micropython

CFG = {"flood": 0, "tel_hz": 10, "treat_s": 120, "soak_s": 0, "phase_s": 5, "status_hz": 0}
try:
    CFG.update(BENCH)  # noqa: F821 - set by the host through mpremote exec
except NameError:
    pass

_BIN = 20                 # µs per histogram bin
_NB = 150                 # bins: up to 3 ms, above that the last bin (a percentile that
#                           falls there is reported as the maximum, kept apart)
_PBIN = 50                # period histogram: 50 µs bins up to 8 ms
_NPB = 160                # (small: the board's heap holds the firmware and this script)
CLASSES = ("IDLE", "WAIT_CONTACT", "RAMP_UP", "TREAT_DC", "TREAT_PULSED", "TREAT_DOSE",
           "REVERSE", "RAMP_DOWN", "DONE", "PAUSED", "FAULT")
_STATE_CLASS = (0, 1, 2, 3, 6, 7, 8, 9, 10)       # session state -> class (TREAT: by mode)

PATTERN = (b'{"id":1,"cmd":"status"}\n' + b'{"id":2,"cmd":"start","target_ua":999999}\n' +
           b'\xff\xfe garbage \x00\n' + b"x" * 300 + b"\n" + b'{"id":3,"cmd":"identify"}\n' +
           b'{"id":4,"cmd":"nope"}\n' + b'{"id":5,"cmd":"status"}\n')


class Flood:
    """An input that never runs dry (in place of HostIO's USB input)."""

    def __init__(self):
        self.pos = 0

    def readinto(self, buf):
        p = PATTERN
        n = len(p)
        k = self.pos
        for i in range(len(buf)):
            buf[i] = p[k]
            k += 1
            if k == n:
                k = 0
        self.pos = k
        return len(buf)


class Paced:
    """An input with one `status` request every `every` polls (in place of USB input)."""
    LINE = b'{"id":7,"cmd":"status"}\n'

    def __init__(self, every):
        self.every = every
        self.k = 0

    def readinto(self, buf):
        self.k += 1
        if self.k < self.every:
            return 0
        self.k = 0
        line = self.LINE
        for i in range(len(line)):
            buf[i] = line[i]
        return len(line)


class Timed:
    """The poll that main.run calls in the bench: times the step (from the controller's
    last tick) and the real poll, per state class. A class, not a closure: a closure over
    more than 5 variables allocates its argument array at every call (py/objclosure.c)."""

    def __init__(self, st, ctrl, hl, saf, real_poll, cls_now, app):
        self.st = st
        self.app = app
        self.ctrl = ctrl
        self.hl = hl
        self.saf = saf
        self.real_poll = real_poll
        self.cls_now = cls_now
        # last period start, (unused), late and overruns seen so far
        self.v = array("i", [time.ticks_us(), 0, 0, 0])

    @micropython.native     # its frame on the C stack: the bench's own poll allocates nothing
    def poll(self):
        ticks_us = time.ticks_us
        ticks_diff = time.ticks_diff
        st = self.st
        v = self.v
        t1 = ticks_us()
        last = self.ctrl._last_us
        tk = ticks_diff(t1, last)
        per = ticks_diff(last, v[0])
        v[0] = last
        c = self.cls_now()
        app = self.app
        locked = app.locked_polls
        unlocked = app.unlocked_answers
        t2 = ticks_us()
        self.real_poll()
        if app.locked_polls != locked and app.unlocked_answers == unlocked:
            st.locked[c] += 1
        elif app._active:
            st.events[c] += 1            # a session's poll the app ran unlocked
        pl = ticks_diff(ticks_us(), t2)
        st.n[c] += 1
        st.tick[c][tk // _BIN if tk < _BIN * _NB else _NB - 1] += 1
        st.poll[c][pl // _BIN if pl < _BIN * _NB else _NB - 1] += 1
        st.per[c][per // _PBIN if per < _PBIN * _NPB else _NPB - 1] += 1
        if tk > st.tmax[c]:
            st.tmax[c] = tk
        if pl > st.pmax[c]:
            st.pmax[c] = pl
        if per > st.permax[c]:
            st.permax[c] = per
        hl = self.hl
        if hl.late != v[2]:
            st.late[c] += hl.late - v[2]
            v[2] = hl.late
        saf = self.saf
        if saf.overruns != v[3]:
            st.over[c] += saf.overruns - v[3]
            v[3] = saf.overruns


class Stats:
    def __init__(self):
        nc = len(CLASSES)
        # 16-bit counts: at most 65535 periods (327 s) in one state
        self.tick = [array("H", bytearray(2 * _NB)) for _ in range(nc)]
        self.poll = [array("H", bytearray(2 * _NB)) for _ in range(nc)]
        self.per = [array("H", bytearray(2 * _NPB)) for _ in range(nc)]
        self.n = array("I", bytearray(4 * nc))
        self.tmax = array("I", bytearray(4 * nc))
        self.pmax = array("I", bytearray(4 * nc))
        self.permax = array("I", bytearray(4 * nc))
        self.late = array("I", bytearray(4 * nc))
        self.over = array("I", bytearray(4 * nc))
        self.locked = array("I", bytearray(4 * nc))
        self.events = array("I", bytearray(4 * nc))


def own_footprint(st):
    """Heap bytes this script holds that a real boot does not: its code (from BENCH's
    "a0", gc.mem_alloc() before the script, set by tools/bench_pico) and `st`'s histograms
    (~11.6 KB). Measured on the emulated Pico: ~8.3 KB of code, ~20 KB in all."""
    gc.collect()
    a0 = CFG.get("a0")
    return gc.mem_alloc() - a0 if a0 else 20 * 1024


st = Stats()                      # first: the app's graph is then built as main() builds it
OWN = own_footprint(st)
import main  # noqa: E402 - takes main.RESERVE_BYTES at its import, as at a boot

# The firmware's import-time reserve, less what this script holds: the firmware's graph
# is then built in the heap a real boot leaves it (with the full reserve beside the
# script, the imports no longer fit: MemoryError in main.build()).
main._reserve = main._spare = None
gc.collect()
RESERVE = max(0, main.RESERVE_BYTES - OWN)
main._reserve = bytearray(RESERVE)
main._spare = bytearray(main.SPARE_BYTES) if main._PRECOMPILED else None

import profiles  # noqa: E402
import safety  # noqa: E402
import session as sm  # noqa: E402


START_US = [0]      # the longest start() (outside the loop: the next period is that late)
FAULTS = []         # the faults that ended a session


def main_bench():
    b = main.build()
    ctrl = b.ctrl
    app = b.app
    hl = b.health
    ses = ctrl.session
    saf = ctrl.safety
    real_poll = b.poll

    def cls_now():
        s = ses.state
        if s == sm.TREAT:
            m = ses.profile.mode
            return 4 if m == profiles.MODE_PULSED else 5 if m == profiles.MODE_DOSE else 3
        return _STATE_CLASS[s]

    timed = Timed(st, ctrl, hl, saf, real_poll, cls_now, app)
    timed_poll = timed.poll        # a bound method, made once: calling it allocates nothing

    def run_s(seconds, until=None):
        """main.run for `seconds` of periods, or until `until()` (checked every 20)."""
        steps = seconds * 1000000 // ctrl.period_us
        done = 0
        while done < steps:
            main.run(ctrl, b.ticks_us, b.sleep_us, poll=timed_poll, max_steps=20,
                     health=hl)
            done += 20
            if until is not None and until():
                return True
        return False

    def cmd(name, **fields):
        if ses.state == sm.FAULT:
            FAULTS.append(safety.NAMES[saf.fault])
        try:
            return app.commands.handle(name, fields)
        except Exception as e:       # e.g. a fault ended the session: report it, go on
            print(json.dumps({"bench": "refused", "cmd": name, "why": repr(e),
                              "state": sm.NAMES[ses.state],
                              "fault": safety.NAMES[saf.fault]}))

    def start(name, **changes):
        """A session of catalogue profile `name`, started as the start command does
        (the command itself would refuse a board without calibration or prescription)."""
        p = profiles.from_catalog(name, **changes)
        t0 = time.ticks_us()
        app.recorder.observe(ctrl, app.clock)
        if ses.state == sm.FAULT or ses.state == sm.DONE:
            if ses.state == sm.FAULT:
                FAULTS.append(safety.NAMES[saf.fault])
            ctrl.reset()
        ctrl.start(p)
        app.recorder.begin(app.clock)
        app.profile_name = name
        t = time.ticks_diff(time.ticks_us(), t0)
        if t > START_US[0]:
            START_US[0] = t

    flood = Flood() if CFG["flood"] else None
    if flood is None and CFG["status_hz"]:
        flood = Paced(1000000 // ctrl.period_us // CFG["status_hz"])
    if flood is not None:
        app._reader = flood
    app.set_telemetry(CFG["tel_hz"])
    hl.measure(0)                   # as main.main does before its loop
    gc.collect()
    gc.disable()
    alloc0 = gc.mem_alloc()         # ~9 ms on an RP2040: only before and after the run
    coll0 = app.collections
    ps = CFG["phase_s"]
    alloc_error = None
    try:
        sequence(ps, run_s, cmd, start, ses)
    except MemoryError as e:        # a locked poll allocated (see the top): where, and stop
        import sys
        sys.print_exception(e)
        alloc_error = "%s in %s" % (repr(e), CLASSES[cls_now()])
    finally:
        app._reader = b.io
        app.set_telemetry(0)
        alloc = gc.mem_alloc() - alloc0
        gc.enable()
        b.io.set_interrupt(True)
    periods = 0
    for c in range(len(CLASSES)):
        periods += st.n[c]
    report(st, hl, saf, ctrl, app,
           None if app.collections != coll0 else alloc, periods, alloc_error)


def sequence(ps, run_s, cmd, start, ses):
    """The scripted sessions (see the module doc); `ps`: seconds per waiting phase."""
    run_s(ps)                                                        # IDLE
    # DC: the hands profile at 15 mA
    start("hands", duration_s=1800, ramp_up_s=10)
    run_s(60, lambda: ses.state == sm.TREAT)
    run_s(CFG["treat_s"] + CFG["soak_s"], lambda: ses.state != sm.TREAT)
    cmd("pause")
    run_s(30, lambda: ses.state == sm.PAUSED)
    run_s(ps)
    cmd("resume")
    run_s(60, lambda: ses.state == sm.TREAT)
    run_s(ps)
    cmd("stop")
    run_s(30, lambda: ses.state == sm.DONE)
    run_s(ps)
    cmd("reset")
    for prof in ("underarm", "drug"):
        start(prof, ramp_up_s=10)
        run_s(60, lambda: ses.state == sm.TREAT)
        run_s(ps, lambda: ses.state != sm.TREAT)
        cmd("stop")
        run_s(30, lambda: ses.state == sm.DONE)
        run_s(ps)                  # the record written, the heap measured (health.py)
        cmd("reset")
    run_s(1)


def _pct(h, n, q, bin_us, top):
    """The q-th percentile's bin upper edge; `top` (the maximum) in the overflow bin."""
    want = (n * q + 99) // 100
    acc = 0
    for k in range(len(h) - 1):
        acc += h[k]
        if acc >= want:
            return (k + 1) * bin_us
    return top


def report(st, hl, saf, ctrl, app, alloc, periods, alloc_error):
    feed = ctrl.hal.feed_watchdog      # a session armed the board's watchdog
    for c in range(len(CLASSES)):
        feed()
        n = st.n[c]
        if not n:
            continue
        print(json.dumps({
            "bench": CLASSES[c], "n": n,
            "tick_p50": _pct(st.tick[c], n, 50, _BIN, st.tmax[c]),
            "tick_p99": _pct(st.tick[c], n, 99, _BIN, st.tmax[c]),
            "tick_max": st.tmax[c],
            "poll_p50": _pct(st.poll[c], n, 50, _BIN, st.pmax[c]),
            "poll_p99": _pct(st.poll[c], n, 99, _BIN, st.pmax[c]),
            "poll_max": st.pmax[c],
            "period_p50": _pct(st.per[c], n, 50, _PBIN, st.permax[c]),
            "period_max": st.permax[c],
            "late": st.late[c], "overruns": st.over[c], "locked": st.locked[c],
            "event_polls": st.events[c]}))
    feed()
    hl.measure(0)                      # ~30 ms: within the watchdog's 500 ms
    feed()
    print(json.dumps({
        "bench": "summary", "cfg": CFG, "fault": safety.NAMES[saf.fault],
        "worst_period_us": hl.worst_us, "late": hl.late, "overruns": saf.overruns,
        "collections": app.collections, "periods": periods,
        "locked": sum(st.locked), "event_polls": sum(st.events), "alloc_error": alloc_error,
        "busy_lines": app.proto.busy_lines,
        "alloc_bytes": alloc, "tel_sent": app.tel_sent,
        "bench_own": OWN, "reserve": RESERVE, "build_tries": main.build_tries, "start_us_max": START_US[0],
        "faults": FAULTS,
        "lines": app.proto.lines, "internal": app.proto.internal,
        "heap_free": hl.free, "heap_largest_after_gc": hl.largest,
        "python": "%s %s" % (__import__("sys").implementation.name,
                             __import__("sys").version)}))


micropython.alloc_emergency_exception_buf(200)
main_bench()
