"""A host that never stops sending, and a loop-timing run under it (MicroPython too).

`FloodReader` always has input: a cycle of status requests, refused commands, garbage,
invalid UTF-8 and over-long lines. `measure(rig, polls, clock_us, ticks_diff)` runs the
loop as main.run does (tick, plant, poll) with a session in TREAT and times each tick and
each poll with `clock_us` (a microsecond ticks function); on MicroPython it also counts
the heap bytes each poll allocates (a second pass with the collector off).
"""

PATTERN = (b'{"id":1,"cmd":"status"}\n' + b'{"id":2,"cmd":"start","target_ua":9000}\n' +
           b'\xff\xfe garbage \x00\n' + b"x" * 300 + b"\n" + b'{"id":3,"cmd":"identify"}\n' +
           b'{"id":4,"cmd":"log_read"}\n' + b'{"cmd":"telemetry","on":true,"hz":50}\n')
# the least a flood must get answered: a line every 24 polls. Its 7 lines, 474 bytes, read
# at app.READ_MAX = 8 bytes a poll take 60 polls; each line's parse, answer and tidy-up
# poll one more, each of a long reply's fill stages and 3-field steps one more (status:
# 18), and from its last line on telemetry at 50 Hz takes every fourth poll: ~120 polls a
# cycle (measured: a line every 19 polls)
POLLS_PER_LINE_MAX = 24


class FloodReader:
    def __init__(self, pattern=PATTERN):
        self.pattern = pattern
        self.pos = 0
        self.calls = 0
        self.bytes = 0
        self.most = 0

    def readinto(self, buf):
        n = len(buf)
        p = self.pattern
        for k in range(n):
            buf[k] = p[self.pos]
            self.pos = (self.pos + 1) % len(p)
        self.calls += 1
        self.bytes += n
        if n > self.most:
            self.most = n
        return n


def _pct(values, q):
    return values[min(len(values) - 1, (len(values) * q) // 1000)]


def measure(rig, polls, clock_us, ticks_diff, bufs=None):
    """Tick and poll wall times (µs: p50, p99, p99.9, max) over `polls` loop periods in
    TREAT under flood, lines answered, and heap bytes per poll where gc.mem_alloc exists."""
    b = rig.bench
    app = rig.app
    try:
        import gc
        free = gc.mem_free
    except (ImportError, AttributeError):
        free = None
    ticks, times = bufs if bufs is not None else ([0] * polls, [0] * polls)
    lines0 = app.proto.lines
    most_lines = 0
    gc_polls = 0
    gc_worst = 0
    for k in range(polls):
        t0 = clock_us()
        b.ctrl.tick(b.now_us)
        t1 = clock_us()
        b.plant.step(b.dt_s)
        b.now_us += b.period_us
        n0 = app.proto.lines
        rig.out[:] = []                   # on a board the lines leave through stdout
        f0 = free() if free else 0
        t2 = clock_us()
        app.poll()
        t3 = clock_us()
        ticks[k] = ticks_diff(t1, t0)
        times[k] = ticks_diff(t3, t2)
        if free and free() > f0:          # the collector ran inside this poll
            gc_polls += 1
            gc_worst = times[k] if times[k] > gc_worst else gc_worst
        if app.proto.lines - n0 > most_lines:
            most_lines = app.proto.lines - n0
    ticks.sort()
    times.sort()
    out = {"polls": polls, "lines": app.proto.lines - lines0, "most_lines_per_poll": most_lines,
           "tick_us": [_pct(ticks, 500), _pct(ticks, 990), _pct(ticks, 999), ticks[-1]],
           "poll_us": [_pct(times, 500), _pct(times, 990), _pct(times, 999), times[-1]],
           "mean_poll_us": sum(times) // polls, "gc_polls": gc_polls, "gc_worst_us": gc_worst}
    try:
        import gc
        gc.mem_alloc
    except (ImportError, AttributeError):
        return out
    worst = total = 0
    for _ in range(200):
        b.ctrl.tick(b.now_us)
        b.plant.step(b.dt_s)
        b.now_us += b.period_us
        rig.out[:] = []
        gc.collect()
        gc.disable()
        try:
            a0 = gc.mem_alloc()
            app.poll()
            d = gc.mem_alloc() - a0
        finally:
            gc.enable()
        total += d
        worst = d if d > worst else worst
    out["alloc_per_poll"] = [total // 200, worst]
    return out


def main(polls=4000):
    """Print one FLOOD line: the measurement on the sim board in TREAT (run under a heap
    the size of an MCU's, e.g. `-X heapsize=384K`, so the collector runs as it would)."""
    import json
    import time

    # the result buffers first, while the heap is not yet fragmented by the firmware
    bufs = ([0] * polls, [0] * polls)
    import session as sm
    from protorig import Rig
    rig = Rig(skin_ohm=1000.0)
    rig.ok("rx_write", target_ua=10000, ramp_up_s=10, ramp_down_s=5)
    rig.ok("start")
    assert rig.until(sm.TREAT, 30)
    rig.app._reader = FloodReader()
    try:
        import gc
        gc.collect()
        heap = [gc.mem_alloc(), gc.mem_free()]
    except (ImportError, AttributeError):
        heap = None
    m = measure(rig, polls, time.ticks_us, time.ticks_diff, bufs)
    m["heap_used_free"] = heap
    assert rig.ctrl.session.state == sm.TREAT and rig.ctrl.safety.fault == 0
    print("FLOOD " + json.dumps(m))
