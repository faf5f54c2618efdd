"""Loop health, visible from outside through `status`: period timing and the heap.

`LoopHealth` is filled by main.run every period:
  worst_us  the longest period since boot (start of one step to the start of the next);
  late      periods since boot that started more than LATE_SLACK_US after their due
            time (the schedule then restarts from that moment: no catching up).
The safety monitor counts its own overruns (safety.Safety.overruns: a step more than
1.5 periods after the previous one), independently of this record.

The heap: `heap_free()` is gc.mem_free() (`free_now` keeps it off a running session).
MicroPython has no call for the largest free block, so `probe_step()` finds it by
allocating, one attempt per call: a collection first (after a session its uncollected
garbage left 3 KB blocks where 19 KB were free once collected: emulated RP2040), then
sizes descending from the free heap by 1/16 each, with the automatic collection off (a
failed attempt raises MemoryError at once instead of collecting; it scans the
allocation table, about 0.5 ms on an RP2040). The first success ends the search:
`largest` is that size, a lower bound within 1/16 of the truth, and `largest_s` the
uptime (s) it was measured at.
That one block is garbage at once, but it sits in the largest free block until the
next collection. So the app probes only after a `status` asked for it (`wanted`), only
while no session runs, in polls that read no input, and at most once every
PROBE_EVERY_S; during a session `status` reports the value measured before it.
"""

from micropython import const

LATE_SLACK_US = const(500)       # a tenth of the 5 ms control period
PROBE_EVERY_S = const(10)
FREE_EVERY_S = const(10)         # free_now measures at most this often: 8.6 ms a call, a
#                                  late period each (a host asking status twice a second
#                                  made 1 % of idle periods late at 1 s)
_GRAIN = const(64)


class LoopHealth:
    def __init__(self):
        self.worst_us = 0
        self.late = 0
        self.largest = -1        # bytes; -1 = not measured yet
        self.largest_s = -1      # uptime s of that measurement
        self.free = -1           # bytes free when last measured (free_now)
        self.free_s = -1         # uptime s of that measurement
        self.wanted = False      # set by `status`: search the largest block when idle
        self._try = 0            # next size to try; 0 = no search under way
        self._gc = gc_module()

    def free_now(self, session, now_s):
        """The free heap: between sessions measured at most every FREE_EVERY_S (`now_s`:
        uptime s), during a session the value measured before it (gc.mem_free scans the
        whole allocation table, ~8.6 ms on an RP2040: with a request's other work it
        would stretch a period past the safety monitor's overrun limit while current
        flows, and a host asking status in a loop would stretch every other period).
        -1 where unknown (CPython)."""
        if not session and (self.free_s < 0 or now_s - self.free_s >= FREE_EVERY_S):
            self.free = heap_free()
            self.free_s = now_s
        return self.free

    def probe_step(self, now_s):
        """One attempt of the largest-block search (see the module doc); `now_s`: uptime s.
        True while a search is under way."""
        gc = self._gc
        if gc is None:
            return False
        n = self._try
        if n == 0:
            if self.largest_s >= 0 and now_s - self.largest_s < PROBE_EVERY_S:
                return False
            gc.collect()        # else a session's garbage would hide the block
            n = gc.mem_free()
            self.free = n       # free_now's figure too: one scan of the heap, not two
            self.free_s = now_s
        auto = gc.isenabled()
        gc.disable()
        try:
            try:
                bytearray(n)
                ok = True
            except MemoryError:
                ok = False
        finally:
            # a Ctrl-C (a tool taking the board over) may land here: a collector left off
            # outlives even a soft reset (MicroPython 1.28, rp2), and every tool after it
            # ran out of heap
            if auto:
                gc.enable()
        if ok or n <= _GRAIN:
            self.largest = n if ok else 0
            self.largest_s = now_s
            self._try = 0
            self.wanted = False
            return False
        self._try = n - (n >> 4) - _GRAIN
        return True

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


def heap_free():
    """Free heap bytes, or -1 where unknown (CPython)."""
    gc = gc_module()
    return gc.mem_free() if gc is not None else -1
