"""Treatment log: one fixed-size, CRC-protected binary record per session, in a ring.

Record (48 bytes, little-endian):
    magic b"TL" | version u8 | flags u8 (1: start is wall-clock epoch s, 2: reverse)
    seq u32 | start u32 (epoch s, or device uptime s) | charge µA·min u32 | load Ω u32
    target µA u16 | duration s u16 | delivered s u16 | paused s u16
    i_min µA u16 | i_mean µA u16 | i_max µA u16 | pauses u16
    end reason u8 | fault code u8 | ramp up s u8 | ramp down s u8
    profile u8 | attempts u16 | 0 u8 | CRC-32 u32
profile: 1 + the index in profiles.NAMES (0: unknown; records of firmware 0.4 have 0).
attempts: sessions under ATTEMPT_UAMIN since the previous record. end: session.END_NAMES.
`seq` is the session number (reserve()); records are ordered by it, never by dates.

Checkpoints: a running session's record so far, in OPEN_SLOTS slots of `<prefix>open.bin`
(checkpoint(), void()); load() turns those missing from the log into `orphans`.

The ring is SEGMENTS files of SEG_RECORDS slots (`log00.bin`...); session `seq` (1, 2, ...)
lives at a fixed place: segment ((seq-1) // SEG_RECORDS) % SEGMENTS, slot (seq-1) % SEG_RECORDS.
Appending writes one slot; starting a segment truncates it (dropping the sessions one ring
turn older), so the log always holds at least KEEP = (SEGMENTS-1) * SEG_RECORDS = 500
sessions. Append-only files suit both littlefs (copy-on-write) and FAT.

Power cut at any byte: only the slot being written can be damaged. On load a slot counts
only if its magic, version, CRC and seq-to-slot mapping all hold, so a torn last record
is dropped and every earlier record survives; the next append rewrites that slot.
"""

# (Comments, not docstrings, from here on where the text is long: on a board the
# compiler holds a docstring in RAM while it compiles, and the Pico has little to spare.)
#
# Record details. attempts saturate at 65535; firmware 0.5 wrote a record per attempt
# and 0 in those bytes (the whole profile word's upper bytes), so the layout and VERSION
# are unchanged and either firmware reads the other's records. END_INTERRUPTED (8): a
# session cut by a reset, written from its last checkpoint.
#
# Session numbers: handed out once to every session that delivered RECORD_UAMIN, in the
# order they started, never reused (not after clear() either: the settings keep the
# floor). A seq missing between `first` and `last` is a record that was lost (a write that
# failed for good, a damaged slot): the gaps are provable.
#
# Checkpoints (issue 15): a running session is on record from the moment it delivered
# RECORD_UAMIN (a second or two into the ramp), then at least every CHECKPOINT_MS: its
# record so far (end = interrupted) goes into one of OPEN_SLOTS 48-byte slots of
# open.bin (192 bytes: an inline file on littlefs), with a write counter in the record's
# last spare byte (0 in log records). A write goes to a slot that holds nothing valid, or
# a session already in the log, or a checkpoint superseded by a newer one of its session;
# never over the newest checkpoint of a session not in the log yet. A power cut during a
# checkpoint therefore tears only that slot and the previous checkpoint stays. load()
# turns the newest checkpoint of every session newer than the log's last record into an
# orphan (the app appends them as pending records): after any reset the log shows the
# session as interrupted with the charge and time delivered up to its last checkpoint.
# A session on record that ended below ATTEMPT_UAMIN is an attempt after all: void()
# writes a checkpoint that says so (END_VOID, never logged) and gives its number back,
# so the numbers of records stay gapless. Wear: docs/protocol.md, section 6.

import struct

from storage import crc

