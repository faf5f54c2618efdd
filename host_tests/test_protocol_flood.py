"""A host flooding the input must not stretch the control loop's period.

The app reads at most READ_MAX bytes and answers at most one line per poll, and none in
the poll after one that did, so a flood waits in the host's buffers instead of in the
loop. Checked in virtual time through main.run (the logic: bytes and replies per poll,
the loop period, the session carries on), and measured in wall time per poll on CPython
here and on the MicroPython unix port in test_protocol_on_vms.py.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

import main  # noqa: E402
import session as sm  # noqa: E402
from app import READ_MAX  # noqa: E402
from flood import POLLS_PER_LINE_MAX, FloodReader, measure  # noqa: E402
from protorig import Rig  # noqa: E402


def test_flood_is_bounded_per_poll_and_the_loop_keeps_its_period():
    flood = FloodReader()
    rig = Rig(reader=flood, skin_ohm=1000.0)
    rig.app._reader = None                  # no input while the session starts
    rig.ok("start", target_ua=10000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.app._reader = flood
    b = rig.bench
    per_poll = []
    poll = rig.app.poll

    def counted_poll():
        n0 = rig.app.proto.lines
        c0 = flood.bytes
        poll()
        per_poll.append((rig.app.proto.lines - n0, flood.bytes - c0))

    def sleep(us):
        b.plant.step(us / 1e6)
        b.now_us += us
    steps = 4000                             # 20 s of treatment under a continuous flood
    rig.out[:] = []
    lines0 = rig.app.proto.lines
    assert main.run(rig.ctrl, rig.ticks, sleep, poll=counted_poll, max_steps=steps) == steps
    assert max(n for n, _ in per_poll) == 1
    assert all(not (a[0] and b[0]) for a, b in zip(per_poll, per_poll[1:])), \
        "a poll after one that answered a line answers none (it may collect garbage instead)"
    assert max(k for _, k in per_poll) <= READ_MAX and flood.most == READ_MAX
    s = rig.ctrl.safety
    assert s.fault == 0 and s.overruns == 0 and s.worst_dt_us == rig.ctrl.period_us
    assert rig.ctrl.session.state == sm.TREAT and abs(rig.bench.plant.true_ua - 10000) < 200
    replies = [x for x in rig.take() if "t" not in x]
    assert len(replies) == rig.app.proto.lines - lines0 > steps // POLLS_PER_LINE_MAX
    codes = {r["error"]["code"] if not r["ok"] else "ok" for r in replies}
    assert codes == {"ok", "E_STATE", "E_BUSY", "E_TOO_LONG"}, codes   # E_BUSY: not flat


def test_poll_wall_time_under_flood_cpython():
    rig = Rig(reader=FloodReader(), skin_ohm=1000.0)
    rig.app._reader = None
    rig.ok("start", target_ua=10000, duration_s=600)
    assert rig.until(sm.TREAT, 60)
    rig.app._reader = FloodReader()
    m = measure(rig, 4000, lambda: time.perf_counter_ns() // 1000, lambda a, b: a - b)
    print("CPython, 4000 loop periods in TREAT under an input flood: tick us p50/p99/p99.9/max "
          "%s, poll us %s (mean %d), %d lines answered" % (
              m["tick_us"], m["poll_us"], m["mean_poll_us"], m["lines"]))
    assert m["most_lines_per_poll"] == 1 and m["lines"] > 4000 // POLLS_PER_LINE_MAX
    assert rig.ctrl.session.state == sm.TREAT
    # a generous bound for a shared CI host (the period is 5000 us); the maximum is the
    # host's scheduling noise as much as the code, so it is reported, not asserted
    assert m["poll_us"][1] < 1000
