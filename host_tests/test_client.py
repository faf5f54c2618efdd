"""tools/client.py against the firmware's protocol running in-process.

`DevicePort` is a pyserial-like port whose far end is the device (protorig.Rig: sim board,
plant, fake flash, app) in virtual time: reading from it runs the device's loop, and the
client's clock is the device's clock, so timeouts cost no wall time. One test also goes
through real pyserial on a pseudo-terminal, and one through pyserial's loop:// URL.
"""

import os
import select
import sys
import threading

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))

import session as sm  # noqa: E402
from protorig import Rig  # noqa: E402
from tools.client import Client, DeviceError, ProtocolError, Timeout  # noqa: E402


class DevicePort:
    def __init__(self, rig, steps=4, answer=True):
        self.rig = rig
        self.steps = steps                 # device loop periods per empty read
        self.rx = bytearray()              # device -> host
        self.to_device = bytearray()       # host -> device
        self.now = 0.0
        self.timeout = None
        self.closed = False
        self.in_flight = bytearray()       # device -> host, not yet arrived (after a drain)
        self.written = []
        if answer:
            rig.app._reader = self

    # the device's side (App reader)
    def readinto(self, buf):
        n = min(len(buf), len(self.to_device))
        buf[:n] = self.to_device[:n]
        del self.to_device[:n]
        return n

    # the host's side (pyserial API)
    def write(self, data):
        self.written.append(bytes(data))
        self.to_device += data
        self.rx += self.in_flight          # sent by the device before it saw this line
        self.in_flight[:] = b""
        return len(data)

    @property
    def in_waiting(self):
        return len(self.rx)

    def read(self, n=1):
        if not self.rx:
            for _ in range(self.steps):
                self.rig.step()
                self.now += self.rig.bench.period_us / 1e6
            for line in self.rig.out:
                self.rx += line
            self.rig.out[:] = []
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def close(self):
        self.closed = True


def client_for(rig=None, **kw):
    port = DevicePort(rig or Rig(skin_ohm=1000.0), **kw)
    return Client(port, timeout=2.0, clock=lambda: port.now), port


def test_requests_and_replies():
    c, port = client_for()
    ident = c.identify()
    assert ident["board"] == "sim" and ident["proto"] == 2 and "id" not in ident and "ok" not in ident
    assert c.status()["state"] == "IDLE"
    c.sync_time(1750000000)
    assert c.status()["time"] >= 1750000000
    r = c.start(target_ua=9000, duration_s=300)
    assert r["state"] == "WAIT_CONTACT" and r["target_ua"] == 9000
    assert port.rig.until(sm.TREAT, 60)
    assert abs(c.status()["i_ua"] - 9000) < 100
    assert c.pause()["state"] == "RAMP_DOWN"
    assert port.rig.until(sm.PAUSED, 30)
    assert c.resume()["state"] == "PAUSED"
    assert c.stop()["state"] in ("DONE", "RAMP_DOWN")
    assert port.rig.until(sm.DONE, 30)
    assert c.reset()["state"] == "IDLE"
    assert c.schedule()["phase"] == "induction"
    assert c.selftest()["pass"] is True
    with c:
        pass
    assert port.closed


def test_device_errors_carry_code_and_message():
    c, _ = client_for()
    with pytest.raises(DeviceError) as e:
        c.start(target_ua=30000)
    assert e.value.code == "E_RANGE" and "30000" in e.value.msg and e.value.reply["ok"] is False
    with pytest.raises(DeviceError) as e:
        c.request("fly")
    assert e.value.code == "E_UNKNOWN_CMD"
    with pytest.raises(DeviceError) as e:
        c.request("cal_write", i_gain=1)
    assert e.value.code in ("E_RANGE", "E_MISSING")
    assert c.status()["state"] == "IDLE"            # the link is fine afterwards


def test_telemetry_is_queued_while_waiting_and_collected_on_demand():
    c, port = client_for()
    c.set_telemetry(True, hz=50)
    c.start(target_ua=9000, duration_s=300)
    before = len(c.telemetry)
    got = c.read_telemetry(1.0)
    assert 45 <= len(got) <= 55 and all(t["t"] == "tel" for t in got)
    assert len(c.telemetry) == before + len(got)
    port.steps = 40                                   # telemetry arrives before the reply
    assert c.status()["state"] in ("WAIT_CONTACT", "RAMP_UP")
    assert len(c.telemetry) > before + len(got)
    c.set_telemetry(False)


