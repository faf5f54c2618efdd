// The Pico's 2 MB SPI flash (W25Q16) behind the RP2040's SSI, persisted to a file.
//
// rp2040js 1.4.1 serves only XIP reads: the bootrom's program and erase calls (which
// MicroPython's littlefs uses) were ignored. This model decodes the SPI commands the
// bootrom sends while chip select is forced low through IO_QSPI SS OUTOVER:
//   0x02 page program, 0x20 / 0x52 / 0xd8 erase 4 / 32 / 64 KB, 0x05 / 0x35 status,
//   0x9f JEDEC id, 0x4b unique id, 0x03 / 0x0b read
// with a 16-deep receive FIFO (without it the bootrom hangs at PC 0x17ca).
//
// Timing: a program or erase stalls the emulated CPU as the real chip does. The bootrom
// calls run with interrupts off and execute-in-place disabled, so the CPU can do nothing
// until the chip is done: the model advances the emulated clock by the operation's time
// when chip select is released (pending interrupts and alarms fire after it, late, as on
// a board). Times from the Winbond W25Q16JV datasheet (rev. H, AC characteristics):
//   page program tPP 0.4 ms typ / 3 ms max; erase 4 KB tSE 45 / 400 ms,
//   32 KB tBE1 120 / 1600 ms, 64 KB tBE2 150 / 2000 ms.
// `timing`: 'typical' (the default), 'max' (the worst case a chip may take) or 'none'
// (zero time: the emulator before this model).
//
// Persistence: every program and erase is written through to the file at once
// (synchronously), so the file is the chip's content at every instant; killing the
// process loses nothing that the chip had completed, as a power cut would.
// `cutAfter(n)`: the n-th program or erase from now is done only halfway (the first half
// of its bytes: a torn page or sector), then `onCut()` is called: a power cut in the
// middle of a write.
import fs from 'fs';
import { BasePeripheral } from 'rp2040js';

export const FLASH_SIZE = 2 * 1024 * 1024;
const MS = 1e6;   // nanoseconds
export const TIMINGS = {
  typical: { program: 0.4 * MS, 4096: 45 * MS, 32768: 120 * MS, 65536: 150 * MS },
  max: { program: 3 * MS, 4096: 400 * MS, 32768: 1600 * MS, 65536: 2000 * MS },
  none: { program: 0, 4096: 0, 32768: 0, 65536: 0 },
};
const UID = [0xe6, 0x60, 0x58, 0x38, 0x83, 0x2a, 0x1c, 0x2b];
const SSI_DR0 = 0x60, SSI_SR = 0x28, SSI_TXFLR = 0x20, SSI_RXFLR = 0x24, SSI_SSIENR = 0x08;
const GPIO_QSPI_SS_CTRL = 0x0c;

export class SpiFlash {
  /** `clock`: the simulator's clock (advanced by each operation's time; null: no time);
   * `timing`: a key of TIMINGS. Throws on an unknown timing. */
  constructor(mcu, path, { clock = null, timing = 'typical' } = {}) {
    if (!(timing in TIMINGS)) {
      throw new Error(`flash timing ${timing}: one of ${Object.keys(TIMINGS).join(', ')}`);
    }
    this.mcu = mcu;
    this.path = path;
    this.clock = clock;
    this.timing = TIMINGS[timing];
    this.stats = { program: 0, erase: 0, other: 0, busy_ms: 0 };
    this.cs = false;
    this.cmd = [];
    this.rx = [];
    this.cutLeft = 0;          // 0: no cut armed
    this.onCut = null;
    this.fd = null;
  }

  /** Load the file's content into the chip (a new file: erased, all 0xff). */
  load() {
    const flash = this.mcu.flash;
    if (!this.path) return;
    if (fs.existsSync(this.path)) {
      const img = fs.readFileSync(this.path);
      flash.set(img.subarray(0, Math.min(img.length, FLASH_SIZE)), 0);
    } else {
      fs.writeFileSync(this.path, flash.subarray(0, FLASH_SIZE));
    }
    this.fd = fs.openSync(this.path, 'r+');
  }

  /** Write the whole chip back (after the UF2 overlaid the firmware area). */
  syncAll() {
    if (this.fd !== null) fs.writeSync(this.fd, this.mcu.flash, 0, FLASH_SIZE, 0);
  }

  cutAfter(n) { this.cutLeft = n; }

  _persist(start, length) {
    if (this.fd !== null) fs.writeSync(this.fd, this.mcu.flash, start, length, start);
  }

