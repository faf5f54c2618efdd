"""A session's polls run with the heap locked (app.py `lock_polls`, as main.py builds a
board's app), on MicroPython and CPython (no lock there: the poll as before).

* `status` is answered in DC, pulsed and dose mode, none refused E_BUSY: every quick
  command's answer allocates nothing (on the emulated RP2040 a dose's time left was a
  heap int, and 18 % of the statuses a host sent were refused);
* a command that is not quick is answered with the heap unlocked for that poll, as before.
"""

import mptest
import session as sm
from protorig import Rig
from test_flat_requests_mp import _ChunkReader, _counting_sink


def _locked_session(reader, profile, uptime_s=0):
    """A rig whose app runs a session's polls heap-locked as a board's does (lock_polls; the
    collector stays on: the plant model allocates), in TREAT with `profile`, telemetry at
    10 Hz, its output counted (nothing kept: a kept line would allocate); its clock
    starts at `uptime_s`."""
    rig = Rig(skin_ohm=1000.0, reader=reader, lock_polls=True)
    rig.app.clock.uptime_s = uptime_s
    rig.ok("time_set", epoch=1796049305)
    target, duration = 10000, 300
    if profile == "drug":          # 40,000 µA·min left: x 60,000 is above 2**30
        rig.write_rx({"drug_max_ua": 4000, "dose_uamin": 40000, "max_duration_s": 1800})
        target, duration = 4000, 1200
    rig.ok("start", profile=profile, target_ua=target, duration_s=duration)
    assert rig.until(sm.TREAT, 60), sm.NAMES[rig.ctrl.session.state]
    rig.ok("telemetry", on=True, hz=10)
    return rig, _counting_sink(rig.app.proto)


def _end(rig):
    """Stop the session and poll until it is over."""
    rig.ctrl.stop()
    rig.until(sm.DONE, 90)
    rig.step()


def test_a_locked_session_answers_every_status_in_every_mode():
    """Where the heap locks (MicroPython), a session's polls run locked, and `status` is
    answered in DC, pulsed and dose mode, none refused E_BUSY. On the emulated RP2040 the
    dose's time left was a large int: 18 % of the statuses were refused (and on a
    real boot, unlocked, each drained the heap the collector could not reclaim)."""
    for profile in ("hands", "underarm", "drug"):
        _three_statuses(profile)


def _three_statuses(profile, uptime_s=0):
    """Three `status` lines sent to a locked session (_locked_session) in TREAT, 40 polls
    apart: each answered, none refused, the session still treating, unfaulted."""
    reader = _ChunkReader(b'{"id":7,"cmd":"status"}\n', 8)
    rig, replies = _locked_session(reader, profile, uptime_s)
    try:
        app = rig.app
        proto = app.proto
        lines0, locked0 = proto.lines, app.locked_polls
        for _ in range(3):
            reader.send()
            rig.step(40)
        ses = rig.ctrl.session
        assert ses.state == sm.TREAT and rig.ctrl.safety.fault == 0, (
            profile, sm.NAMES[ses.state], rig.ctrl.safety.fault)
        assert proto.lines - lines0 == 3 and replies[0] >= 3, (profile, proto.lines, replies)
        assert proto.busy_lines == 0 and proto.rejected == 0 and proto.write_errors == 0, (
            profile, proto.busy_lines, proto.rejected, proto.write_errors)
        if mptest.is_micropython():
            assert app.locked_polls - locked0 >= 3 * 40 - 2, (profile, app.locked_polls)
        else:
            assert app.locked_polls == 0          # no heap lock: the poll as before
        return app
    finally:
        _end(rig)


def test_a_locked_session_answers_the_other_commands_unlocked():
    """A command that is not quick (its reply is built the usual way) is answered with the
    heap unlocked for that poll, as before the lock: ok, not E_BUSY."""
    for line in (b'{"id":8,"cmd":"time_set","epoch":1796049400}\n',
                 b'{"id":9,"cmd":"settings_read"}\n', b'{"id":10,"cmd":"schedule"}\n'):
        reader = _ChunkReader(line, 64)
        rig, replies = _locked_session(reader, "hands")
        try:
            proto = rig.app.proto
            lines0 = proto.lines
            reader.send()
            rig.step(60)
            assert proto.lines - lines0 == 1 and proto.busy_lines == 0 and \
                proto.write_errors == 0, (line, proto.lines, proto.busy_lines, proto.rejected)
        finally:
            _end(rig)


