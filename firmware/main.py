"""Board entry point: build the board's HAL and controller, run the fixed-period loop.

The only firmware file that sleeps. `run()` takes its clock and sleep as arguments, so
host tests drive it in virtual time. Any exception escaping the step cuts the output
before anything else happens (then the fault is latched and reported).

`main()` = `build()` then `run()`. `build()` loads the stored records and the treatment
log first (before the watchdog starts: the log scan reads every slot), builds the board
with the stored calibration and the app; `run()` runs the loop with the app's poll
(host protocol on stdin/stdout, log, telemetry; see app.py). After the loop died, the
app records the session that was running, and the collector is turned back on.
A board with `build_ui()` gets its buttons, LED and buzzer served by the app's poll,
after its own work (ui.py, `loop_poll`: app.ui_poll); its service button (up + down) is
read once, before the loop, and handed to the app as `service_button` (None: the board
has none).
Loop health (health.py): `run()` records the worst period and the late periods in a
LoopHealth that the app's `status` reports; on MicroPython the step runs with the heap
locked (see `run()`).
"""

# Heap layout (MicroPython): importing compiles each module, and the compiler's temporary
# objects interleave with the code it keeps, so after the imports the free heap is many
# small holes (on an RP2040: 150 KB free, the largest block 11 KB). A block reserved
# before any firmware import keeps the low end of the heap in one piece; build() frees
# it last, leaving one large free block for the loop and the host link.
# Where each module is compiled at its import (flashed as .py) the compiler needs room of
# its own: on the emulated Pico the firmware (0.5) no longer compiled beside 48 KB
# (MemoryError at boot: the board sat at its REPL), so such a board reserves less.
RESERVE_BYTES = 48 * 1024
RESERVE_SOURCE_BYTES = 36 * 1024
# Precompiled, a spare block right after the reserve is the first thing build() gives up
# when the heap beside them is too cut up for the graph: loading hostio.mpy once found
# no 1,280-byte hole in 77 KB free (the emulated Pico), and freeing the whole reserve
# then left a largest block of 5 KB; the spare's hole takes what did not fit.
SPARE_BYTES = 8 * 1024


def _precompiled():
    """True where the firmware is flashed precompiled (app.mpy), False for source."""
    try:
        import os
        os.stat("app.mpy")
        return True
    except (ImportError, AttributeError, OSError):
        return False


_PRECOMPILED = _precompiled()
try:
    _reserve = bytearray(RESERVE_BYTES if _PRECOMPILED else RESERVE_SOURCE_BYTES)
    _spare = bytearray(SPARE_BYTES) if _PRECOMPILED else None
except MemoryError:
    _reserve = _spare = None
build_tries = 0          # the builds build() took (see there)

import health as health_mod  # noqa: E402
import safety  # noqa: E402
from calibration import Calibration  # noqa: E402
from controller import Controller  # noqa: E402
from hal import Hal  # noqa: E402
from ticks import ticks_add, ticks_diff  # noqa: E402


def _no_lock():
    return 0


try:
    import micropython as _mp
except ImportError:
    _mp = None
# CPython (the host's shim) and ports built without it have no heap_lock
_heap_lock = getattr(_mp, "heap_lock", _no_lock)
_heap_unlock = getattr(_mp, "heap_unlock", _no_lock)
_LOCKS = _heap_lock is not _no_lock
# heap_unlock() returns the depth after it; below 0 the 16-bit depth wraps (32767)
_WRAPPED = 0x4000


def release_heap():
    """Leave the heap unlocked after an exception in the loop, whatever the lock depth
    was. One heap_unlock() is not always right: on the unix port (the virtual board) a
    Ctrl-C that lands next to heap_unlock() left the depth at -1 (2 of 200 SIGINTs) or
    still locked after one unlock, and the traceback, main's `finally` and the REPL then
    failed or hung. Returns the depth left (0), or 0 where there is no heap lock."""
    d = _heap_unlock() or 0
    n = 0
    while 0 < d < _WRAPPED and n < 16:
        d = _heap_unlock()
        n += 1
    if d >= _WRAPPED:
        _heap_lock()            # one unlock too many: the depth back to 0
        d = 0
    return d


