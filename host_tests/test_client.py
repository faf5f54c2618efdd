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
        self.to_device += data
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
    port.rx += b"MicroPython v1.27.0 on 2025-12-10; Raspberry Pi Pico\r\n"
    with pytest.raises(ProtocolError):
        c.status()
    c.drain()
    port.rx += b'{"id": 999, "ok": true, "state": "OLD"}\n'     # a late reply to an old id
    port.rx += b'{"t": "tel", "ms": 1}\n'
    # skipped: the reply to the status cut short by the garbage, and id 999
    assert c.status()["state"] == "IDLE" and c.stale == 2
    port.rx += b'{"id": null, "ok": false, "error": {"code": "E_JSON", "msg": "x"}}\n'
    with pytest.raises(DeviceError):
        c.status()
    c.drain()
    port.rx += b'{"id": 5, "ok": false}\n'
    c._id = 4
    with pytest.raises(ProtocolError):
        c.status()
    c.drain()
    port.rx += b"\xff" * 70000
    with pytest.raises(ProtocolError):
        c.status()
    c.drain()
    assert c.identify()["board"] == "sim"


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
    with pytest.raises(ProtocolError):
        c.status()                                    # loop:// echoes the request itself
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
