"""The virtual board: the MicroPython unix port running the `sim` board behind a serial port.

    from emulators.vboard import VirtualBoard
    vb = VirtualBoard("sim")          # state in build/vboard/sim
    st = vb.start()                   # {"port": "/dev/pts/5", "url": ..., "pid": ..., "flash": ...}
    vb.set_load(contact=True, skin_ohm=1500, speed=20)
    vb.hard_reset(); vb.stop()

See tools/virtual_board.py (command line), daemon.py (the host program), vm_boot.py
(the interpreter's start-up) and docs/flashing.md.
"""

from .control import (BoardError, DEFAULT_NAME, STATE_ROOT, VirtualBoard, all_boards,
                      find_by_port, running_boards)

__all__ = ["BoardError", "DEFAULT_NAME", "STATE_ROOT", "VirtualBoard", "all_boards",
           "find_by_port", "running_boards"]