MAGIC = b"TL"
VERSION = 1
FMT = "<2sBBIIIIHHHHHHHHBBBBII"
SIZE = 48
SEG_RECORDS = 50
SEGMENTS = 11
KEEP = (SEGMENTS - 1) * SEG_RECORDS
RECENT = 16           # newest counted, wall-clock-dated sessions kept in RAM (schedule)
OPEN_SLOTS = 4        # checkpoint slots: the running session's two newest + two others
CHECKPOINT_MS = 60000  # a running session's record is rewritten at least this often
#                        (issue 15: "at least every 60 s of treatment")
# A session that delivered less than this is an attempt: counted in the next record's
# `attempts`, never a record of its own (it cannot push a treatment out of the ring).
# 50 µA·min: above 13 contact-probe cycles (300 µA and 600 µA for 250 ms each:
# limits.PROBE_UA, PROBE_PHASE_MS; 3.75 µA·min a cycle), below the 83 µA·min of the
# gentlest ramp a prescription allows (1 mA, the lowest target_ua, reached in 10 s,
# limits.MIN_RAMP_MS), and 0.03 % of a standard session (15 mA x 10 min = 150 mA·min).
ATTEMPT_UAMIN = 50
# A session is on record (numbered, first checkpoint) once it delivered this: half of
# ATTEMPT_UAMIN, so a cut during that first write loses a session that is still an
# attempt (a control step adds at most 25 mA x 5 ms = 0.002 µA·min: far less than 25).
RECORD_UAMIN = 25
END_INTERRUPTED = 8   # session.END_INTERRUPTED: cut by a reset, from its last checkpoint
END_VOID = 255        # a checkpoint only: that session ended as an attempt (not logged)

F_EPOCH = 1
F_REVERSE = 2

# the checkpoint's record, packed in place (module-level: one checkpoint at a time, and
# a log object stays copyable)
_CK_BUF = bytearray(SIZE)
_CK_BODY = memoryview(_CK_BUF)[:SIZE - 4]

FIELDS = ("seq", "start", "epoch", "target_ua", "duration_s", "ramp_up_s", "ramp_down_s",
          "reverse", "delivered_s", "charge_uamin", "i_min_ua", "i_mean_ua", "i_max_ua",
          "load_ohm", "pauses", "paused_s", "end", "fault", "profile", "attempts")


def _u(v, top):
    v = int(v)
    return 0 if v < 0 else (top if v > top else v)


def encode(seq, r):
    """48 bytes for record dict `r` (keys as in FIELDS, `seq` given separately;
    `profile` and `attempts` optional, 0)."""
    buf = bytearray(SIZE)
    pack_into(buf, seq, r["epoch"], r["reverse"], r["start"], r["charge_uamin"],
              r["load_ohm"], r["target_ua"], r["duration_s"], r["delivered_s"],
              r["paused_s"], r["i_min_ua"], r["i_mean_ua"], r["i_max_ua"], r["pauses"],
              r["end"], r["fault"], r["ramp_up_s"], r["ramp_down_s"], r.get("profile", 0),
              r.get("attempts", 0))
    seal(buf, memoryview(buf)[:SIZE - 4])
    return bytes(buf)


def pack_into(buf, seq, epoch, reverse, start, charge, load, target, duration, delivered,
              paused, i_min, i_mean, i_max, pauses, end, fault, up, down, profile,
              attempts):
    """Encode one record into 48-byte `buf` without a dict; seal() adds its CRC."""
    flags = (F_EPOCH if epoch else 0) | (F_REVERSE if reverse else 0)
    struct.pack_into(
        FMT, buf, 0, MAGIC, VERSION, flags, _u(seq, 0xFFFFFFFF), _u(start, 0xFFFFFFFF),
        _u(charge, 0xFFFFFFFF), _u(load, 0xFFFFFFFF), _u(target, 0xFFFF),
        _u(duration, 0xFFFF), _u(delivered, 0xFFFF), _u(paused, 0xFFFF),
        _u(i_min, 0xFFFF), _u(i_mean, 0xFFFF), _u(i_max, 0xFFFF), _u(pauses, 0xFFFF),
        _u(end, 0xFF), _u(fault, 0xFF), _u(up, 0xFF), _u(down, 0xFF),
        _u(profile, 0xFF) | (_u(attempts, 0xFFFF) << 8), 0)


def seal(buf, body):
    """Write the CRC of `body` (a memoryview of buf's first 44 bytes) into `buf`."""
    struct.pack_into("<I", buf, SIZE - 4, crc(body))


def decode(buf, off=0):
    """The record dict at `buf[off:off+48]`, or None if that slot is not a valid record."""
    if len(buf) < off + SIZE:
        return None
    t = struct.unpack_from(FMT, buf, off)
    if t[0] != MAGIC or t[1] != VERSION:
        return None
    if t[20] != crc(bytes(buf[off:off + SIZE - 4])):
        return None
    flags = t[2]
    return {"seq": t[3], "start": t[4], "epoch": bool(flags & F_EPOCH), "charge_uamin": t[5],
            "load_ohm": t[6], "target_ua": t[7], "duration_s": t[8], "delivered_s": t[9],
            "paused_s": t[10], "i_min_ua": t[11], "i_mean_ua": t[12], "i_max_ua": t[13],
            "pauses": t[14], "end": t[15], "fault": t[16], "ramp_up_s": t[17],
            "ramp_down_s": t[18], "reverse": bool(flags & F_REVERSE), "profile": t[19] & 0xFF,
            "attempts": (t[19] >> 8) & 0xFFFF}