def test_timeout_in_virtual_time():
    rig = Rig()
    port = DevicePort(rig, answer=False)               # nobody reads the device's input
    c = Client(port, timeout=0.5, clock=lambda: port.now)
    with pytest.raises(Timeout):
        c.status()
    assert 0.5 <= port.now < 0.6


def test_garbage_and_stale_replies():
    c, port = client_for()
    port.rx += b"MicroPython v1.27.0 on 2025-12-10; Raspberry Pi Pico\r\n"   # before connecting
    port.in_flight += b"MPY: soft reboot\r\n"             # arrives after the drain
    # the first request clears the line: newline, a fence (identify), then the request
    assert c.status()["state"] == "IDLE" and c.synced and c.garbage == 1
    assert port.written[0].startswith(b'\n{"id":') and b'"cmd":"identify"' in port.written[0]
    port.rx += b'{"id": 999, "ok": true, "state": "OLD"}\n'     # a late reply to an old id
    port.rx += b'{"t": "tel", "ms": 1}\n'
    stale = c.stale
    assert c.status()["state"] == "IDLE" and c.stale == stale + 1
    # another program's id-less error is never taken as ours, in lockstep or not
    port.rx += b'{"id": null, "ok": false, "error": {"code": "E_JSON", "msg": "x"}}\n'
    assert c.status()["state"] == "IDLE" and c.stale == stale + 2
    # in lockstep, garbage is reported (the board rebooted, or another program talks here)
    port.rx += b"Traceback (most recent call last):\r\n"
    with pytest.raises(ProtocolError):
        c.status()
    assert not c.synced
    assert c.status()["state"] == "IDLE" and c.synced   # the next request clears the line again
    c.drain()
    port.rx += b'{"id": 5, "ok": false}\n'
    c._id = 4
    c.synced = True
    with pytest.raises(ProtocolError):
        c.status()
    c.drain()
    c.synced = True
    port.rx += b"\xff" * 70000
    with pytest.raises(ProtocolError):
        c.status()
    assert c.identify()["board"] == "sim"


def test_an_id_less_busy_reply_in_lockstep_is_ours():
    """During a session a line that is not flat gets E_BUSY with id null: in lockstep the
    client knows it answers its own line; before the line is cleared it cannot."""
    rig = Rig(skin_ohm=1000.0)
    rig.ok("start", target_ua=9000, duration_s=300)
    c, port = client_for(rig)
    assert c.status()["state"] in ("WAIT_CONTACT", "RAMP_UP")
    with pytest.raises(DeviceError) as e:
        c.request("status", x=1.5)                     # a float: not flat
    assert e.value.code == "E_BUSY" and e.value.reply["id"] is None
    assert c.status()["state"] in ("WAIT_CONTACT", "RAMP_UP")
    c.drain()                                          # not in lockstep: E_BUSY is skipped
    port.rx += (b'{"id": null, "ok": false, "error": {"code": "E_BUSY", "msg": "x"}}\n')
    assert c.status()["state"] in ("WAIT_CONTACT", "RAMP_UP") and c.stale >= 1


# ---- stale bytes of every kind before a request: 0 failed requests ----------------------------

# what the device may have read before this host's first line: half lines, mpremote's
# control bytes (Ctrl-A raw REPL, Ctrl-B, Ctrl-C, Ctrl-D, Ctrl-E paste mode) and code
DEVICE_STALE = [b'{"id":3,"cmd":"sta', b'{"id":3,"cmd":"status","x":"\xc3', b"\x01", b"\x02",
                b"\x03", b"\x04", b"\x05", b"\r\x03\x03", b"\r\x01", b"\x05A\x01",
                b"import os\r\nprint(os.listdir())\x04", b"x" * 300, b"\xff\xfe",
                b'{"id":77,"cmd":"identify"}\n', b'{"cmd":"status"}\n{"id":9,"cm', b"\r\n\r\n"]
