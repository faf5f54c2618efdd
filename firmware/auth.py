"""Service-mode access: the technician code as a salted hash, with a persisted rate limit.

The code is never stored: the record (data/auth.rec, a storage.Record, atomic + CRC) holds
    salt     16 random bytes as hex (os.urandom; without it: sha256 of uid, clock, counter)
    hash     sha256 iterated ITERATIONS times over salt + code, as hex
    fails    wrong codes since the last right one
    default  true while the code is still the factory code FACTORY_CODE
No record (factory state): FACTORY_CODE is the code and `code_default` is true. A corrupt
record: the same, but without free tries (every wrong code locks).

Rate limit: FREE_TRIES wrong codes are free; after the n-th wrong code (n >= FREE_TRIES) every
attempt is refused (E_LOCKED, even the right code) for LOCK_BASE_S * 2**(n - FREE_TRIES),
at most LOCK_MAX_S. An attempt is counted on flash BEFORE the code is checked, so a power
cut between the check and the write cannot give a free retry; after a reboot the lockout
of the stored count starts again in full. Attempts refused while locked are not written.

`check()` and `set_code()` take ~1 ms on an x86 host's MicroPython (hash + flash): callers
refuse them while a session runs. Time is passed in as whole seconds of uptime (clock.py
`uptime_s`: small for 34 years, where uptime ms outgrow a 32-bit board's small ints in 12
days); a lock is rounded up a second, never shorter than its length; nothing here sleeps.
"""

import hashlib
from binascii import hexlify, unhexlify

import storage
from schema import BOOL, INT, TEXT, Reject
import schema

ITERATIONS = 2000
FACTORY_CODE = "000000"
CODE_MIN = 6
CODE_MAX = 16
CODE_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
FREE_TRIES = 3
LOCK_BASE_S = 2
LOCK_MAX_S = 900              # 15 min
FAILS_MAX = 0x3FFFFFFF
_HEX = "0123456789abcdef"

SPEC = (
    ("salt", TEXT, 32, 32, True),
    ("hash", TEXT, 64, 64, True),
    ("fails", INT, 0, FAILS_MAX, True),
    ("default", BOOL, 0, 0, True),
)


def validate(obj):
    d = schema.check(obj, SPEC)
    for k in ("salt", "hash"):
        for c in d[k]:
            if c not in _HEX:
                raise Reject("E_RANGE", k + " must be lower-case hex")
    return d


def lock_s(fails):
    """How long (s) attempts are refused after the `fails`-th wrong code."""
    if fails < FREE_TRIES:
        return 0
    n = fails - FREE_TRIES
    if n >= 20:
        return LOCK_MAX_S
    t = LOCK_BASE_S << n
    return t if t < LOCK_MAX_S else LOCK_MAX_S


def _lock_end(fails, now_s):
    """The uptime second (int) the lock after the `fails`-th wrong code ends, from uptime
    `now_s`: whole seconds, so one more, and the lock never ends before its length."""
    left = lock_s(fails)
    return now_s + left + 1 if left else now_s


def digest(salt_hex, code):
    """Hex of sha256 iterated ITERATIONS times over salt + code."""
    h = hashlib.sha256(unhexlify(salt_hex) + code.encode()).digest()
    for _ in range(ITERATIONS - 1):
        h = hashlib.sha256(h).digest()
    return hexlify(h).decode()


def code_ok(code):
    """None, or why `code` may not become the technician code."""
    if len(code) < CODE_MIN or len(code) > CODE_MAX:
        return "code must have %d..%d characters" % (CODE_MIN, CODE_MAX)
    for c in code:
        if c not in CODE_CHARS:
            return "code may only hold letters and digits"
    if code == FACTORY_CODE:
        return "the factory code cannot be the new code"
    return None


def _same(a, b):
    """Compare two strings of equal length in time independent of where they differ."""
    if len(a) != len(b):
        return False
    x = 0
    for k in range(len(a)):
        x |= ord(a[k]) ^ ord(b[k])
    return x == 0


class Auth:
    def __init__(self, record, now_s=0, uid=None, urandom=None, ticks=None):
        """`record`: a loaded storage.Record (validate above). `now_s`: uptime at boot: a
        stored failure count locks from here. `urandom(n)`: random bytes (default
        os.urandom when the port has it). `ticks()`: any counter, for the fallback salt."""
        self.record = record
        self._uid = uid
        self._ticks = ticks
        self._n = 0
        if urandom is None:
            try:
                import os
                urandom = getattr(os, "urandom", None)
            except ImportError:
                urandom = None
        self._urandom = urandom
        d = record.data
        if d is not None:
            self.fails = d["fails"]
        elif record.status == storage.CORRUPT:
            self.fails = FREE_TRIES      # no free tries against a damaged record
        else:
            self.fails = 0
        self.lock_until = _lock_end(self.fails, now_s)

    @property
    def code_default(self):
        d = self.record.data
        return d is None or d["default"]

    def locked_s(self, now_s):
        """Seconds left of the lock at uptime `now_s` (0: not locked)."""
        left = self.lock_until - now_s
        return left if left > 0 else 0

    def _salt(self):
        u = self._urandom
        if u is not None:
            try:
                b = u(16)
                if len(b) == 16:
                    return hexlify(b).decode()
            except (OSError, NotImplementedError):
                pass
        self._n += 1
        t = self._ticks() if self._ticks is not None else 0
        seed = "%s|%d|%d|%s" % (self._uid, t, self._n, self.record.data)
        return hexlify(hashlib.sha256(seed.encode()).digest()[:16]).decode()

    def _save(self, d):
        try:
            self.record.save(d)
        except OSError as e:
            raise Reject("E_STORAGE", "storage write failed (%s): nothing changed" % e)

    def check(self, code, now_s):
        """True for the right code; raises Reject E_LOCKED (locked: nothing written),
        E_STORAGE (the attempt could not be counted: not checked), E_AUTH (wrong code:
        counted, maybe locking)."""
        left = self.locked_s(now_s)
        if left:
            raise Reject("E_LOCKED", "too many wrong codes: locked for %d s" % left)
        d = self.record.data
        if d is None:       # factory state (or a corrupt record): the factory code
            salt = self._salt()
            d = {"salt": salt, "hash": digest(salt, FACTORY_CODE), "fails": self.fails,
                 "default": True}
        counted = dict(d)
        counted["fails"] = self.fails + 1 if self.fails < FAILS_MAX else FAILS_MAX
        self._save(counted)          # counted before checked: a power cut gives no free try
        self.fails = counted["fails"]
        if _same(digest(counted["salt"], code), counted["hash"]):
            ok = dict(counted)
            ok["fails"] = 0
            try:
                self.record.save(ok)
                self.fails = 0
            except OSError:
                pass                 # right code; the count is reset at the next save
            self.lock_until = now_s
            return True
        self.lock_until = _lock_end(self.fails, now_s)
        left = lock_s(self.fails)
        if left:
            raise Reject("E_AUTH", "wrong code (%d wrong): locked for %d s" % (
                self.fails, left))
        raise Reject("E_AUTH", "wrong code (%d wrong; %d more before a lockout)" % (
            self.fails, FREE_TRIES - self.fails))

    def set_code(self, code):
        """Store a new code (fresh salt, counter cleared); Reject E_RANGE / E_STORAGE."""
        why = code_ok(code)
        if why is not None:
            raise Reject("E_RANGE", why)
        salt = self._salt()
        self._save({"salt": salt, "hash": digest(salt, code), "fails": 0, "default": False})
        self.fails = 0