def place(seq):
    """(segment, slot) of session `seq` (>= 1)."""
    return ((seq - 1) // SEG_RECORDS) % SEGMENTS, (seq - 1) % SEG_RECORDS


END_DOSE = 6          # session.END_DOSE: a dose session that delivered its whole dose


def counts(r):
    """A session counts towards the plan when >= 80 % of its prescribed time was delivered
    (a dose session: when it delivered its dose; its duration is only the longest allowed)."""
    if r.get("end") in (END_DOSE, "dose"):      # the code here, its name on the host
        return True
    return r["duration_s"] > 0 and r["delivered_s"] * 100 >= r["duration_s"] * 80


class TreatmentLog:
    def __init__(self, fs, prefix):
        self.fs = fs
        self.prefix = prefix
        self.open_path = prefix + "open.bin"
        self._oseq = [0] * OPEN_SLOTS      # per slot: session number (0: nothing valid)
        self._ock = [0] * OPEN_SLOTS       # per slot: write counter
        self._ck = 0                       # the newest checkpoint's write counter
        self._of = None                    # open.bin, kept open once a checkpoint opened it
        self._osize = -1                   # its size (-1: no file)
        self.orphans = []         # checkpointed sessions missing from the log (load())
        self._clear_ram(0)
        self.reserved = 0         # newest seq handed out (>= last)

    def _clear_ram(self, last):
        self.last = last          # newest seq in the log (or the floor after clear())
        self._n = [0] * SEGMENTS          # valid records per segment
        self._first = [0] * SEGMENTS      # lowest valid seq per segment (0: none)
        self._counted = [0] * SEGMENTS    # counted sessions per segment
        self.recent = []          # [(seq, epoch start)] newest counted dated sessions
        self.dropped = 0          # slots holding bytes that are not a valid record
        self.time_floor = 0       # newest dated record's start + delivered + paused (s)

    def path(self, seg):
        return "%s%02d.bin" % (self.prefix, seg)

    # ---- state ------------------------------------------------------------------------
    @property
    def count(self):
        return sum(self._n)

    @property
    def first(self):
        f = 0
        for x in self._first:
            if x and (f == 0 or x < f):
                f = x
        return f

    @property
    def counted(self):
        return sum(self._counted)

    def _note(self, r):
        self._floor(r)
        seg = place(r["seq"])[0]
        self._n[seg] += 1
        if self._first[seg] == 0 or r["seq"] < self._first[seg]:
            self._first[seg] = r["seq"]
        if counts(r):
            self._counted[seg] += 1
            if r["epoch"]:
                rec = self.recent
                rec.append((r["seq"], r["start"]))
                rec.sort()
                if len(rec) > RECENT:
                    del rec[0]

    def _floor(self, r):
        if r["epoch"]:
            t = r["start"] + r["delivered_s"] + r["paused_s"]
            if t > self.time_floor:
                self.time_floor = t

    # ---- load -------------------------------------------------------------------------
    def load(self, seq_floor=0):
        """Scan every segment. `seq_floor`: a session counter that must not be reused (kept
        in the settings by clear())."""
        self._clear_ram(seq_floor)
        found = []
        for seg in range(SEGMENTS):
            n = self.fs.size(self.path(seg))
            if n <= 0:
                continue
            try:
                f = self.fs.open(self.path(seg), "rb")
                try:
                    buf = f.read(SEG_RECORDS * SIZE)
                finally:
                    f.close()
            except OSError:
                self.dropped += 1       # unreadable segment: its sessions are not counted
                continue
            for slot in range((len(buf) + SIZE - 1) // SIZE):
                r = decode(buf, slot * SIZE)
                if r is None or r["seq"] < 1 or place(r["seq"]) != (seg, slot):
                    if _has_data(buf, slot * SIZE):
                        self.dropped += 1
                    continue
                found.append(r)
                if r["seq"] > self.last:
                    self.last = r["seq"]
        for r in found:
            if r["seq"] > self.last - SEGMENTS * SEG_RECORDS:   # not stale
                self._note(r)
        self.reserved = self.last
        self._load_open()
        return self.count

    def _load_open(self):
        # the newest checkpoint of each session newer than the log's last record becomes
        # an orphan (oldest session first), unless it is a void one
        self._close_open()
        oseq = self._oseq
        ock = self._ock
        for k in range(OPEN_SLOTS):
            oseq[k] = 0
            ock[k] = 0
        self.orphans = []
        buf = b""
        self._osize = self.fs.size(self.open_path)
        if self._osize > 0:
            try:
                f = self.fs.open(self.open_path, "rb")
                try:
                    buf = f.read(OPEN_SLOTS * SIZE)
                finally:
                    f.close()
            except OSError:
                buf = b""
        best = {}
        top = -1
        for k in range(OPEN_SLOTS):
            r = decode(buf, k * SIZE)
            if r is None or r["seq"] < 1:
                continue
            ck = buf[k * SIZE + SIZE - 5]
            oseq[k] = r["seq"]
            ock[k] = ck
            old = best.get(r["seq"])
            if old is None or _newer(ck, old[0]):
                best[r["seq"]] = (ck, r)
            if top < 0 or r["seq"] > oseq[top] or (r["seq"] == oseq[top] and _newer(ck, ock[top])):
                top = k
        self._ck = ock[top] if top >= 0 else 0
        for seq in sorted(best):
            r = best[seq][1]
            if r["end"] != END_VOID:
                if seq > self.reserved:
                    self.reserved = seq
                if seq > self.last:
                    self.orphans.append(r)
                    self._floor(r)

    # ---- session numbers and checkpoints ---------------------------------------------
    def reserve(self):
        """The next session number (a session gets one once it is on record)."""
        if self.reserved < self.last:
            self.reserved = self.last
        self.reserved += 1
        return self.reserved

    def checkpoint(self, seq, epoch, reverse, start, charge, load, target, duration,
                   delivered, paused, i_min, i_mean, i_max, pauses, end, fault, up, down,
                   profile, attempts):
        """Write session `seq`'s record so far (pack_into's fields) into a checkpoint
        slot. Raises OSError (nothing in RAM changes: a retry picks the same slot)."""
        # one seek, one 48-byte write and a flush of the file kept open (opened, or
        # created zero-filled, by prepare() or the first checkpoint: the only step that
        # allocates much)
        buf = _CK_BUF
        pack_into(buf, seq, epoch, reverse, start, charge, load, target, duration,
                  delivered, paused, i_min, i_mean, i_max, pauses, end, fault, up, down,
                  profile, attempts)
        ck = (self._ck + 1) & 0xFF
        buf[SIZE - 5] = ck                      # the profile word's spare top byte
        seal(buf, _CK_BODY)
        k = self._slot_for(seq)
        f = self._of
        try:
            if f is None:
                f = self._open_file()
            f.seek(k * SIZE)
            f.write(buf)
            f.flush()
        except OSError as e:
            self._close_open()
            raise e                   # (a bare raise: not in the native emitter)
        self._oseq[k] = seq
        self._ock[k] = ck
        self._ck = ck
        if seq > self.reserved:
            self.reserved = seq
        return k

    def prepare(self):
        """Open (or create) the checkpoint file (the app: as a session begins, before the
        collector goes off). Raises OSError."""
        if self._of is None:
            self._open_file()

    def _open_file(self):
        fs = self.fs
        path = self.open_path
        if self._osize < OPEN_SLOTS * SIZE:
            # create, or complete a short file (never seek past the end: FAT, the fake fs)
            if self._osize < 0:
                f = fs.open(path, "wb")
                self._osize = 0
            else:
                f = fs.open(path, "r+b")
            try:
                f.seek(self._osize)
                f.write(bytes(OPEN_SLOTS * SIZE - self._osize))
            finally:
                f.close()
            self._osize = OPEN_SLOTS * SIZE
        self._of = fs.open(path, "r+b")
        return self._of

    def _close_open(self):
        f = self._of
        self._of = None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass

    def void(self, seq):
        """Session `seq` ended as an attempt after it was on record: a void checkpoint,
        then its number back. Raises OSError."""
        self.checkpoint(seq, False, False, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, END_VOID, 0,
                        0, 0, 0, 0)
        self.release(seq)

    def release(self, seq):
        """Give number `seq` back (no record, no live checkpoint)."""
        if seq == self.reserved and seq > self.last:
            self.reserved = seq - 1

    def _slot_for(self, seq):
        # a slot whose loss costs nothing: empty or invalid, a session already in the
        # log, a checkpoint superseded by a newer one of its session; else the newest
        # checkpoint of the oldest other session (three others waiting to be logged:
        # writes failing for good)
        oseq = self._oseq
        ock = self._ock
        for k in range(OPEN_SLOTS):
            if oseq[k] <= self.last:            # 0: nothing valid there
                return k
        oldest = -1
        for k in range(OPEN_SLOTS):
            for j in range(OPEN_SLOTS):
                if j != k and oseq[j] == oseq[k] and _newer(ock[j], ock[k]):
                    return k                     # superseded
            if oseq[k] != seq and (oldest < 0 or oseq[k] < oseq[oldest]):
                oldest = k
        return oldest

    # ---- append -----------------------------------------------------------------------
    def append(self, r):
        """Write record dict `r` as session r["seq"] (if given: newer than `last`; the seqs
        skipped stay gaps) or last+1; return its seq. On OSError nothing in RAM changes."""
        seq = r.get("seq") or self.last + 1
        if seq <= self.last:
            raise ValueError("seq %d not after the log's last %d" % (seq, self.last))
        seg, slot = place(seq)
        data = encode(seq, r)
        path = self.path(seg)
        off = slot * SIZE
        fs = self.fs
        # the first write of this ring turn into the segment truncates it (its records
        # are a turn older: at most seq - SEG_RECORDS * (SEGMENTS - 1) - 1, out of KEEP)
        fresh = slot == 0 or self.last < seq - slot
        size = -1 if fresh else fs.size(path)
        if size < 0:
            f = fs.open(path, "wb")      # a new ring turn: drop this segment's old sessions
            self._drop_segment(seg)
            size = 0
        else:
            f = fs.open(path, "r+b")
        try:
            if size < off:               # slots skipped (after clear): fill, never seek past EOF
                f.seek(size)
                f.write(bytes(off - size))
            f.seek(off)
            f.write(data)
        finally:
            f.close()
        self.last = seq
        if seq > self.reserved:
            self.reserved = seq
        rec = decode(data)
        self._note(rec)
        return seq

    def _drop_segment(self, seg):
        lo = self._first[seg]
        self._n[seg] = 0
        self._first[seg] = 0
        self._counted[seg] = 0
        if lo:
            hi = lo + SEG_RECORDS
            self.recent = [x for x in self.recent if not lo <= x[0] < hi]

    # ---- read -------------------------------------------------------------------------
    def read(self, seq):
        """Record dict of session `seq`, or None (never written, dropped, or damaged)."""
        if seq < 1 or seq > self.last or seq <= self.last - SEGMENTS * SEG_RECORDS:
            return None
        seg, slot = place(seq)
        if self.fs.size(self.path(seg)) < (slot + 1) * SIZE:
            return None
        f = self.fs.open(self.path(seg), "rb")
        try:
            f.seek(slot * SIZE)
            buf = f.read(SIZE)
        finally:
            f.close()
        r = decode(buf)
        return r if r is not None and r["seq"] == seq else None

    def page(self, start, n, scan=64):
        """Up to `n` records from session `start` on (at most `scan` slots looked at).
        Returns (records, next seq to ask for, or 0 when past the newest)."""
        first = self.first
        seq = start if start > first else first
        if seq == 0:
            return [], 0
        out = []
        end = seq + scan
        while seq <= self.last and len(out) < n and seq < end:
            r = self.read(seq)
            if r is not None:
                out.append(r)
            seq += 1
        return out, (seq if seq <= self.last else 0)

    # ---- clear ------------------------------------------------------------------------
    def clear(self):
        """Remove every segment (the caller saved `last` as the settings' log_seq first),
        and the checkpoints unless one is of a session not logged yet."""
        last = self.last
        for seg in range(SEGMENTS):
            if self.fs.size(self.path(seg)) >= 0:
                self.fs.remove(self.path(seg))
        waiting = False
        for k in range(OPEN_SLOTS):
            if self._oseq[k] > last:
                waiting = True
        if not waiting and self.fs.size(self.open_path) >= 0:
            self._close_open()
            self.fs.remove(self.open_path)
            self._osize = -1
            for k in range(OPEN_SLOTS):
                self._oseq[k] = 0
        self._clear_ram(last)


def _newer(a, b):
    # checkpoint counter `a` written after `b` (u8, wrapping; slots of one session are
    # written within far fewer than 128 checkpoints of each other)
    return a != b and ((a - b) & 0xFF) < 128


def _has_data(buf, off):
    for k in range(off, min(off + SIZE, len(buf))):
        if buf[k]:
            return True
    return False
