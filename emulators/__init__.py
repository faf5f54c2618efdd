"""Emulated boards: where the firmware runs without hardware, each behind a pty that
mpremote and every tool in tools/ open as they open a board on /dev/ttyACM0.

vboard/  the virtual board: the MicroPython unix port running the `sim` board (the plant
         model's objects instead of pins), time-compressed; the default target of
         `make flash` and `make demo`.
vpico/   the emulated Raspberry Pi Pico: the real MicroPython rp2 image in the rp2040js
         RP2040 emulator with the plant on boards/pico.py's pins; speed and heap figures
         of the firmware come from here.

`find_by_port(port)`: the running emulated board (either kind) behind a port, or None.
Both kinds offer `set_load(**keys)` (boards/sim.py's control keys), `meter_path()` and
`hard_reset()`.
"""


def find_by_port(port):
    """The running VirtualBoard or VirtualPico whose port is `port`, or None."""
    if not port:
        return None
    from emulators import vboard, vpico
    return vboard.find_by_port(port) or vpico.find_by_port(port)
