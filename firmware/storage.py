"""Persistent records (calibration, prescription, settings, service code): atomic, CRC-checked files.

One file per record kind, holding a 12-byte header and a JSON payload:
    magic b"IONR" | version u8 | kind u8 | payload length u16 | CRC-32 u32 | payload
(little-endian; the CRC covers the first 8 header bytes and the payload).

Saving never overwrites the only good copy, and never renames onto an existing name
(FAT's rename over a file is remove + rename, not atomic):
    0. recover: make the copy load() would return the main file (see below)
    1. write NAME.new completely and close it
    2. remove NAME.bak; rename NAME -> NAME.bak
    3. rename NAME.new -> NAME                      (committed: save() returns)
load() takes the first valid copy of NAME, NAME.new, NAME.bak. A power cut at any
byte or operation therefore leaves either the old or the new record loadable, and
after save() returned, only the new one. A file that exists but fails any check
(magic, version, kind, length, CRC, JSON, field validation) is never used, not even
in part: load() reports "corrupt" when no copy is valid, "missing" when there is no
file at all, and "recovered" when a copy other than NAME was used.

All file access goes through an `Fs` object (open/rename/remove/size/mkdir), so tests
substitute a filesystem that loses power at any byte. Runs outside the control step.
"""

import json
import struct

try:
    from binascii import crc32
except ImportError:  # a port built without binascii.crc32
    def crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
        return crc ^ 0xFFFFFFFF

MAGIC = b"IONR"
VERSION = 1
HEADER = 12
MAX_PAYLOAD = 1024

KIND_CAL = 1
KIND_RX = 2
KIND_SETTINGS = 3
KIND_AUTH = 4

# load() status
OK = "ok"
RECOVERED = "recovered"   # NAME was missing/damaged; NAME.new or NAME.bak was used
MISSING = "missing"       # no file at all
CORRUPT = "corrupt"       # files exist, none valid: nothing is used
DEFAULT = "default"       # (set by the app) a board default stands in for a missing record


class Fs:
    """The real filesystem (MicroPython `os` / CPython `os`)."""

    def __init__(self):
        import os
        self._os = os

    def open(self, path, mode):
        return open(path, mode)

    def rename(self, a, b):
        self._os.rename(a, b)

    def remove(self, path):
        self._os.remove(path)

    def size(self, path):
        """File size in bytes, or -1 when it does not exist."""
        try:
            return self._os.stat(path)[6]
        except OSError:
            return -1

    def mkdir(self, path):
        try:
            self._os.mkdir(path)
        except OSError:
            pass


def crc(data, start=0):
    return crc32(data, start) & 0xFFFFFFFF


def encode(kind, obj):
    """Header + JSON payload of `obj` (a dict) as bytes."""
    payload = json.dumps(obj).encode()
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("record too large")
    head = MAGIC + struct.pack("<BBH", VERSION, kind, len(payload))
    return head + struct.pack("<I", crc(payload, crc(head))) + payload


def decode(kind, data):
    """The dict stored in `data`, or None if anything about it is wrong."""
    if data is None or len(data) < HEADER or data[:4] != MAGIC:
        return None
    ver, k, n = struct.unpack("<BBH", data[4:8])
    if ver != VERSION or k != kind or len(data) != HEADER + n:
        return None
    if struct.unpack("<I", data[8:12])[0] != crc(data[12:], crc(data[:8])):
        return None
    try:
        obj = json.loads(data[12:].decode())
    except (ValueError, UnicodeError):
        return None
    return obj if isinstance(obj, dict) else None


def read_file(fs, path, limit=HEADER + MAX_PAYLOAD):
    """Whole file as bytes; None when missing or larger than `limit`."""
    n = fs.size(path)
    if n < 0 or n > limit:
        return None
    f = fs.open(path, "rb")
    try:
        return f.read()
    finally:
        f.close()


class Record:
    """One record kind in one file (plus its .new/.bak companions).

    `validate(dict)` returns the normalised dict or raises ValueError; a stored record that
    fails it counts as corrupt. After load(): `data` (dict or None), `status`, `source`.
    """

    def __init__(self, fs, path, kind, validate):
        self.fs = fs
        self.path = path
        self.kind = kind
        self.validate = validate
        self.data = None
        self.status = MISSING
        self.source = None

    def _try(self, path):
        try:
            obj = decode(self.kind, read_file(self.fs, path))
            return None if obj is None else self.validate(obj)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def _find(self):
        """(dict, path, any file present) for the first valid copy."""
        present = False
        for path in (self.path, self.path + ".new", self.path + ".bak"):
            if self.fs.size(path) >= 0:
                present = True
                obj = self._try(path)
                if obj is not None:
                    return obj, path, True
        return None, None, present

    def load(self):
        obj, path, present = self._find()
        self.data = obj
        self.source = path
        if obj is None:
            self.status = CORRUPT if present else MISSING
        else:
            self.status = OK if path == self.path else RECOVERED
        return obj

    def save(self, obj):
        """Validate, write atomically, then adopt `obj`. Raises ValueError (invalid: nothing
        written) or OSError (storage failed: the previous record is still the loadable one)."""
        obj = self.validate(obj)
        data = encode(self.kind, obj)
        fs = self.fs
        main, new, bak = self.path, self.path + ".new", self.path + ".bak"
        # 0. recover: the copy load() would use becomes `main`; never rename a bad main to bak
        _, src, _ = self._find()
        if src != main and fs.size(main) >= 0:
            fs.remove(main)
        if src == new:
            fs.rename(new, main)
        # 1. the new copy, complete and closed
        f = fs.open(new, "wb")
        try:
            f.write(data)
        finally:
            f.close()
        # 2. the current (valid) copy becomes the backup
        if fs.size(main) >= 0:
            if fs.size(bak) >= 0:
                fs.remove(bak)
            fs.rename(main, bak)
        # 3. commit
        fs.rename(new, main)
        self.data = obj
        self.status = OK
        self.source = main
        return obj