def run(ctrl, ticks_us, sleep_us, poll=None, max_steps=-1, health=None):
    """Call ctrl.tick() every period until max_steps (never, if negative).

    `poll()` is called after each step (host commands, buttons); it must not block.
    An overrun does not accumulate debt: a period that starts more than the slack
    (health.LATE_SLACK_US) after its due time restarts the schedule from now, and the
    safety monitor judges the late step. `health` (a health.LoopHealth, or None) gets
    the worst period and the late periods.

    Where MicroPython has `micropython.heap_lock`, the step runs with the heap locked:
    its function frames then live on the C stack instead of the GC heap (on an RP2040
    that halves the step's time), and an allocation inside the step raises MemoryError
    instead of starting a collection: the handler below cuts the output and faults.
    """
    period = ctrl.period_us
    slack = health_mod.LATE_SLACK_US
    if health is None:
        health = health_mod.LoopHealth()
    lock = _heap_lock
    unlock = _heap_unlock
    locking = _LOCKS
    worst = health.worst_us
    late = health.late
    due = ticks_us()
    last = due
    n = 0
    try:
        while n != max_steps:
            now = ticks_us()
            if ticks_diff(now, due) > slack:
                late += 1
                health.late = late
                due = now                     # no debt: the schedule restarts here
            d = ticks_diff(now, last)
            last = now
            if d > worst:
                worst = d
                health.worst_us = d
            if locking:
                lock()
                ctrl.tick(now)        # a method call: `tick = ctrl.tick` would allocate
                unlock()              # a bound method at each run() (the bench's chunks)
            else:
                ctrl.tick(now)
            if poll is not None:
                poll()
            n += 1
            due = ticks_add(due, period)
            wait = ticks_diff(due, ticks_us())
            if wait > 0:
                sleep_us(wait)
    except BaseException:
        ctrl.hal.off()                      # first: no current, whatever happened
        release_heap()                      # the step may have raised with the heap locked
        ctrl.safety.fault = safety.F_EXCEPTION
        ctrl.session.fault(safety.F_EXCEPTION)
        raise
    return n


def loop_poll(app, ui_hw):
    """The loop's poll: `app.poll`, which serves the UI's poll (ui.py) after its own when
    the board has one (app.ui_poll: a session's UI poll then runs heap-locked too)."""
    if ui_hw is not None:
        import ui
        app.ui_poll = ui.Ui(ui_hw, app, app.clock.ms).poll
    return app.poll


def _watchdog_arming(board, hal):
    """A function that starts the board's watchdog for `hal` to feed, or None."""
    if not hasattr(board, "watchdog"):
        return None

    def arm():
        hal.set_watchdog(board.watchdog())
    return arm


class Board:
    """What `build()` wires: the controller, the app, the loop's poll, clock and sleep,
    the host link and the loop's health record."""

    def __init__(self, ctrl, app, poll, ticks_us, sleep_us, io, health):
        self.ctrl = ctrl
        self.app = app
        self.poll = poll
        self.ticks_us = ticks_us
        self.sleep_us = sleep_us
        self.io = io
        self.health = health


def build():
    """Load the stored records, build the board's hardware, HAL, controller and app (as
    `main()` runs them; tools/pico_bench drives the same graph). Ends by freeing the
    import-time reserve (see RESERVE_BYTES) and a collection. Where the heap left beside
    the reserve is too cut up for the graph, the spare block (SPARE_BYTES) is freed and
    the graph built again; failing that, the reserve too: the board then boots with a
    smaller largest block (on the emulated Pico 5-7 KB), not at all is no option.
    `build_tries` says how many builds it took (1-3; the bench prints it, and `status`
    reports it: health.LoopHealth.build_tries)."""
    import gc
    try:
        import micropython
        micropython.alloc_emergency_exception_buf(100)
    except (ImportError, AttributeError):
        pass
    global _reserve, _spare, build_tries
    build_tries = 1
    b = _try_wire()
    if b is None and _spare is not None:
        _spare = None
        gc.collect()
        build_tries = 2
        b = _try_wire()
    if b is None:
        _reserve = _spare = None
        gc.collect()
        build_tries += 1
        b = _wire()
    _reserve = _spare = None
    gc.collect()
    b.health.build_tries = build_tries      # status: a boot that fell back says so
    return b


