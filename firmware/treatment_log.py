"""Treatment log: one fixed-size, CRC-protected binary record per session, in a ring.

Record (48 bytes, little-endian):
    magic b"TL" | version u8 | flags u8 (1: start is wall-clock epoch s, 2: reverse)
    seq u32 | start u32 (epoch s, or device uptime s) | charge µA·min u32 | load Ω u32
    target µA u16 | duration s u16 | delivered s u16 | paused s u16
    i_min µA u16 | i_mean µA u16 | i_max µA u16 | pauses u16
    end reason u8 | fault code u8 | ramp up s u8 | ramp down s u8 | profile u32 | CRC-32 u32
profile: 1 + the index in profiles.NAMES (0: unknown; records of firmware 0.4 have 0).

The ring is SEGMENTS files of SEG_RECORDS slots (`log00.bin`...); session `seq` (1, 2, ...)
lives at a fixed place: segment ((seq-1) // SEG_RECORDS) % SEGMENTS, slot (seq-1) % SEG_RECORDS.
Appending writes one slot; starting a segment truncates it (dropping the sessions one ring
turn older), so the log always holds at least KEEP = (SEGMENTS-1) * SEG_RECORDS = 500
sessions. Append-only files suit both littlefs (copy-on-write) and FAT.

Power cut at any byte: only the slot being written can be damaged. On load a slot counts
only if its magic, version, CRC and seq-to-slot mapping all hold, so a torn last record
is dropped and every earlier record survives; the next append rewrites that slot.
"""

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

F_EPOCH = 1
F_REVERSE = 2

FIELDS = ("seq", "start", "epoch", "target_ua", "duration_s", "ramp_up_s", "ramp_down_s",
          "reverse", "delivered_s", "charge_uamin", "i_min_ua", "i_mean_ua", "i_max_ua",
          "load_ohm", "pauses", "paused_s", "end", "fault", "profile")


def _u(v, top):
    v = int(v)
    return 0 if v < 0 else (top if v > top else v)


def encode(seq, r):
    """48 bytes for record dict `r` (keys as in FIELDS, `seq` given separately)."""
    flags = (F_EPOCH if r["epoch"] else 0) | (F_REVERSE if r["reverse"] else 0)
    body = struct.pack(
        FMT, MAGIC, VERSION, flags, _u(seq, 0xFFFFFFFF), _u(r["start"], 0xFFFFFFFF),
        _u(r["charge_uamin"], 0xFFFFFFFF), _u(r["load_ohm"], 0xFFFFFFFF),
        _u(r["target_ua"], 0xFFFF), _u(r["duration_s"], 0xFFFF),
        _u(r["delivered_s"], 0xFFFF), _u(r["paused_s"], 0xFFFF),
        _u(r["i_min_ua"], 0xFFFF), _u(r["i_mean_ua"], 0xFFFF), _u(r["i_max_ua"], 0xFFFF),
        _u(r["pauses"], 0xFFFF), _u(r["end"], 0xFF), _u(r["fault"], 0xFF),
        _u(r["ramp_up_s"], 0xFF), _u(r["ramp_down_s"], 0xFF), _u(r.get("profile", 0), 0xFF), 0)
    return body[:SIZE - 4] + struct.pack("<I", crc(body[:SIZE - 4]))


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
            "ramp_down_s": t[18], "reverse": bool(flags & F_REVERSE), "profile": t[19] & 0xFF}


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
        self._clear_ram(0)

    def _clear_ram(self, last):
        self.last = last          # newest seq ever used (0: none)
        self._n = [0] * SEGMENTS          # valid records per segment
        self._first = [0] * SEGMENTS      # lowest valid seq per segment (0: none)
        self._counted = [0] * SEGMENTS    # counted sessions per segment
        self.recent = []          # [(seq, epoch start)] newest counted dated sessions
        self.dropped = 0          # slots holding bytes that are not a valid record

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
        return self.count

    # ---- append -----------------------------------------------------------------------
    def append(self, r):
        """Write record dict `r` as session last+1; return its seq. On OSError nothing in
        RAM changes (a retry rewrites the same slot)."""
        seq = self.last + 1
        seg, slot = place(seq)
        data = encode(seq, r)
        path = self.path(seg)
        off = slot * SIZE
        fs = self.fs
        size = fs.size(path) if slot else -1
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
        """Remove every segment (the caller saved `last` as the settings' log_seq first)."""
        last = self.last
        for seg in range(SEGMENTS):
            if self.fs.size(self.path(seg)) >= 0:
                self.fs.remove(self.path(seg))
        self._clear_ram(last)


def _has_data(buf, off):
    for k in range(off, min(off + SIZE, len(buf))):
        if buf[k]:
            return True
    return False