# what reaches this host after it opened the port (in flight before its first line): the
# device's telemetry, half lines, replies to another program (with and without an id),
# mpremote's REPL text
HOST_STALE = [b'{"t": "tel", "ms": 81235, "state": "TREAT", "sp_ua": 15000, "i_ua": 14987}\n' * 30,
              b'_ua": 14987, "v_mv": 41230, "lim": false, "fault": "ok"}\n', b'{"t": "tel", "ms": 8',
              b'{"id": null, "ok": false, "error": {"code": "E_JSON", "msg": "invalid"}}\n',
              b'{"id": null, "ok": false, "error": {"code": "E_BUSY", "msg": "not flat"}}\n',
              b'{"id": null, "ok": false, "error": {"code": "E_TOO_LONG", "msg": "x"}}\n',
              b'{"id": 1, "ok": true, "state": "OLD"}\n', b'{"id": 2, "ok": false, "error": '
              b'{"code": "E_STATE", "msg": "x"}}\n', b"raw REPL; CTRL-B to exit\r\n>",
              b"OK\x04\x04>", b"MicroPython v1.27.0 on 2025-12-10; Raspberry Pi Pico\r\n>>> ",
              b"\x00\xff\xfe garbage", b"Traceback (most recent call last):\r\n"]
STALE_RESULTS = {"trials": 0, "requests": 0, "failed": [], "stale": 0, "garbage": 0}


def _stale_bases():
    idle = Rig(skin_ohm=1000.0)
    treat = Rig(skin_ohm=1000.0)
    treat.ok("start", target_ua=9000, duration_s=900)
    treat.ok("telemetry", on=True, hz=50)
    assert treat.until(sm.TREAT, 60)
    treat.out[:] = []
    return {"idle": idle, "treat": treat}