def _try_wire():
    """_wire(), or None where it ran out of heap."""
    try:
        return _wire()
    except MemoryError:
        return None


def _wire():
    """build()'s graph (allocates; any MemoryError is raised before the loop starts)."""
    import gc
    import time

    import board
    # Precompiled, the records first and the app's modules after: loaded after them, the
    # log scan's temporary blocks found no 1.3 KB hole in 74 KB free (the emulated Pico,
    # once commands.py grew), and the board booted without its reserve (largest 7 KB).
    # From source the other way round: the compiler then found no 1.3 KB hole in 135 KB
    # free beside the records, even without the reserve, and the board sat at its REPL.
    store = _load_records() if _PRECOMPILED else None
    gc.collect()          # the log scan's garbage: its blocks merge into holes again
    import ui
    from app import App
    from hostio import HostIO
    if store is None:
        store = _load_records()
    import records
    cal = records.calibration_of(store.cal.data) if store.cal.data else Calibration()
    # No watchdog at boot: a started WDT cannot be stopped, and every mpremote call
    # interrupts this loop, so a board could not be flashed or checked. It is armed at
    # the first session start, when current can flow, and stays on until a reset.
    hw = board.build(watchdog=False)
    ui_hw = board.build_ui() if hasattr(board, "build_ui") else None
    service_button = ui.service_held(ui_hw)     # once, at power-up
    hal = Hal(hw, board, cal)
    ctrl = Controller(hal, board, _watchdog_arming(board, hal))
    # a board may bring its own clock (the virtual board runs time-compressed)
    ticks = getattr(board, "ticks_us", None) or time.ticks_us
    sleep = getattr(board, "sleep_us", None) or time.sleep_us
    io = HostIO()
    health = health_mod.LoopHealth()
    gc_off = getattr(board, "SESSION_GC_OFF", True)
    app = App(ctrl, store, io.write, ticks, reader=io, writable=io.writable, write_n=io.write_n,
              uid=_unique_id(board), hw=hw, sleep_us=sleep,
              default_cal=getattr(board, "DEFAULT_CALIBRATION", None),
              on_active=lambda active: io.set_interrupt(not active),
              service_button=service_button, health=health,
              session_gc_off=gc_off, lock_polls=gc_off,
              flash_stalls=getattr(board, "FLASH_WRITE_STALLS", True))
    poll = loop_poll(app, ui_hw)
    return Board(ctrl, app, poll, ticks, sleep, io, health)


def _load_records():
    """The stored records (records.Store, loaded)."""
    import records
    import storage
    return records.Store(storage.Fs(), "data").load()


def main():
    b = build()
    b.health.measure(0)       # the heap after the build, before the loop (health.py)
    try:
        run(b.ctrl, b.ticks_us, b.sleep_us, poll=b.poll, health=b.health)
    finally:
        b.io.set_interrupt(True)
        b.app.crashed()     # the output is already off (run's handler, or never on)
        # the REPL a tool gets (Ctrl-C between sessions) needs the collector, which a
        # session turned off: it stays off even through a soft reset (MicroPython 1.28
        # rp2: gc.isenabled() False after mpremote's soft reset, and the flash ran out
        # of heap copying a file)
        _gc_on()


def _gc_on():
    """The collector on again (where the port has one)."""
    try:
        import gc
        gc.enable()
    except (ImportError, AttributeError):
        pass


def _unique_id(board):
    """The board's serial number as hex: board.unique_id() or machine.unique_id()."""
    try:
        f = getattr(board, "unique_id", None)
        if f is None:
            import machine
            f = machine.unique_id
        uid = f()
        return uid if isinstance(uid, str) else "".join("%02x" % b for b in uid)
    except Exception:
        return None


if __name__ == "__main__":
    main()
