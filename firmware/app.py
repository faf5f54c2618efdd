"""Everything main's poll does between control steps: host protocol, log, telemetry.

`App.poll()` is passed to `main.run()` as `poll`: it runs after every `tick()` and must
never hold the loop for long. Per call it does, in this order:
  1. the clock (uptime; wall-clock time once the host set it);
  2. the recorder: notices a session begin or end, sums TREAT current and load;
  3. at most one flash write: voiding the checkpoints of a session that ended as an
     attempt; else a log append, only while no current flows (DONE/FAULT/IDLE, output
     disabled); else, while a session runs, its checkpoint when due (treatment_log.py:
     on record once it delivered 25 µA·min, then every 60 s; one 48-byte write to
     a file kept open). On a board whose flash writes stall the CPU (`flash_stalls`)
     voids and checkpoints also wait until the output is disabled (WAIT_CONTACT,
     PAUSED, the session's end): see below. A failed append or checkpoint is retried at
     most once a second;
  4. at most one telemetry line, if enabled and due (skipped, and counted, when the
     output stream reports it is not writable); a poll that sent one does nothing more;
  5. input, one stage per poll (on an RP2040 each stage takes at most ~0.5 ms): a long
     reply being written goes on (its fill stages, one a poll, then FIELDS_PER_POLL
     fields a poll, then the line is sent: `status` takes 18 polls); else a line fed in the last poll is
     parsed (a refusal is answered); else a parsed request is answered; else, right
     after an answer, nothing: that poll collects the garbage if the heap is getting
     low (MicroPython; asked at most every GC_CHECK_MS, only after work done with the
     heap unlocked: `_dirty`) and no session runs, so a
     collection never adds to the cost of a line; else at most READ_MAX bytes are read
     from the host and fed up to the end of ONE line.
So a flood of input costs at most one short read and one reply per four loop periods;
the rest waits in the host's and the USB stack's buffers (flow control).
No collection while a session runs: one takes ~17 ms on an RP2040 (3.4 loop periods), so
the loop would stop for longer than the safety monitor allows while current flows (it
faults `overrun`). From a session's start to its end the automatic collector is off
(gc.disable): an allocation that finds no room raises MemoryError instead of collecting,
and the line that needed it is answered E_BUSY (protocol.busy: nothing allocated,
nothing changed by a refused line; a command whose reply ran out of room after acting
is still answered E_BUSY). The control step (heap locked) and telemetry (preallocated)
never allocate, so the treatment goes on; the collector is back on, and collects, once
the session has ended (collect(): the output is off then), and the start command collects
before it starts one, so a session begins with the whole free heap, not the garbage the
requests before it left.
A session's polls also run with the heap locked (`lock_polls`, main: every board whose
collector is off): an allocation there raises at once, so a request whose answer would
allocate is refused E_BUSY instead of draining, unseen, a heap the collector cannot
reclaim, and the poll's frames live on the C stack (faster, as the step's). Unlocked
are only the polls that allocate by design (_may_lock: the session's start and end, its
numbering, a checkpoint or void due, service mode) and, within a locked poll, a line
read by the bytecode scanner (flatreq.MACHINE_CODE) or a command that is not quick
(commands.QUICK: its reply is built the usual way). The emulated RP2040 found such a
request: in dose mode `status` computed the time left as a heap int (charge.py).
A board's UI (ui.py) is polled in the same lock (`ui_poll`, main.loop_poll), in every
poll but one that sent telemetry, parsed or answered a line (_serve); a button's command unlocks the heap
for itself (release / relock).
Between sessions the polls run heap-locked too, unless they have work that allocates by
design (_idle_may_lock: a session's record, the heap's measurement, service mode, the
garbage check after unlocked work): a flat `status` or `identify` is answered in place
(commands.IDLE_QUICK), any other line is read and answered unlocked.
Commands that write flash or drive the output are refused while a session runs.

Flash writes stall the CPU on an RP2040 and an ESP32: the chip's program or erase runs
with execute-in-place off and interrupts masked, and one checkpoint (littlefs copies the
file's block: an erase) took 61-67 ms on the emulated Pico with the W25Q16JV's typical
times, up to 400 ms per erase by its datasheet. While the output is enabled that stall
is an unregulated, unmonitored period: the monitor faults `overrun` after it (3 of 3
sessions faulted at their first checkpoint). So on such a board nothing is written to
flash while the output is enabled; a continuous treatment's checkpoints wait for a
pause or its end, and a power cut during it loses the session's record (docs/protocol.md).

Service mode (`service`) is never on at boot on a board: `service_enter` with the technician
code (auth.Auth) turns it on; the poll turns it off after SERVICE_IDLE_MS without a
command and as soon as a treatment runs (whoever started it: the host or a button).
A technician's calibration hold (cal_hold, profiles.MODE_CAL) keeps it; while in service
mode the poll also feeds the hold's raw-code sampler (calhold.CalSampler). A hold whose
technician went silent for SERVICE_IDLE_MS is stopped (it ramps down).
"""