def _answer_locked(proto, line):
    """Scan `line` (bytes), then parse and answer it with the heap locked where it locks,
    as a board's locked poll does (the scan first: on the WebAssembly port it is bytecode,
    whose digits make heap ints; the board's machine code makes none). Returns the reply
    line (str), or the exception the locked work raised."""
    got = [None, 0]

    def keep(buf, n):               # keeps a reference, copies nothing: no allocation
        got[0] = buf
        got[1] = n
    proto.write_n = keep
    proto.write = lambda data: keep(data, len(data))
    n = len(line)
    for i in range(n):
        proto._buf[i] = line[i]
    assert proto.flat.scan(proto._buf, n), line
    lock = getattr(__import__("micropython"), "heap_lock", None) \
        if mptest.is_micropython() else None
    failed = None
    if lock is not None:
        lock()
    try:
        if proto._parse_flat(proto.flat):
            proto.answer()
            while proto.resume():
                pass
    except Exception as e:        # MemoryError under the lock: kept, raised unlocked
        failed = e
    finally:
        if lock is not None:
            __import__("micropython").heap_unlock()
    if failed is not None:
        return failed
    return bytes(got[0][:got[1]]).decode()


def test_an_id_past_the_small_ints_is_answered_heap_locked():
    """tools/client.py picks request ids of up to 2**31 - 1. From 2**30 such an id is a
    heap int on a 32-bit port: read as one, a locked poll on the emulated RP2040 refused
    `status` and `stop` E_BUSY. The id is kept in two small parts and written back as its
    digits; a field past the small ints is refused E_RANGE, with its value, as unlocked."""
    import json
    rig, _ = _locked_session(_ChunkReader(b"", 1), "hands")
    try:
        proto = rig.app.proto
        for rid in (2 ** 31 - 1, 2 ** 30, 2 ** 30 - 1, 1000000000, 100000, 99999, 0):
            reply = _answer_locked(proto, ('{"id":%d,"cmd":"status"}' % rid).encode())
            assert isinstance(reply, str), (rid, reply)
            d = json.loads(reply)
            assert d["id"] == rid and d["ok"] is True and d["state"] == "TREAT", (rid, reply)
        reply = _answer_locked(proto, b'{"id":2147483647,"cmd":"telemetry","on":true,'
                                      b'"hz":-2147483647}')
        assert isinstance(reply, str), reply
        d = json.loads(reply)
        assert d["id"] == 2 ** 31 - 1 and d["error"]["code"] == "E_RANGE", reply
        assert d["error"]["msg"].startswith("hz -2147483647 outside "), reply
        assert rig.ctrl.session.state == sm.TREAT
    finally:
        _end(rig)


def test_a_board_up_for_13_days_runs_a_session_heap_locked():
    """The poll's deadlines (telemetry, checkpoints, service mode) and `status` keep time
    in clock.ms, which wraps at 2**29, and in uptime seconds: an uptime in ms passes 2**30
    after 12.4 days, a heap int on a 32-bit port (the WebAssembly one here). On the
    emulated RP2040 such a board faulted (exception) at the first locked poll of every
    session. Here the session treats, checkpoints, and answers status, none refused."""
    app = _three_statuses("hands", uptime_s=13 * 24 * 3600)
    assert app.recorder.checkpoints >= 1 and app.checkpoint_errors == 0


def _last_line_sink(proto):
    """Point the protocol's output at a sink that keeps the last reply (a line that
    begins {"id", not telemetry) in a preallocated buffer (nothing allocated); returns
    sink() -> (replies seen, the last one as a str)."""
    last = bytearray(1024)
    seen = [0, 0]

    def keep(buf, n):
        if n < 3 or buf[2] != 105:      # 'i': {"id" ...; telemetry is {"t" ...
            return
        seen[0] += 1
        seen[1] = n
        for i in range(n):
            last[i] = buf[i]
    proto.write_n = keep
    proto.write = lambda data: keep(data, len(data))

    def sink():
        return seen[0], bytes(last[:seen[1]]).decode()
    return sink


