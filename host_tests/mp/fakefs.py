"""An in-memory filesystem that can lose power at any byte or operation (MicroPython too).

Implements the `storage.Fs` interface (open/rename/remove/size/mkdir; files with read,
readinto, write, seek, close). Power is measured in units: each byte written is one
unit, creating/truncating a file is one, removing is one, and a rename is two (the new
name appears, then the old one goes: FAT renames that way, so a cut in between leaves
both). With `budget` N the first N units land and the device then dies: the operation
under way stops after the bytes that fitted (`tear="drop"`) or finishes its write with
garbage (`tear="garbage"`: the slot has its full length but wrong content), and every
later call raises PowerCut, until `revive()` (the next boot).
`fail_after(n)`: a plain OSError (EIO) at the n-th unit from now, the device stays alive.
"""

import errno


class PowerCut(OSError):
    pass


class FakeFs:
    def __init__(self, files=None, budget=-1, tear="drop"):
        self.files = {}
        if files:
            for k in files:
                self.files[k] = bytearray(files[k])
        self.budget = budget
        self.tear = tear
        self.dead = False
        self.used = 0          # units spent
        self.gen = 0           # bumps on every change (cheap "did anything change")
        self._fail_at = -1

    # ---- power ------------------------------------------------------------------------
    def revive(self, budget=-1):
        self.dead = False
        self.budget = budget

    def fail_after(self, n):
        self._fail_at = self.used + n

    def snapshot(self):
        out = {}
        for k in self.files:
            out[k] = bytes(self.files[k])
        return out

    def _spend(self, n):
        """How many of n units may happen (n when unlimited); dies when cut short."""
        if self.dead:
            raise PowerCut(errno.EIO)
        if self._fail_at >= 0 and self.used + n > self._fail_at:
            self._fail_at = -1
            raise OSError(errno.EIO)
        if self.budget < 0:
            self.used += n
            return n
        k = n if n <= self.budget else self.budget
        self.budget -= k
        self.used += k
        if k < n:
            self.dead = True
        return k

    # ---- Fs interface -----------------------------------------------------------------
    def open(self, path, mode):
        if self.dead:
            raise PowerCut(errno.EIO)
        if mode == "rb":
            if path not in self.files:
                raise OSError(errno.ENOENT)
            return _File(self, path, False)
        if mode == "wb":
            if self._spend(1) < 1:
                raise PowerCut(errno.EIO)
            self.files[path] = bytearray()
            self.gen += 1
            return _File(self, path, True)
        if mode == "r+b":
            if path not in self.files:
                raise OSError(errno.ENOENT)
            return _File(self, path, True)
        raise ValueError("mode " + mode)

    def rename(self, a, b):
        if self.dead:
            raise PowerCut(errno.EIO)
        if a not in self.files:
            raise OSError(errno.ENOENT)
        if b in self.files:
            raise OSError(errno.EEXIST)     # callers must never rename onto a file (FAT)
        if self._spend(1) < 1:
            raise PowerCut(errno.EIO)
        self.files[b] = bytearray(self.files[a])
        self.gen += 1
        if self._spend(1) < 1:
            raise PowerCut(errno.EIO)
        del self.files[a]

    def remove(self, path):
        if self.dead:
            raise PowerCut(errno.EIO)
        if path not in self.files:
            raise OSError(errno.ENOENT)
        if self._spend(1) < 1:
            raise PowerCut(errno.EIO)
        del self.files[path]
        self.gen += 1

    def size(self, path):
        if self.dead:
            raise PowerCut(errno.EIO)
        f = self.files.get(path)
        return -1 if f is None else len(f)

    def mkdir(self, path):
        if self.dead:
            raise PowerCut(errno.EIO)


class _File:
    def __init__(self, fs, path, writable):
        self._fs = fs
        self._path = path
        self._w = writable
        self._pos = 0

    def _data(self):
        if self._fs.dead:
            raise PowerCut(errno.EIO)
        return self._fs.files[self._path]

    def read(self, n=-1):
        d = self._data()
        end = len(d) if n is None or n < 0 else min(len(d), self._pos + n)
        out = bytes(d[self._pos:end])
        self._pos = end if end > self._pos else self._pos
        return out

    def readinto(self, buf):
        b = self.read(len(buf))
        buf[:len(b)] = b
        return len(b)

    def seek(self, off, whence=0):
        d = self._data()
        self._pos = off if whence == 0 else (self._pos + off if whence == 1 else len(d) + off)
        return self._pos

    def write(self, data):
        if not self._w:
            raise OSError(errno.EBADF)
        d = self._data()
        if self._pos > len(d):
            raise OSError(errno.EINVAL)     # the code under test never seeks past the end
        n = len(data)
        k = self._fs._spend(n)
        self._put(d, data[:k])
        if k < n:
            if self._fs.tear == "garbage":
                junk = bytearray(n - k)
                for x in range(n - k):
                    junk[x] = (0xA5 ^ (x * 7)) & 0xFF
                self._put(d, junk)
            raise PowerCut(errno.EIO)
        return n

    def _put(self, d, chunk):
        p = self._pos
        end = p + len(chunk)
        if end > len(d):
            d.extend(bytearray(end - len(d)))
        d[p:end] = chunk
        self._pos = end
        self._fs.gen += 1

    def close(self):
        pass

    def flush(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