  _torn() {
    // the armed operation is the one being done now: is the power cut during it?
    if (this.cutLeft <= 0) return false;
    this.cutLeft -= 1;
    return this.cutLeft === 0;
  }

  _busy(nanos) {
    // the CPU waits (interrupts off, no execute-in-place) while the chip works
    if (!nanos || !this.clock) return;
    this.stats.busy_ms += nanos / MS;
    this.clock.tick(nanos);
  }

  _respond(bytes) {
    const i = bytes.length - 1;
    if (i === 0) return 0;
    const flash = this.mcu.flash;
    switch (bytes[0]) {
      case 0x05: return 0x00;                                 // SR1: not busy
      case 0x35: return 0x02;                                 // SR2: QE set
      case 0x9f: return [0, 0xef, 0x40, 0x15][i] ?? 0;        // JEDEC: W25Q16
      case 0x4b: return i >= 5 ? UID[(i - 5) % 8] : 0;        // unique id after 4 dummies
      case 0x03: {
        if (i < 4) return 0;
        const a = ((bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) + (i - 4);
        return flash[a % FLASH_SIZE];
      }
      case 0x0b: {
        if (i < 5) return 0;
        const a = ((bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) + (i - 5);
        return flash[a % FLASH_SIZE];
      }
    }
    return 0;
  }

  _end() {
    const cmd = this.cmd;
    this.cmd = [];
    const c = cmd[0];
    const flash = this.mcu.flash;
    const addr = cmd.length >= 4 ? (cmd[1] << 16) | (cmd[2] << 8) | cmd[3] : 0;
    if (c === 0x02 && cmd.length > 4) {
      const page = addr & ~0xff;
      const torn = this._torn();
      const n = torn ? (cmd.length - 4) >> 1 : cmd.length - 4;
      for (let k = 0; k < n; k++) {
        const a = page | ((addr + k) & 0xff);
        flash[a] &= cmd[4 + k];
      }
      this._persist(page, 256);
      this.stats.program++;
      if (torn) this.onCut?.('page program at 0x' + addr.toString(16));
      this._busy(this.timing.program);
    } else if (c === 0x20 || c === 0x52 || c === 0xd8) {
      const size = c === 0x20 ? 4096 : c === 0x52 ? 32768 : 65536;
      const base = addr & ~(size - 1);
      const torn = this._torn();
      flash.fill(0xff, base, base + (torn ? size >> 1 : size));
      this._persist(base, size);
      this.stats.erase++;
      if (torn) this.onCut?.('erase at 0x' + base.toString(16));
      this._busy(this.timing[size]);
    } else if (c !== undefined) {
      this.stats.other++;
    }
  }

  /** Put the model between the SSI and the IO_QSPI chip-select control. */
  attach() {
    const mcu = this.mcu;
    const self = this;
    class IOQSPI extends BasePeripheral {
      constructor(rp2040, name) { super(rp2040, name); this.regs = new Uint32Array(16); }
      readUint32(offset) { return offset < 0x40 ? this.regs[offset >> 2] : 0; }
      writeUint32(offset, value) {
        if (offset >= 0x40) return;
        this.regs[offset >> 2] = value;
        if (offset === GPIO_QSPI_SS_CTRL) {
          const outover = (value >> 8) & 3;
          if (outover === 2) {                                // SS forced low: select
            if (self.cs) self._end();
            self.cs = true;
            self.cmd = [];
          } else if (self.cs) {
            self._end();
            self.cs = false;
          }
        }
      }
    }
    mcu.peripherals[0x40018] = new IOQSPI(mcu, 'IO_QSPI_BASE');
    const ssi = mcu.peripherals[0x18000];
    const ssiWrite = ssi.writeUint32.bind(ssi);
    const ssiRead = ssi.readUint32.bind(ssi);
    const rx = this.rx;
    ssi.writeUint32 = (offset, value) => {
      if (offset === SSI_DR0) {
        let r = 0;
        if (self.cs) { self.cmd.push(value & 0xff); r = self._respond(self.cmd); }
        if (rx.length < 16) rx.push(r);
        ssi.dr0 = r;
        return;
      }
      if (offset === SSI_SSIENR && !(value & 1)) rx.length = 0;
      ssiWrite(offset, value);
    };
    ssi.readUint32 = (offset) => {
      switch (offset) {
        case SSI_DR0: return rx.length ? rx.shift() : 0;
        case SSI_RXFLR: return rx.length;
        case SSI_TXFLR: return 0;
        case SSI_SR: return 0x4 /* TFE */ | 0x2 /* TFNF */ | (rx.length ? 0x8 /* RFNE */ : 0);
      }
      return ssiRead(offset);
    };
  }
}
