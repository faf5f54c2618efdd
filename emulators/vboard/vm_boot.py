"""Start-up of the virtual board: runs on the MicroPython unix port, `micropython -i vm_boot.py`.

What a board's firmware does between reset and its REPL, done in Python: mount the
board's flash (a host folder) at "/" so no path reaches outside it, offer `machine`
with `reset()` / `soft_reset()`, run boot.py and then main.py like the board's
firmware, print tracebacks like it, and end; `-i` then starts the port's own REPL
(friendly, raw and raw-paste: what mpremote speaks).

Environment (set by emulators/vboard/daemon.py):
  VBOARD_FLASH  absolute path of the flash folder
  VBOARD_MODE   "power" (power-up: boot.py, main.py), "soft" (soft reboot in the friendly
                REPL: boot.py, main.py), "raw" (soft reboot in the raw REPL: boot.py only;
                the host program enters the raw REPL afterwards)

In-band signals to the host program, written to stdout and removed from the stream
there: ESC "]vboard;" WORD BEL, WORD one of
  start  this script runs: from here on a SIGINT reaches MicroPython as KeyboardInterrupt
  ready  this script ends: the REPL's banner follows
  reset  machine.reset(): the host restarts the board as from power-up
  soft   machine.soft_reset(), or SystemExit out of boot.py/main.py: soft reboot
"""


def _vboard_boot():
    import os
    import sys

    flash = os.getenv("VBOARD_FLASH")
    mode = os.getenv("VBOARD_MODE") or "power"

    def signal(word):
        sys.stdout.write("\x1b]vboard;" + word + "\x07")

    def wait_for_host():
        # the host kills this process on the signal; never return into the caller
        import time
        while True:
            time.sleep_ms(100)

    class Machine:
        """The virtual board's `machine`: resets, plus what the unix port's own offers."""
        PWRON_RESET = 1
        HARD_RESET = 2
        WDT_RESET = 3
        DEEPSLEEP_RESET = 4
        SOFT_RESET = 5

        def __init__(self):
            import machine as port_machine
            for name in ("idle", "mem8", "mem16", "mem32", "Signal", "PinBase",
                         "time_pulse_us"):
                if hasattr(port_machine, name):
                    setattr(self, name, getattr(port_machine, name))
            self._cause = self.SOFT_RESET if mode != "power" else self.PWRON_RESET

        def reset(self):
            signal("reset")
            wait_for_host()

        def soft_reset(self):
            signal("soft")
            wait_for_host()

        def reset_cause(self):
            return self._cause

        def unique_id(self):
            import hashlib
            return hashlib.sha256(flash.encode()).digest()[:8]

        def freq(self, *args):
            return 125000000

    sys.modules["machine"] = Machine()
    if not flash:
        print("vm_boot: VBOARD_FLASH not set")
        return
    os.umount("/")
    os.mount(os.VfsPosix(flash), "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]
    g = globals()

    def run_file(name):
        """pyexec_file_if_exists(): True if the file ran to its end (or is absent)."""
        try:
            with open(name) as f:
                src = f.read()
        except OSError:
            return True
        try:
            exec(compile(src, name, "exec"), g)
        except SystemExit:
            signal("soft")          # a board soft-reboots on SystemExit out of its scripts
            wait_for_host()
        except BaseException as e:  # KeyboardInterrupt too: traceback, then the REPL
            sys.print_exception(e)
            return False
        return True

    signal("start")
    if run_file("boot.py") and mode != "raw":
        run_file("main.py")
    signal("ready")


_vboard_boot()
del _vboard_boot