def test_a_locked_session_refuses_in_place_what_it_refuses():
    """A flat request that handle() refuses by its first checks (an unknown command, a
    service-only one outside service mode, one refused while a session runs) is answered
    from the preallocated error line with the heap locked: a flooding host's refused
    `start` and unknown commands cost no unlocked poll (on the emulated RP2040 each took
    one, the flood's p99 poll)."""
    import json
    import flatreq
    for line, code in ((b'{"id":8,"cmd":"start","target_ua":999999}\n', "E_STATE"),
                       (b'{"id":8,"cmd":"nope"}\n', "E_UNKNOWN_CMD"),
                       (b'{"id":8,"cmd":"target_ua"}\n', "E_UNKNOWN_CMD"),
                       (b'{"id":8,"cmd":"cal_read"}\n', "E_DENIED")):
        reader = _ChunkReader(line, 8)
        rig, _ = _locked_session(reader, "hands")
        try:
            app = rig.app
            sink = _last_line_sink(app.proto)
            unlocked0 = app.unlocked_answers
            reader.send()
            rig.step(30)
            n, last = sink()
            d = json.loads(last) if n else None
            assert n == 1 and d["id"] == 8 and d["error"]["code"] == code, (line, last)
            assert app.proto.busy_lines == 0 and rig.ctrl.session.state == sm.TREAT
            if mptest.is_micropython():      # the bytecode scan (no machine code) parses
                assert app.unlocked_answers - unlocked0 == (   # unlocked; the answer is locked
                    0 if flatreq.MACHINE_CODE else 1), (line, app.unlocked_answers)
        finally:
            _end(rig)


def _idle_rig(line):
    """A rig between sessions as a board runs it: polls heap-locked (lock_polls), not in
    service mode, the heap measured after boot; `line` (bytes) waits in its reader (8
    bytes per read). Its output goes to a sink that keeps the last line in a
    preallocated buffer (nothing allocated): returns (rig, reader, sink) where sink() is
    the replies seen and the last line as a str."""
    reader = _ChunkReader(line, 8)
    rig = Rig(skin_ohm=1000.0, reader=reader, lock_polls=True, service=False)
    sink = _last_line_sink(rig.app.proto)
    rig.step(3)
    assert not rig.app.health.due
    return rig, reader, sink


def test_an_idle_board_answers_status_heap_locked():
    """Between sessions a board's polls run heap-locked too (app._idle_may_lock): `status`
    and `identify` from a flat request are answered in place (on the emulated RP2040 an
    idle board asked `status` twice a second had p99 polls of 38 ms: the collections of
    the garbage unlocked answers left). Any other line is read or answered unlocked, as
    before: a request with an escape (not flat: jsonstrict) and `settings_read` (not
    quick here) are answered ok, none refused E_BUSY."""
    import json
    import flatreq
    for line, cmd, quick in ((b'{"id":7,"cmd":"status"}\n', "status", True),
                             (b'{"id":7,"cmd":"identify"}\n', "identify", True),
                             (b'{"id":7,"cmd":"st\\u0061tus"}\n', "status", False),
                             (b'{"id":7,"cmd":"settings_read"}\n', "settings_read", False)):
        rig, reader, sink = _idle_rig(line)
        app = rig.app
        proto = app.proto
        lines0, locked0, unlocked0 = proto.lines, app.locked_polls, app.unlocked_answers
        for k in range(3):
            reader.send()
            rig.step(40)
            n, last = sink()
            assert n == k + 1, (cmd, n, last)
            d = json.loads(last)
            assert d["id"] == 7 and d["ok"] is True, (cmd, last)
            if cmd == "status":           # the heap as measured after boot
                assert d["state"] == "IDLE" and d["heap_free"] == app.health.free and \
                    d["heap_largest"] == app.health.largest, (cmd, last)
        assert proto.lines - lines0 == 3 and proto.busy_lines == 0 and \
            proto.rejected == 0 and proto.write_errors == 0, (cmd, proto.busy_lines)
        assert rig.ctrl.session.state == sm.IDLE
        if not mptest.is_micropython():
            assert app.locked_polls == 0          # no heap lock: the poll as before
            continue
        # a locked quick answer leaves no garbage: no unlocked poll to check the heap
        assert app.locked_polls - locked0 >= 3 * 40 - 6, (cmd, app.locked_polls - locked0)
        unlocked = app.unlocked_answers - unlocked0
        if quick:              # the bytecode scan (no machine code) reads unlocked
            assert unlocked == (0 if flatreq.MACHINE_CODE else 3), (cmd, unlocked)
        else:
            assert unlocked >= 3, (cmd, unlocked)
