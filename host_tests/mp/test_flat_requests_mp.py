"""Flat requests (flatreq.py, flatscan.py) on MicroPython and CPython.

* a flat line reads as jsonstrict reads it, member for member, and each kind of line
  that is not flat is refused by the scanner (the protocol then reads it with jsonstrict);
  the viper scanner and its bytecode twin agree on every line (where viper compiles);
* while a session runs, every line a host may send is answered with nothing allocated
  (MicroPython): status, identify, telemetry, adjust, pause, stop, and the refusals
  (unknown command or field, a wrong type or range, a command refused in a session, a
  line too long or not flat);
* a refusal from a flat request is the same line, byte for byte after parsing, as the
  dict path's refusal of the same request.
"""

import json

import flatreq
import flattwin
import jsonstrict
import mptest
import session as sm
from protorig import Rig
from schema import Reject

FLAT = (
    b'{"id":1,"cmd":"status"}',
    b' { "cmd" : "adjust" , "target_ua" : 12000 , "id" : 0 } ',
    b'{}',
    b'{"a":true,"b":false,"c":null,"d":-7,"e":"x y-z","e":"dup"}',
    b'{"id":2147483647,"n":-2147483647,"z":0,"m":-0}',
    b'{"cmd":"telemetry","on":true,"hz":10}\r',
    b'{"k":"~ !#$%&()*+,-./:;<=>?@[]^_`{|}"}',
)
NOT_FLAT = (
    b'', b' ', b'[]', b'{"a":1,}', b'{"a" 1}', b'{,}', b'{"a":01}', b'{"a":1.}',
    b'{"a":1.5}', b'{"a":1e3}', b'{"a":"\\n"}', b'{"a":"\xc3\xa9"}', b'{"\xc3\xa9":1}',
    b'{"a":{}}', b'{"a":[1]}', b'{"a":2147483648}', b'{"a":-2147483648}',
    b'{"a":12345678901}', b'{"a":tru}', b'{"a":nul}', b'{"a":1}x', b'{"a":1}{',
    b'{"a":"x\tb"}', b'{"a":1', b'{"a"', b'"a"', b'\xff\xfe', b'{"a":-}', b'{"a":+1}',
    b'{' + b','.join(b'"k%d":%d' % (i, i) for i in range(flatreq.MAX_MEMBERS + 1)) + b'}',
)


def _scan(fr, line):
    buf = bytearray(line) + b"\0"
    return fr.scan(buf, len(line))


def test_flat_lines_read_as_jsonstrict_reads_them():
    fr = flatreq.FlatReq(("cmd", "id", "status", "adjust", "target_ua"))
    for line in FLAT:
        body = line[:-1] if line.endswith(b"\r") else line
        assert _scan(fr, body), body
        assert fr.as_dict() == jsonstrict.loads(body.decode()), (body, fr.as_dict())
    assert _scan(fr, FLAT[1]) and fr.value(fr.find("cmd")) == "adjust"
    assert fr["target_ua"] == 12000 and fr.get("nope", 5) == 5 and "id" in fr
    for line in NOT_FLAT:
        assert not _scan(fr, line), line
    big = b'{' + b','.join(b'"k%d":%d' % (i, i) for i in range(flatreq.MAX_MEMBERS)) + b'}'
    assert _scan(fr, big) and fr.count == flatreq.MAX_MEMBERS