def _stale_trial(bases, base, device_bytes, host_bytes, pending, first_id):
    import copy
    memo = {id(m): m for m in list(sys.modules.values())}
    rig = copy.deepcopy(bases[base], memo)
    port = DevicePort(rig)
    rig.app.feed(device_bytes[:len(device_bytes) // 2])    # read by the device already
    port.to_device += device_bytes[len(device_bytes) // 2:]  # waiting for it
    port.rx += pending                                       # waiting for this host
    port.in_flight += host_bytes                             # arriving after it opened
    c = Client(port, timeout=2.0, clock=lambda: port.now, first_id=first_id)
    jobs = [("status", {}), ("identify", {}), ("status", {})]
    jobs.append(("start", {"target_ua": 30000}) if base == "idle" else ("adjust", {"target_ua": 9500}))
    for cmd, fields in jobs:
        STALE_RESULTS["requests"] += 1
        try:
            r = c.request(cmd, **fields)
            good = (r.get("state") == sm.NAMES[rig.ctrl.session.state] if cmd == "status"
                    else r.get("board") == "sim" if cmd == "identify"
                    else r.get("target_ua") == 9500)
        except DeviceError as e:
            good = cmd == "start" and e.code == "E_RANGE"
            r = e
        except Exception as e:            # a failed request: Timeout, ProtocolError...
            good, r = False, e
        if not good:
            STALE_RESULTS["failed"].append((base, device_bytes[:40], host_bytes[:40],
                                            pending[:40], cmd, repr(r)[:120]))
    STALE_RESULTS["trials"] += 1
    STALE_RESULTS["stale"] += c.stale
    STALE_RESULTS["garbage"] += c.garbage


def test_stale_bytes_of_every_kind_before_a_request_fail_no_request():
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    bases = _stale_bases()
    pieces = lambda kinds: st.lists(st.sampled_from(kinds), max_size=4).map(b"".join)  # noqa

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(base=st.sampled_from(sorted(bases)), device_bytes=pieces(DEVICE_STALE),
           host_bytes=pieces(HOST_STALE), pending=pieces(HOST_STALE),
           first_id=st.sampled_from([1, 2, 77, 9, 1000, 2 ** 31 - 2]))
    def run(base, device_bytes, host_bytes, pending, first_id):
        _stale_trial(bases, base, device_bytes, host_bytes, pending, first_id)
    # every kind alone first, then hypothesis' mixes
    for base in sorted(bases):
        for k in DEVICE_STALE:
            _stale_trial(bases, base, k, b"", b"", 1)
        for k in HOST_STALE:
            _stale_trial(bases, base, b"", k, b"", 1)
            _stale_trial(bases, base, b"", b"", k, 1)
    run()
    res = STALE_RESULTS
    print("stale bytes: %d trials, %d requests, %d failed; %d stale replies and %d garbage "
          "lines skipped" % (res["trials"], res["requests"], len(res["failed"]), res["stale"],
                             res["garbage"]))
    assert res["failed"] == [], res["failed"][:5]
    assert res["trials"] >= 200 and res["stale"] > 100 and res["garbage"] > 50


def test_requests_longer_than_the_device_takes_are_refused_before_sending():
    c, port = client_for()
    with pytest.raises(ValueError):
        c.request("cal_write", tech="x" * 300)
    assert not port.to_device


def test_read_log_pages_through_everything():
    rig = Rig()
    from test_treatment_log import rec
    for k in range(1, 20):
        rig.store.log.append(rec(k))
    c, _ = client_for(rig)
    recs = c.read_log()
    assert [r["seq"] for r in recs] == list(range(1, 20))
    assert [r["seq"] for r in c.read_log(start=15)] == [15, 16, 17, 18, 19]


def test_loop_url_echo_is_not_a_reply():
    c = Client("loop://", timeout=0.5)
    with pytest.raises(Timeout) as e:
        c.status()                                    # loop:// echoes the request itself
    assert b'"cmd":"identify"' in e.value.garbage and "not the protocol" in str(e.value)
    c.synced = True                                   # in lockstep an echo is an error
    with pytest.raises(ProtocolError):
        c.status()
    c.close()


def test_real_pyserial_on_a_pty():
    master, slave = os.openpty()
    rig = Rig(skin_ohm=1000.0)
    stop = threading.Event()
    inbox = bytearray()

    class PtyReader:
        def readinto(self, buf):
            n = min(len(buf), len(inbox))
            buf[:n] = inbox[:n]
            del inbox[:n]
            return n
    rig.app._reader = PtyReader()

    def device():
        while not stop.is_set():
            r, _, _ = select.select([master], [], [], 0.002)
            if r:
                inbox.extend(os.read(master, 4096))
            rig.step()
            for line in rig.out:
                os.write(master, line)
            rig.out[:] = []

    t = threading.Thread(target=device, daemon=True)
    t.start()
    try:
        with Client(os.ttyname(slave), timeout=5.0) as c:
            assert c.identify()["board"] == "sim"
            assert c.start(target_ua=8000, duration_s=300)["state"] == "WAIT_CONTACT"
            with pytest.raises(DeviceError) as e:
                c.start()
            assert e.value.code == "E_STATE"
            assert c.stop()["state"] in ("DONE", "RAMP_DOWN", "WAIT_CONTACT", "RAMP_UP")
    finally:
        stop.set()
        t.join(2)
        os.close(master)
        os.close(slave)


def test_the_port_is_opened_exclusively_and_a_holder_is_named():
    import subprocess
    from tools import cli
    from tools.client import PortInUse
    master, slave = os.openpty()
    name = os.ttyname(slave)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import serial, sys\n"
         "s = serial.Serial(sys.argv[1], exclusive=True)\nprint('held', flush=True)\n"
         "sys.stdin.read()\n", name],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(PortInUse) as e:
            Client(name, timeout=0.5)
        msg = str(e.value)
        assert msg.startswith("%s is in use by another program (pid %d: " % (name, holder.pid)), msg
        assert "close it" in msg
        with pytest.raises(cli.NoDevice) as e:          # the tools say the same, exit 2
            cli.open_client(name, 0.5)
        assert "is in use by another program" in str(e.value)
    finally:
        holder.stdin.close()
        holder.wait(10)
    c = Client(name, timeout=0.5)                        # free again: ours, exclusively
    try:
        with pytest.raises(PortInUse) as e:
            Client(name, timeout=0.5)                    # a second client of this process too
        assert "in use by another program" in str(e.value)
    finally:
        c.close()
        os.close(master)
        os.close(slave)
