"""Board entry point: build the board's HAL and controller, run the fixed-period loop.

The only firmware file that sleeps. `run()` takes its clock and sleep as arguments, so
host tests drive it in virtual time. Any exception escaping the step cuts the output
before anything else happens (then the fault is latched and reported).

`main()` loads the stored records and the treatment log first (before the watchdog
starts: the log scan reads every slot), builds the board with the stored calibration,
and runs the loop with the app's poll (host protocol on stdin/stdout, log, telemetry;
see app.py). After the loop died, the app records the session that was running.
A board with `build_ui()` gets its buttons, LED and buzzer served after the app's poll
(ui.py, `loop_poll`); its service button (up + down) is read once, before the loop, and
handed to the app as `service_button` (None: the board has none).
"""

import safety
from calibration import Calibration
from controller import Controller
from hal import Hal
from ticks import ticks_add, ticks_diff


def run(ctrl, ticks_us, sleep_us, poll=None, max_steps=-1):
    """Call ctrl.tick() every period until max_steps (never, if negative).

    `poll()` is called after each step (host commands, buttons); it must not block.
    An overrun does not accumulate debt: the schedule restarts from now, and the
    safety monitor judges the late step.
    """
    period = ctrl.period_us
    due = ticks_us()
    n = 0
    try:
        while n != max_steps:
            ctrl.tick(ticks_us())
            if poll is not None:
                poll()
            n += 1
            due = ticks_add(due, period)
            wait = ticks_diff(due, ticks_us())
            if wait > 0:
                sleep_us(wait)
            else:
                due = ticks_us()
    except BaseException:
        ctrl.hal.off()                      # first: no current, whatever happened
        ctrl.safety.fault = safety.F_EXCEPTION
        ctrl.session.fault(safety.F_EXCEPTION)
        raise
    return n


def loop_poll(app, ui_hw):
    """The loop's poll: `app.poll`, then the UI's (ui.py) when the board has one."""
    if ui_hw is None:
        return app.poll
    import ui
    clock = app.clock
    return with_ui(app.poll, ui.Ui(ui_hw, app, clock.ms).poll, clock)


def with_ui(app_poll, ui_poll, clock):
    """The loop's poll for a board with a UI: the app's poll (which updates `clock`), then
    `ui_poll(clock.ms)`. Made once (a closure over bound methods): calling it allocates
    nothing itself."""
    def poll():
        app_poll()
        ui_poll(clock.ms)
    return poll


def _watchdog_arming(board, hal):
    """A function that starts the board's watchdog for `hal` to feed, or None."""
    if not hasattr(board, "watchdog"):
        return None

    def arm():
        hal.set_watchdog(board.watchdog())
    return arm


def main():
    import time

    import board
    import records
    import storage
    import ui
    from app import App
    from hostio import HostIO
    try:
        import micropython
        micropython.alloc_emergency_exception_buf(100)
    except (ImportError, AttributeError):
        pass
    store = records.Store(storage.Fs(), "data").load()
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
    app = App(ctrl, store, io.write, ticks, reader=io, writable=io.writable,
              uid=_unique_id(board), hw=hw, sleep_us=sleep,
              default_cal=getattr(board, "DEFAULT_CALIBRATION", None),
              on_active=lambda active: io.set_interrupt(not active),
              service_button=service_button)
    try:
        run(ctrl, ticks, sleep, poll=loop_poll(app, ui_hw))
    finally:
        io.set_interrupt(True)
        app.crashed()     # the output is already off (run's handler, or never on)


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
