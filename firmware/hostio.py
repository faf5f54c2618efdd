"""The host link on a board: stdin/stdout (USB serial) without blocking the loop.

`readinto(buf)` copies the bytes already waiting on stdin, one at a time while
`select.poll` reports more (a MicroPython stdin `read(n)` would wait for all n),
up to len(buf); it never waits. It runs every loop period, so it leaves no garbage:
`ipoll` (MicroPython; it reuses its result tuple, where `poll` builds a list per call)
and a read into a preallocated one-byte buffer (`read(1)` would build a bytes object). `write(data)` sends raw bytes (no LF -> CRLF
translation), `write_n(buf, n)` the first n of them; `writable()` asks the poll whether output would block (USB connected
but nobody reading), so telemetry can be skipped instead of stalling the loop.
`set_interrupt(on)`: while a session runs the app turns Ctrl-C (0x03) off, so a stray
byte cannot kill the loop mid-treatment; when idle it is on again, so tools (mpremote)
can take over the board.
"""

import select
import sys

_MICROPYTHON = sys.implementation.name == "micropython"


class HostIO:
    def __init__(self, stdin=None, stdout=None):
        self._stdin = stdin if stdin is not None else sys.stdin
        self._stdout = stdout if stdout is not None else sys.stdout
        self._in = getattr(self._stdin, "buffer", self._stdin)
        self._out = getattr(self._stdout, "buffer", self._stdout)
        # write(buf, n) on MicroPython (getattr: a type stub's write takes one argument)
        self._write = getattr(self._out, "write")
        self._rpoll = select.poll()
        self._rpoll.register(self._stdin, select.POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(self._stdout, select.POLLOUT)
        self.eof = False
        self._byte = bytearray(1)
        read1 = getattr(self._in, "readinto", None)
        # a test stream with read() only: copy
        self._read1 = read1 if read1 is not None else self._read_copy
        self._rready = self._poller(self._rpoll, select.POLLIN)
        self._wready = self._poller(self._wpoll, select.POLLOUT)
        # ipoll makes its result tuple at its first call: make it now, not in the loop
        self._rready()
        self._wready()

    def _read_copy(self, b):
        data = self._in.read(1)
        if data:
            b[0] = data[0]
        return len(data) if data else 0

    @staticmethod
    def _poller(p, mask):
        """A no-argument readiness check on poll object `p` that leaves no garbage
        where the poll has `ipoll` (MicroPython)."""
        if not hasattr(p, "ipoll"):
            def ready():
                for ev in p.poll(0):
                    if ev[1] & mask:
                        return True
                return False
        else:
            ipoll = getattr(p, "ipoll")

            def ready():
                for ev in ipoll(0):
                    if ev[1] & mask:
                        return True
                return False
        return ready

    def readinto(self, buf):
        n = 0
        size = len(buf)
        ready = self._rready
        read1 = self._read1
        b = self._byte
        while n < size and ready():
            if not read1(b):
                self.eof = True
                break
            buf[n] = b[0]
            n += 1
        return n

    def write(self, data):
        self._out.write(data)

    def write_n(self, buf, n):
        """buf[0:n], without making a view of it (a MicroPython stream's write takes a
        length)."""
        if _MICROPYTHON:
            self._write(buf, n)
        else:
            self._out.write(bytes(buf[:n]))

    def writable(self):
        return self._wready()

    @staticmethod
    def set_interrupt(on):
        try:
            import micropython
            micropython.kbd_intr(3 if on else -1)
        except (ImportError, AttributeError):
            pass