import flatreq
import profiles
import records
import safety
import session as sm
from session import DONE, FAULT, IDLE
import storage
from auth import Auth
from calhold import CalSampler
from calibration import Calibration
from clock import Clock, ms_add, ms_diff
from commands import Commands
from protocol import Protocol
from health import LoopHealth
from recorder import Recorder
from telemetry import TelLine
from treatment_log import CHECKPOINT_MS, RECORD_UAMIN

READ_MAX = 8           # bytes read per poll: ~35 µs each on an RP2040 (hostio.py), so 0.3 ms
FIELDS_PER_POLL = 3    # a long reply's fields written per poll (status: 36 in 12 polls,
#                        each ~0.35 ms on an RP2040, after its four fill stages)
GC_LOW = 24 * 1024     # collect in a quiet poll when less than this is free
GC_CHECK_MS = 1000     # ...asked at most this often (gc.mem_free: ~8.6 ms on an RP2040)
_LOG_RETRY_MS = 1000
_USABLE = (storage.OK, storage.RECOVERED, storage.DEFAULT)


def _no_lock():
    """Where the heap cannot be locked (CPython; App(lock_polls=False))."""


class App:
    SERVICE_IDLE_MS = 300000       # service mode ends after 5 min without a command

    def __init__(self, ctrl, store, write, ticks_us, reader=None, writable=None,
                 service=False, uid=None, hw=None, sleep_us=None, default_cal=None,
                 on_active=None, service_button=None, urandom=None, health=None,
                 session_gc_off=False, write_n=None, flash_stalls=False,
                 lock_polls=False):
        """`store`: a loaded records.Store. `write(data)`: one output line
        (bytes-like; it must be consumed before write returns: telemetry reuses its buffer).
        `write_n(buf, n)`: buf[0:n] as one line, without a view (optional). `reader`:
        `.readinto(buf) -> n` without blocking, or None. `writable()`: False when output
        would block (telemetry is then skipped). `hw`/`sleep_us`: the board's hardware and
        a sleep, for the self test (without them it only reads the idle channels).
        `default_cal`: the board's calibration dict, used only while none is stored.
        `session_gc_off`: the collector off while a session runs (main: every board but
        one whose plant allocates in-process, boards/sim.py's SESSION_GC_OFF).
        `on_active(bool)`: told when a session starts or ends (e.g. Ctrl-C off/on).
        `service`: start in service mode (in-process tests and tools only; never on a
        board). `service_button`: None = the board has no service button (the code alone
        suffices), True = held at power-up, False = not held (service_enter refused).
        `urandom(n)`: random bytes for the code's salt (default os.urandom).
        `health`: main.run's health.LoopHealth (status shows it; a fresh one if None).
        `flash_stalls`: the board's flash writes stall the CPU (board.FLASH_WRITE_STALLS;
        main: True unless the board says otherwise): no flash write while the output is
        enabled. `lock_polls`: a session's polls run with the heap locked where
        MicroPython locks it (main: with `session_gc_off`; see _may_lock)."""
        self.ctrl = ctrl
        self.store = store
        self.board = ctrl.board
        self.board_name = getattr(self.board, "NAME", "?")
        self.uid = uid
        self.clock = Clock(ticks_us)
        self.service = service
        self.service_button = service_button
        self._service_seen = 0
        self.auth = Auth(store.auth, 0, uid, urandom, ticks_us)
        self.profile_name = None       # the catalogue profile of the last session started
        self.recorder = Recorder(store.log)
        # sessions a reset cut short (their last checkpoints) are logged first
        self.recorder.pending.extend(store.log.orphans)
        store.log.orphans = []
        self.cal = CalSampler(ctrl, self.clock)
        self.commands = Commands(self)
        self.proto = Protocol(self.commands.handle, write, names=self.commands.names(),
                              write_n=write_n)
        self._reader = reader
        self._writable = writable
        self._hw = hw
        self._sleep_us = sleep_us
        self._on_active = on_active
        self._active = False
        self.health = health if health is not None else LoopHealth()
        self._tel = TelLine(sm.NAMES, safety.NAMES)
        self.tel_hz = 0
        self._tel_next = 0
        self.tel_sent = 0
        self.tel_dropped = 0
        self.log_errors = 0
        self._log_retry = -1               # clock.ms of the log's next try (-1: now)
        self.checkpoint_errors = 0
        self._void_retry = -1              # clock.ms of the void's next try (-1: now)
        self._rbuf = bytearray(READ_MAX)
        self._rpos = 0
        self._rend = 0
        self._answered = False
        self._line = -1                    # a fed line waits to be parsed: its length
        self._req = False                  # a parsed request waits for its answer
        self.proto.on_line = self._parse_line
        self.proto.fields_per_poll = FIELDS_PER_POLL
        self.collections = 0
        self._gc_checked = -1              # clock.ms of the last check (-1: none yet)
        self._session_gc_off = session_gc_off
        # a session's poll runs with the heap locked (_may_lock): its frames then live on
        # the C stack (faster), and a request whose answer would allocate is refused
        # E_BUSY instead of draining a heap the collector (off) cannot reclaim
        self._lock = self._unlock = _no_lock
        self._locking = False
        self.locked_polls = 0              # polls run with the heap locked (the bench's),
        self.unlocked_answers = 0          # of which unlocked to read or answer a line
        self.locked = False                # this poll holds the heap locked
        self._dirty = True                 # the heap was used unlocked since the GC check
        self.ui_poll = None                # ui_poll(now_ms) after every poll, in its lock
        if lock_polls:
            try:
                import micropython
                if hasattr(micropython, "heap_lock") and hasattr(micropython, "heap_unlock"):
                    self._lock = micropython.heap_lock
                    self._unlock = micropython.heap_unlock
                    self._locking = True
            except ImportError:
                pass
        self._flash_stalls = flash_stalls
        try:
            import gc
            self._gc = gc if hasattr(gc, "mem_free") else None
        except ImportError:
            self._gc = None
        self.cal_status = storage.MISSING
        self.cal_in_use = Calibration()
        cal = store.cal
        if cal.data is not None:
            self.use_calibration(records.calibration_of(cal.data), cal.status)
        elif cal.status == storage.MISSING and default_cal is not None:
            d = {}
            for k in records.CAL_INTS:
                if k in default_cal:
                    d[k] = default_cal[k]
            self.use_calibration(Calibration(**d).validate(), storage.DEFAULT)
        else:
            self.use_calibration(Calibration(), cal.status)   # treatment stays refused

    # ---- state ----------------------------------------------------------------------------
    def session_active(self):
        st = self.ctrl.session.state
        return st != sm.IDLE and st != sm.DONE and st != sm.FAULT

    def cal_usable(self):
        return self.cal_status in _USABLE

    def use_calibration(self, cal, status):
        """Apply `cal` to the HAL (only ever with the output off: not during a session)."""
        self.ctrl.hal.set_calibration(self.board, cal)
        self.cal_in_use = cal
        self.cal_status = status

    def service_begin(self):
        self.service = True
        self._service_seen = self.clock.ms

    def service_touch(self):
        self._service_seen = self.clock.ms

    def service_end(self):
        self.service = False

    def set_telemetry(self, hz):
        self.tel_hz = hz
        self._tel_next = self.clock.ms

    # ---- the poll -------------------------------------------------------------------------
    def poll(self):
        # A frame this small lives on the C stack; unlocked, MicroPython takes a frame
        # of more than 11 words from the heap (py/objfun.c: VM_MAX_STATE_ON_STACK), ~0.4 ms
        # on an RP2040 once the heap has holes. So the lock comes first, then the rest.
        if not self._locking:
            self._open_poll()
            return
        self._lock()
        try:
            self._locked_poll()
        finally:
            self._unlock()

    def _locked_poll(self):
        """The poll, called with the heap locked: unlocked again for what allocates by
        design (a session's start or end, _may_lock, _idle_may_lock)."""
        clock = self.clock
        clock.update()
        st = self.ctrl.session.state       # session_active(), without its call
        if st != IDLE and st != DONE and st != FAULT:
            lock = self._active and self._may_lock()
        else:
            lock = not self._active and self._idle_may_lock()
        if lock:
            self.locked_polls += 1
            self.locked = True
            ui = self.ui_poll
            if not self._serve(clock, self._active, True) and ui is not None:
                ui(clock.ms)
            self.locked = False
            return
        self._unlock()
        try:
            self._open_poll()
        finally:
            self._lock()

    def _open_poll(self):
        """The poll with the heap unlocked: a session's start or end, what allocates by
        design, or every poll where the heap cannot be locked."""
        self._dirty = True
        clock = self.clock
        clock.update()
        active = self.session_active()
        if active != self._active:
            self._set_active(active)
        ui = self.ui_poll
        if not self._serve(clock, active, False) and ui is not None:
            ui(clock.ms)

    def release(self):
        """Unlock the heap for work that allocates, if this poll holds it locked (the UI's
        buttons: ui.py); True when it did: call relock() after that work."""
        if not self.locked:
            return False
        self.locked = False
        self._unlock()
        return True

    def relock(self):
        self._lock()
        self.locked = True

    def _may_lock(self):
        """A poll in a running session that has nothing to do that allocates by design:
        no session numbered (recorder.py), no void or checkpoint due, no technician in
        service mode (a calibration hold's commands are read the usual way)."""
        rec = self.recorder
        if self.service or rec.void_seq:
            return False
        if rec.seq == 0:
            return self.ctrl.session.charge_uamin < RECORD_UAMIN
        if self._flash_stalls and self.ctrl.hal.enabled:
            return True                    # not may_write_flash(): no checkpoint now
        return rec.ck_due < 0 or ms_diff(self.clock.ms, rec.ck_due) < 0

    def _idle_may_lock(self):
        """A poll between sessions that has nothing to do that allocates by design: no
        record to build or write, no void, no heap measurement due (health.py), no
        garbage check due after work done unlocked, no technician in service mode.
        Its line is then read in place if flat, and answered locked if quick here
        (commands.IDLE_QUICK): on the emulated RP2040 a host's `status` twice a second
        made an unlocked idle loop's p99 poll 38 ms (the collections of its garbage)."""
        rec = self.recorder
        return not (self.service or rec.running or rec.pending or rec.void_seq or
                    self.health.due or
                    (self._answered and self._dirty and not self.proto.writing()))

    def _serve(self, clock, active, locked):
        """The poll's work (see the top) after the clock and the session's start or end;
        `locked`: the heap is locked (a request that is not quick is answered unlocked).
        True when it sent telemetry, parsed or answered a line: the poll's costliest
        work (on the emulated RP2040 ~1.05-1.1 ms of a TREAT poll), so the UI waits for
        the next poll (a button is seen at most 15 ms later: a line is parsed and
        answered in two polls, at most one is read every four, telemetry at most every
        fourth poll: 50 Hz)."""
        ctrl = self.ctrl
        rec = self.recorder
        rec.observe(ctrl, clock)
        quiet = not ctrl.hal.enabled
        may_write = quiet or not self._flash_stalls     # may_write_flash(), without a call
        if rec.void_seq and may_write and \
                (self._void_retry < 0 or ms_diff(clock.ms, self._void_retry) >= 0):
            self._checkpoint()
        elif rec.pending and not active and quiet:
            self._flush_log()
        elif active and may_write and rec.ck_due >= 0 and ms_diff(clock.ms, rec.ck_due) >= 0:
            self._checkpoint()
        if self.service:
            # a treatment ends service mode; a technician's calibration hold keeps it
            hold = active and ctrl.session.profile.mode == profiles.MODE_CAL
            if (active and not hold) or \
                    ms_diff(clock.ms, self._service_seen) >= self.SERVICE_IDLE_MS:
                self.service = False
                if hold:
                    ctrl.stop()         # the technician left: the hold ramps down
            else:
                self.cal.poll()
        if self.tel_hz and self._telemetry():
            return True                    # a poll that sent telemetry reads no request
        proto = self.proto
        if proto.writing():                # a long reply, written over several polls
            try:
                more = proto.resume()
            except MemoryError:            # locked, a reply that fell back to a dict
                more = False
                proto.busy()
            if not more:
                self._answered = True
            return
        if self._line >= 0:                # a line fed in the last poll: parse it now
            if locked and not flatreq.MACHINE_CODE:
                self.unlocked_answers += 1
                self._dirty = True
                self._unlock()             # the bytecode scan makes heap ints (flatreq.py)
                try:
                    self._parse()
                finally:
                    self._lock()
            elif locked and not active:
                self._parse_idle()
            else:
                self._parse()
            return True
        if self._req:                      # parsed in the last poll: answer it now
            self._req = False
            if locked and not (self.commands.is_quick(proto.cmd) if active else
                               self.commands.is_idle_quick(proto.cmd, proto.req)):
                self.unlocked_answers += 1
                self._dirty = True
                self._unlock()             # a command that builds its reply the usual way
                try:
                    self._answer()
                finally:
                    self._lock()
            else:
                self._answer()
            self._answered = True
            return True
        if self._answered:                 # the last poll answered a line: tidy up instead
            self._answered = False
            if self._dirty and not active:
                self._gc_check(clock.ms)
            return
        if self._rpos >= self._rend:
            n = 0 if self._reader is None else self._reader.readinto(self._rbuf)
            if not n:
                if self.health.due and not active and not locked and not rec.pending:
                    self.health.measure(clock.uptime_s)     # no session: see health.py
                return
            self._rpos = 0
            self._rend = n
        lines = self.proto.lines
        self._feed()                       # a copy: it allocates nothing (parsed next poll)
        self._answered = self.proto.lines != lines

    def _gc_check(self, now):
        """After work done unlocked, between sessions: a collection if the heap is getting
        low, asked at most every GC_CHECK_MS (gc.mem_free: ~8.6 ms on an RP2040)."""
        gc = self._gc
        if gc is None:
            return
        if self._gc_checked >= 0 and ms_diff(now, self._gc_checked) < GC_CHECK_MS:
            return                         # still _dirty: the next answer asks again
        self._gc_checked = now
        self._dirty = False
        if gc.mem_free() < GC_LOW:
            gc.collect()
            self.collections += 1

    def _feed(self):
        """At most one line of the read bytes to the protocol."""
        try:
            self._rpos = self.proto.feed_range(self._rbuf, self._rpos, self._rend, 1)
        except MemoryError:                # the collector is off: a session runs
            self._rpos = self._rend        # what was read of that line is dropped
            self.proto.busy()

    def _parse(self):
        """The envelope checks of the line fed in the last poll (Protocol.parse): a
        request then waits for its answer, a refusal is answered now."""
        n = self._line
        self._line = -1
        lines = self.proto.lines
        try:
            self._req = self.proto.parse(n)
        except MemoryError:                # the collector is off: a session runs
            self._req = False
            self.proto.busy()
        self._answered = self.proto.lines != lines

    def _parse_idle(self):
        """_parse in a locked poll between sessions: a flat line is read in place; any
        other with the heap unlocked (jsonstrict allocates)."""
        n = self._line
        self._line = -1
        proto = self.proto
        lines = proto.lines
        req = proto.parse_flat(n)
        if req is None:
            self.unlocked_answers += 1
            self._dirty = True
            self._unlock()
            try:
                try:
                    req = proto.parse_json(n)
                except MemoryError:
                    req = False
                    proto.busy()
            finally:
                self._lock()
        self._req = req
        self._answered = proto.lines != lines

    def _answer(self):
        try:
            self.proto.answer()
        except MemoryError:
            self.proto.busy()

    def collect(self):
        """A collection now (~17 ms on an RP2040): only with the output off. A session
        runs with the collector off on the heap it began with, so the start command
        and a session's end collect (main: every board whose collector is off then)."""
        gc = self._gc
        if gc is not None and self._session_gc_off:
            gc.collect()
            self.collections += 1

    def may_write_flash(self):
        """True when a flash write may be made now: the output is disabled, or the board's
        flash writes do not stall the CPU (see "Flash writes stall" at the top)."""
        return not self._flash_stalls or not self.ctrl.hal.enabled

    def _parse_line(self, n):
        """The protocol's line handler in the loop: the line (its first n bytes in the
        protocol's buffer) is parsed in the next poll and answered in the one after
        (nothing is fed in between: a flat request is read from the line buffer)."""
        self._line = n

    def _set_active(self, active):
        """A session began or ended: the checkpoint file opened (once a boot: it stays
        open), the collector off while it runs (see the top), Ctrl-C off (on_active)."""
        self._active = active
        self.proto.flat_only = active
        if not active:
            self.health.due = True         # the heap as the session left it (health.py)
        if active:
            try:
                self.store.log.prepare()   # the checkpoint file open before gc goes off
            except (OSError, MemoryError):
                self.checkpoint_errors += 1     # the first checkpoint tries again
        gc = self._gc
        if gc is not None and self._session_gc_off:
            if active:
                gc.disable()
            else:
                gc.enable()
                self.collect()             # the output is off: the next session's room
        if self._on_active is not None:
            self._on_active(active)

    def feed(self, data, max_lines=-1):
        """Hand host bytes straight to the protocol (tests, other transports): every
        complete line is answered at once, not in the next poll."""
        proto = self.proto
        proto.on_line = proto.handle_line
        proto.fields_per_poll = 0          # every reply whole, at once
        try:
            return proto.feed(data, max_lines)
        finally:
            proto.on_line = self._parse_line
            proto.fields_per_poll = FIELDS_PER_POLL

    def _flush_log(self):
        now = self.clock.ms
        if self._log_retry >= 0 and ms_diff(now, self._log_retry) < 0:
            return
        try:
            self.store.log.append(self.recorder.pending[0])
        except OSError:
            self.log_errors += 1
            self._log_retry = ms_add(now, _LOG_RETRY_MS)
            return
        self.recorder.pending.pop(0)
        self._log_retry = -1
        if not self.recorder.pending and self.health.due:
            self.health.measure(self.clock.uptime_s)   # with the write's late period

    def _checkpoint(self):
        """The running session's checkpoint, or the void of an attempt's (see the top);
        a failure (storage, or no heap while the collector is off) is counted and retried
        a second later."""
        rec = self.recorder
        now = self.clock.ms
        try:
            if rec.void_seq:
                self.store.log.void(rec.void_seq)
                rec.void_seq = 0
                self._void_retry = -1
                return
            rec.checkpoint(self.ctrl)
        except (OSError, MemoryError):
            self.checkpoint_errors += 1
            if rec.void_seq:
                self._void_retry = ms_add(now, _LOG_RETRY_MS)
            else:
                rec.ck_due = ms_add(now, _LOG_RETRY_MS)
            return
        rec.ck_due = ms_add(now, CHECKPOINT_MS)

    def _telemetry(self):
        """Send the telemetry line if due; True when this poll did the work of one."""
        now = self.clock.ms
        if ms_diff(now, self._tel_next) < 0:
            return False
        period = 1000 // self.tel_hz
        nxt = ms_add(self._tel_next, period)
        # no burst to catch up after a stall
        self._tel_next = nxt if ms_diff(nxt, now) > 0 else ms_add(now, period)
        if self._writable is not None and not self._writable():
            self.tel_dropped += 1
            return False
        ctrl = self.ctrl
        on = ctrl.hal.enabled
        ses = ctrl.session
        prof = getattr(ses, "profile", None)    # none before the first start
        peak = -1
        if prof is not None and prof.mode == profiles.MODE_PULSED:
            peak = ctrl.peak_ua if on else 0
        line = self._tel.encode(now, ses.state, ses.sp_ua if on else 0, ctrl.i_ua,
                                ctrl.v_mv, on and ctrl.regulator.limited,
                                ctrl.safety.fault, peak)
        if self.proto.event_raw(line):
            self.tel_sent += 1
        return True

    # ---- self test and the end of the loop ------------------------------------------------
    def selftest(self):
        """[(name, passed, detail)]; only called with no session running."""
        ctrl = self.ctrl
        hal = ctrl.hal
        if self._hw is None or self._sleep_us is None:
            i = hal.read_current_ua()
            code = hal.read_voltage_code()
            return [("output_off", not hal.enabled and hal.ref_code == 0 and abs(i) <= 500,
                     "output disabled, %d uA read" % i),
                    ("adc", code < 64511 and hal.read_current_code() < 64511,
                     "voltage code %d" % code)]
        import selftest
        try:
            return selftest.run(self._hw, self.board, self.cal_in_use, self._sleep_us)
        finally:
            hal.off()
            hal.set_polarity(hal.polarity)    # the test drove the pin; restore the HAL's view

    def crashed(self):
        """After the loop died (main.run already cut the output): record the session if one
        ran. Never raises."""
        try:
            self.recorder.observe(self.ctrl, self.clock)
            while self.recorder.pending:
                self.store.log.append(self.recorder.pending.pop(0))
        except Exception:
            pass
