"""Board entry point: build the board's HAL and controller, run the fixed-period loop.

The only firmware file that sleeps. `run()` takes its clock and sleep as arguments, so
host tests drive it in virtual time. Any exception escaping the step cuts the output
before anything else happens (then the fault is latched and reported).
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


def main():
    import time

    import board
    try:
        import micropython
        micropython.alloc_emergency_exception_buf(100)
    except (ImportError, AttributeError):
        pass
    hw = board.build(watchdog=True)
    hal = Hal(hw, board, Calibration())
    ctrl = Controller(hal, board)
    # a board may bring its own clock (the virtual board runs time-compressed)
    ticks = getattr(board, "ticks_us", None) or time.ticks_us
    sleep = getattr(board, "sleep_us", None) or time.sleep_us
    run(ctrl, ticks, sleep)


if __name__ == "__main__":
    main()
