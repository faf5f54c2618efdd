"""Loop health, visible from outside through `status`: period timing and the heap.

`LoopHealth` is filled by main.run every period:
  worst_us  the longest period since boot (start of one step to the start of the next);
  late      periods since boot that started more than LATE_SLACK_US after their due
            time (the schedule then restarts from that moment: no catching up).
The safety monitor counts its own overruns (safety.Safety.overruns: a step more than
1.5 periods after the previous one), independently of this record.

The heap is measured by `measure()`, in one call, only where a late period costs
nothing: at boot before the loop starts (main.main), and between sessions once a
session's record is written (app.py, the output off). `due` asks for it (True at
boot and when a session ends). One measurement:
  1. a collection (a session's uncollected garbage left 3 KB blocks where 19 KB were
     free once collected: emulated RP2040);
  2. `free`: gc.mem_free();
  3. `largest`: MicroPython has no call for the largest free block, so it is searched
     by allocating, with the automatic collection off (a failed attempt raises
     MemoryError at once instead of collecting; each scans the allocation table, about
     0.5 ms on an RP2040): sizes descending from the free heap by 1/16 each, the first
     success ends it. A lower bound within 1/16 of the truth. That one block is garbage
     at once (it sits in the largest free block until the next collection).
`free_s`, `largest_s`: the uptime (s) of the measurement. On the emulated RP2040 one
measurement takes ~30 ms (a collection ~17 ms, gc.mem_free ~8.6 ms): six loop periods
with the output off. `status` reports the last one; a host's request never measures
(gc.mem_free alone made every status a late period).
Where the heap grows on demand (the WebAssembly port: every failed allocation adds a
block instead of raising), there is no largest free block to find: `largest` stays -1
and only `free` is measured (each search doubled that heap).
"""

import sys

from micropython import const

LATE_SLACK_US = const(500)       # a tenth of the 5 ms control period
_GRAIN = const(64)
GROWS = sys.platform == "webassembly"    # the heap grows on demand (see the top)


class LoopHealth:
    def __init__(self):
        self.worst_us = 0
        self.late = 0
        self.free = -1           # bytes free at the last measurement; -1 = none
        self.free_s = -1         # uptime s of that measurement
        self.largest = -1        # bytes; -1 = not measured (yet, or GROWS)
        self.largest_s = -1      # uptime s of that measurement
        self.due = True          # a measurement is wanted (boot, a session's end)
        # the builds main.build() took: 1, or 2-3 where the heap beside the import-time
        # reserve was too cut up for the app (the board then boots with a smaller
        # largest free block: main.build)
        self.build_tries = 1
        self._gc = gc_module()

    def measure(self, now_s):
        """Collect, then measure the free heap and its largest free block (see the top);
        `now_s`: uptime s. Only with the output off and no session running: it takes
        ~30 ms on an RP2040. Nothing where there is no gc.mem_free (CPython)."""
        self.due = False
        gc = self._gc
        if gc is None:
            return
        gc.collect()
        n = gc.mem_free()
        self.free = n
        self.free_s = now_s
        if GROWS:
            return
        auto = gc.isenabled()
        gc.disable()
        try:
            while True:
                try:
                    bytearray(n)
                    break
                except MemoryError:
                    if n <= _GRAIN:
                        n = 0
                        break
                    n = n - (n >> 4) - _GRAIN
        finally:
            # a Ctrl-C (a tool taking the board over) may land here: a collector left off
            # outlives even a soft reset (MicroPython 1.28, rp2), and every tool after it
            # ran out of heap
            if auto:
                gc.enable()
        self.largest = n
        self.largest_s = now_s

    def reset_worst(self):
        """Start the worst-period record again (e.g. a bench between phases)."""
        self.worst_us = 0


def gc_module():
    """MicroPython's gc with mem_free, or None (CPython)."""
    try:
        import gc
    except ImportError:
        return None
    return gc if hasattr(gc, "mem_free") else None