def test_machine_code_scans_as_its_twin():
    try:
        import flatscan
    except (ImportError, SyntaxError, NameError):
        raise mptest.Skip("no native emitter on this port: only the twins run")
    out_a = flatreq.array("i", [0] * (flatreq.W * flatreq.MAX_MEMBERS))
    out_b = flatreq.array("i", [0] * (flatreq.W * flatreq.MAX_MEMBERS))
    for line in FLAT + NOT_FLAT:
        buf = bytearray(line) + b"\0"
        a = flatscan.scan(buf, len(line), out_a, flatreq.MAX_MEMBERS)
        b = flattwin.scan(buf, len(line), out_b, flatreq.MAX_MEMBERS)
        assert a == b and (a < 0 or out_a[:flatreq.W * a] == out_b[:flatreq.W * a]), (line, a, b)
        for s, e in ((0, len(line)), (1, len(line) // 2)):
            assert flatscan.key_hash(buf, s, e) == flattwin.key_hash(buf, s, e)
            assert flatscan.less(buf, 0, e, s, e) == flattwin.less(buf, 0, e, s, e)
    for text in ("plain text", 'q"uote', "back\\slash", "tab\t", "\u00e9t\u00e9", ""):
        assert flatscan.plain(text, len(text)) == flattwin.plain(text, len(text)), text


# (line, the reply's error code or None) for a rig in TREAT at 10 mA; in this order
SESSION_LINES = (
    (b'{"id":1,"cmd":"status"}', None),
    (b'{"id":2,"cmd":"identify"}', None),
    (b'{"id":3,"cmd":"telemetry","on":true,"hz":10}', None),
    (b'{"id":4,"cmd":"adjust","target_ua":9000}', None),
    (b'{"id":5,"cmd":"adjust","target_ua":"x"}', "E_TYPE"),
    (b'{"id":6,"cmd":"adjust","target_ua":999999999}', "E_RANGE"),
    (b'{"id":7,"cmd":"adjust"}', "E_MISSING"),
    (b'{"id":8,"cmd":"status","zz":1,"bogus_field_with_a_long_name":2}', "E_UNKNOWN_FIELD"),
    (b'{"id":9,"cmd":"nope"}', "E_UNKNOWN_CMD"),
    (b'{"id":10,"cmd":"start","target_ua":999999}', "E_STATE"),
    (b'{"id":11,"cmd":"log_read","from":-1}', "E_STATE"),
    (b'{"id":12,"cmd":"rx_read"}', "E_DENIED"),   # the session ended service mode
    (b'{"id":18,"cmd":"schedule"}', None),         # read the usual way (allocates)
    (b'{"id":13,"cmd":7}', "E_TYPE"),
    (b'{"id":true,"cmd":"status"}', "E_TYPE"),
    (b'{"id":14}', "E_MISSING"),
    (b'\xff\xfe garbage \x00', "E_BUSY"),
    (b'{"id":15,"cmd":"adjust","target_ua":9000.0}', "E_BUSY"),
    (b'x' * 300, "E_TOO_LONG"),
    (b'{"id":16,"cmd":"pause"}', None),
    (b'{"id":17,"cmd":"stop"}', None),
)
ALLOC_FREE = ("status", "identify", "telemetry", "adjust", "pause", "stop")


def _feed_whole(proto, data):
    """Feed a line and write its reply to the end, poll stage by poll stage (a long
    reply goes out in several resume() steps, as the app's poll drives it)."""
    proto.feed(data)
    while proto.writing():
        proto.resume()


def _counting_sink(proto):
    """Point the protocol's output at a stream that consumes each line and keeps none
    (nothing allocated); returns the one-item list that counts the lines."""
    count = [0]

    def consume(data):
        count[0] += 1

    def consume_n(buf, n):
        count[0] += 1
    proto.write = consume
    proto.write_n = consume_n
    return count


def _rig_in_treat():
    rig = Rig(skin_ohm=1000.0)
    rig.ok("start", target_ua=10000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    rig.out[:] = []
    return rig


def test_requests_in_a_session_allocate_nothing():
    """Two rigs get the same lines in the same order: one keeps every reply (checked),
    the other's output only counts lines, and there each line is measured."""
    seen = _rig_in_treat()
    kept = []
    seen.app.proto.write_n = lambda buf, n: kept.append(bytes(buf[:n]))
    rig = _rig_in_treat()
    proto = rig.app.proto
    count = _counting_sink(proto)
    proto.on_line = proto.handle_line
    seen.app.proto.on_line = seen.app.proto.handle_line
    mp = mptest.is_micropython()
    for line, code in SESSION_LINES:
        data = line + b"\n"
        kept[:] = []
        seen.out[:] = []
        _feed_whole(seen.app.proto, data)
        replies = [json.loads(x) for x in kept + seen.out]
        assert len(replies) == 1, (line, replies)
        r = replies[0]
        assert r["ok"] if code is None else r["error"]["code"] == code, (line, r)
        req = json.loads(line) if code not in ("E_BUSY", "E_TOO_LONG") else {}
        rid = req.get("id")
        assert r["id"] == (rid if isinstance(rid, int) and rid is not True else None), (line, r)
        count[0] = 0
        a = 0
        if mp:
            a = mptest.allocated_by(_feed_whole, proto, data)
        else:
            _feed_whole(proto, data)
        assert count[0] == 1, line
        if kept or code is not None:
            assert a == 0, (line, a)
        else:                             # the usual (allocating) way: none of ALLOC_FREE
            assert req["cmd"] not in ALLOC_FREE, (line, r)
    assert rig.ctrl.session.state == sm.RAMP_DOWN == seen.ctrl.session.state


def test_status_in_a_session_allocates_nothing_with_the_clock_set():
    """A host sets the clock (every tool does) to a date past 2004: epoch seconds are then
    over 2**30, a heap int on a 32-bit board. `status` during a session still allocates
    nothing, and its `time` is the clock's (measured on the emulated RP2040 before this was
    fixed: ~750 B per status, the heap full after ~20 s of `status` twice a second, then
    an overrun fault)."""
    rig = Rig(skin_ohm=1000.0)
    epoch = 1796049305                       # 2026-11-30
    rig.ok("time_set", epoch=epoch)
    rig.ok("start", target_ua=10000, duration_s=300)
    assert rig.until(sm.TREAT, 60)
    proto = rig.app.proto
    kept = []
    proto.write_n = lambda buf, n: kept.append(bytes(buf[:n]))
    proto.on_line = proto.handle_line
    data = b'{"id":1,"cmd":"status"}\n'
    _feed_whole(proto, data)
    r = json.loads(kept[-1])
    up = rig.app.clock.uptime_s
    assert r["ok"] and epoch <= r["time"] <= epoch + up + 1, (r["time"], up)
    count = _counting_sink(proto)
    for k in range(3):
        count[0] = 0
        if mptest.is_micropython():
            a = mptest.allocated_by(_feed_whole, proto, data)
        else:
            a = 0
            _feed_whole(proto, data)
        assert count[0] == 1 and a == 0, (k, a)


class _ChunkReader:
    """A host link that hands the app a request line `chunk` bytes per read, as a USB
    link does when a line arrives in packets or is read while the host is writing it.
    Nothing allocated per read (byte by byte from a preallocated buffer)."""

    def __init__(self, line, chunk):
        self.line = bytearray(line)
        self.chunk = chunk
        self.pos = len(line)           # nothing pending until send()

    def send(self):
        self.pos = 0

    def readinto(self, buf):
        n = 0
        line = self.line
        end = len(line)
        while n < self.chunk and n < len(buf) and self.pos < end:
            buf[n] = line[self.pos]
            self.pos += 1
            n += 1
        return n


def test_a_session_polled_with_status_through_the_loop_allocates_nothing():
    """The app's own poll reading `status` lines from its reader in chunks of 1, 8 and 64
    bytes, telemetry at 10 Hz, the clock set: no poll of the session allocates (on the
    emulated RP2040 a real boot polled this way filled the heap, then faulted overrun)."""
    line = b'{"id":7,"cmd":"status"}\n'
    for chunk in (1, 8, 64):
        reader = _ChunkReader(line, chunk)
        rig = Rig(skin_ohm=1000.0, reader=reader)
        rig.ok("time_set", epoch=1796049305)
        rig.ok("start", target_ua=10000, duration_s=300)
        assert rig.until(sm.TREAT, 60)
        rig.ok("telemetry", on=True, hz=10)
        replies = _counting_sink(rig.app.proto)
        worst = 0
        for k in range(12):
            reader.send()
            for _ in range(60):                # 0.3 s: the line read, answered, written
                rig.bench.step()
                if mptest.is_micropython():
                    a = mptest.allocated_by(rig.app.poll)
                else:
                    a = 0
                    rig.app.poll()
                if a > worst:
                    worst = a
        assert rig.ctrl.session.state == sm.TREAT, sm.NAMES[rig.ctrl.session.state]
        assert rig.app.proto.lines >= 12 and replies[0] >= 12, (chunk, rig.app.proto.lines, replies[0], worst, rig.app.tel_sent)
        assert worst == 0, (chunk, worst)


def test_a_flat_refusal_is_the_dict_paths_refusal():
    rig = _rig_in_treat()
    app = rig.app
    for line, code in SESSION_LINES:
        if code is None or code in ("E_BUSY", "E_TOO_LONG") or len(line) > 200:
            continue
        req = json.loads(line)
        if not isinstance(req.get("cmd"), str) or req.get("id") is True:
            continue                     # the envelope's refusals: not the handler's
        rig.out[:] = []
        app.feed(line + b"\n")
        flat = json.loads(rig.out[-1])
        try:
            app.commands.handle(req["cmd"], req)
        except Reject as e:
            assert flat["error"] == {"code": e.code, "msg": e.msg}, (line, flat, e.msg)
            continue
        raise AssertionError("the dict path accepted %r" % line)

