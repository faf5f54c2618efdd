"""The host link on a board: stdin/stdout (USB serial) without blocking the loop.

`readinto(buf)` copies the bytes already waiting on stdin, one at a time while
`select.poll` reports more (a MicroPython stdin `read(n)` would wait for all n),
up to len(buf); it never waits. `write(data)` sends raw bytes (no LF -> CRLF
translation); `writable()` asks the poll whether output would block (USB connected
but nobody reading), so telemetry can be skipped instead of stalling the loop.
`set_interrupt(on)`: while a session runs the app turns Ctrl-C (0x03) off, so a stray
byte cannot kill the loop mid-treatment; when idle it is on again, so tools (mpremote)
can take over the board.
"""

import select
import sys


class HostIO:
    def __init__(self, stdin=None, stdout=None):
        self._stdin = stdin if stdin is not None else sys.stdin
        self._stdout = stdout if stdout is not None else sys.stdout
        self._in = getattr(self._stdin, "buffer", self._stdin)
        self._out = getattr(self._stdout, "buffer", self._stdout)
        self._rpoll = select.poll()
        self._rpoll.register(self._stdin, select.POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(self._stdout, select.POLLOUT)
        self.eof = False

    def readinto(self, buf):
        n = 0
        size = len(buf)
        while n < size and self._ready(self._rpoll, select.POLLIN):
            b = self._in.read(1)
            if not b:
                self.eof = True
                break
            buf[n] = b[0]
            n += 1
        return n

    def write(self, data):
        self._out.write(data)

    def writable(self):
        return self._ready(self._wpoll, select.POLLOUT)

    @staticmethod
    def _ready(p, mask):
        for ev in p.poll(0):
            if ev[1] & mask:
                return True
        return False

    @staticmethod
    def set_interrupt(on):
        try:
            import micropython
            micropython.kbd_intr(3 if on else -1)
        except (ImportError, AttributeError):
            pass
