// An emulated Raspberry Pi Pico: the vendored MicroPython rp2 image booted in rp2040js, its
// USB CDC serial port on this process's stdin/stdout (raw bytes), the plant on its pins.
// Normally started by emulators/vpico/bridge.py, which puts it behind a pty.
//
//   node runner.mjs --state DIR [--boot N] [--seed N] [--stats] [--usb-stock] [--image DIR]
//                   [--pcprof FILE [--pcprof-gate GPIO] [--pcprof-every N]]
//                   [--flash-timing typical|max|none]
//
// DIR holds the board's flash (flash.bin, 2 MB, created erased), its control file
// (plant.json), the recording of the true current (true.csv), the bench meter (meter.json)
// and `cut` (a number N: a power cut in the middle of the N-th flash write from now).
// --image DIR: the images and their SHA256SUMS (default: image/ beside this file).
// --flash-timing: how long a flash program or erase stalls the CPU (spiflash.mjs; default
// typical: the chip's datasheet typical times).
//
// Exit status: 0 stopped (SIGTERM / SIGINT / stdin closed), 2 bad setup (the message says
// what to do: image hash, missing package), 3 watchdog reset or machine.reset() (the
// bridge starts a new runner on the same flash: a hard reset), 4 power cut (likewise),
// 1 the emulator itself failed.
//
// USB: like a real host, the OUT endpoint is completed only when host bytes are pending
// (rp2040js by default completes it at once with zero bytes, an endless stream of USB
// interrupts on the emulated CPU); --usb-stock keeps rp2040js's behaviour.
// Time: the emulator's clock (125 MHz, one cycle count per instruction, no flash-cache or
// bus latency): a lower bound on a real Pico's times.
import crypto from 'crypto';
import fs from 'fs';
import path from 'path';
import { fileURLToPath } from 'url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
let IMAGE = path.join(HERE, 'image');
const RP2040JS_VERSION = '1.4.1';

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (!a.startsWith('--')) continue;
  const nxt = process.argv[i + 1];
  if (nxt === undefined || nxt.startsWith('--')) args[a.slice(2)] = true;
  else { args[a.slice(2)] = nxt; i++; }
}
if (args.image) IMAGE = path.resolve(args.image);
const log = (...m) => process.stderr.write('[vpico] ' + m.join(' ') + '\n');
function fail(status, message) {
  process.stderr.write('vpico: ' + message + '\n');
  process.exit(status);
}

// ---- the vendored images, checked against image/SHA256SUMS -----------------------------
function checkedImage(name) {
  const sums = fs.readFileSync(path.join(IMAGE, 'SHA256SUMS'), 'utf8');
  const line = sums.split('\n').find((l) => l.trim().endsWith(' ' + name));
  if (!line) fail(2, `image/SHA256SUMS has no line for ${name}`);
  const want = line.trim().split(/\s+/)[0];
  const file = path.join(IMAGE, name);
  let data;
  try { data = fs.readFileSync(file); } catch (e) { fail(2, `cannot read ${file}: ${e.message}`); }
  const got = crypto.createHash('sha256').update(data).digest('hex');
  if (got !== want) {
    fail(2, `${file}: sha256 ${got} does not match image/SHA256SUMS (${want}); ` +
      'restore it with `git checkout -- emulators/vpico/image` (see image/README.md)');
  }
  return data;
}

let rp2040js;
try {
  rp2040js = await import('rp2040js');
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', 'rp2040js', 'package.json'), 'utf8'));
  if (pkg.version !== RP2040JS_VERSION) {
    fail(2, `rp2040js ${pkg.version} is installed, this runner needs ${RP2040JS_VERSION}: run \`npm ci\` (make node)`);
  }
} catch (e) {
  fail(2, `rp2040js is not installed (${e.code || e.message}): run \`npm ci\` at the repository root (make node)`);
}
const { Simulator, USBCDC, ConsoleLogger, LogLevel } = rp2040js;
const { SpiFlash, FLASH_SIZE } = await import('./spiflash.mjs');
const { FrontEnd } = await import('./frontend.mjs');

const stateDir = args.state ? path.resolve(args.state) : null;
if (stateDir) fs.mkdirSync(stateDir, { recursive: true });
const bootrom = checkedImage('bootrom-b1.bin');
const uf2 = checkedImage('firmware.uf2');

const simulator = new Simulator();
const mcu = simulator.rp2040;
mcu.logger = new ConsoleLogger(args.debug ? LogLevel.Debug : LogLevel.Error);
mcu.loadBootrom(new Uint32Array(bootrom.buffer, bootrom.byteOffset, bootrom.length / 4));

// ---- flash: the file's content, the UF2 over the firmware area --------------------------
let flash;
try {
  flash = new SpiFlash(mcu, stateDir ? path.join(stateDir, 'flash.bin') : null,
    { clock: simulator.clock, timing: args['flash-timing'] ?? 'typical' });
} catch (e) {
  fail(2, e.message);
}
flash.load();
let blocks = 0;
for (let off = 0; off + 512 <= uf2.length; off += 512) {
  const b = uf2.subarray(off, off + 512);
  if (b.readUInt32LE(0) !== 0x0a324655 || b.readUInt32LE(4) !== 0x9e5d5157) continue;
  const addr = b.readUInt32LE(12), size = b.readUInt32LE(16);
  if (addr < 0x10000000 || addr + size > 0x10000000 + FLASH_SIZE) fail(2, 'UF2 block outside the flash');
  mcu.flash.set(b.subarray(32, 32 + size), addr - 0x10000000);
  blocks++;
}
flash.syncAll();
flash.attach();
flash.onCut = (what) => {
  log('power cut in the middle of a flash write (' + what + ')');
  process.exit(4);
};
function pollCut() {
  if (!stateDir) return;
  const file = path.join(stateDir, 'cut');
  let text;
  try { text = fs.readFileSync(file, 'utf8'); } catch { return; }
  fs.unlinkSync(file);
  const n = parseInt(text, 10);
  if (n > 0) { flash.cutAfter(n); log('power cut armed: during flash write', n, 'from now'); }
}

// ---- the front-end and the plant -----------------------------------------------------
const front = new FrontEnd(mcu, simulator.clock, {
  root: ROOT, stateDir, boot: Number(args.boot ?? 0), seed: Number(args.seed ?? 1), log,
});
try {
  await front.load();
} catch (e) {
  fail(2, e.message);
}
front.attach();

// ---- USB CDC <-> stdio -------------------------------------------------------------------
const cdc = new USBCDC(mcu.usbCtrl);
const pending = [];
cdc.onDeviceConnected = () => log('usb cdc connected');
cdc.onSerialData = (value) => { process.stdout.write(Buffer.from(value)); };
let parkedRead = null;
const cdcRead = mcu.usbCtrl.onEndpointRead;
function pump() {
  while (pending.length && !cdc.txFIFO.full) cdc.sendSerialByte(pending.shift());
  if (parkedRead && cdc.txFIFO.itemCount > 0) {
    const [ep, size] = parkedRead;
    parkedRead = null;
    cdcRead(ep, size);
  }
}
if (!args['usb-stock']) {
  mcu.usbCtrl.onEndpointRead = (ep, size) => {
    if (ep === cdc.outEndpoint && cdc.txFIFO.itemCount === 0) { parkedRead = [ep, size]; return; }
    cdcRead(ep, size);
  };
}
process.stdin.on('data', (chunk) => { for (const b of chunk) pending.push(b); pump(); });
process.stdin.on('end', () => shutdown('stdin closed'));

// ---- PC sampling profiler (profile against image/firmware.elf: tools/pcprof.py) ---------
if (args.pcprof) {
  const every = Number(args['pcprof-every'] ?? 97);
  const gate = args['pcprof-gate'] !== undefined ? Number(args['pcprof-gate']) : -1;
  const hist = new Map();
  let cnt = 0, total = 0;
  const core = mcu.core;
  const orig = core.executeInstruction.bind(core);
  const gpin = gate >= 0 ? mcu.gpio[gate] : null;
  core.executeInstruction = () => {
    if (++cnt >= every) {
      cnt = 0;
      if (gpin === null || gpin.outputValue) {
        const key = core.PC + (core.IPSR ? 1 : 0);
        hist.set(key, (hist.get(key) || 0) + 1);
        total++;
      }
    }
    return orig();
  };
  const out = args.pcprof;
  const dump = () => {
    fs.writeFileSync(out + '.tmp', JSON.stringify({ every, gate, total, hist: [...hist] }));
    fs.renameSync(out + '.tmp', out);
  };
  setInterval(dump, 2000).unref();
  process.on('exit', dump);
  log('pc profiler on: every', every, 'instructions, gate GPIO', gate, '->', out);
}

// ---- run ---------------------------------------------------------------------------------
mcu.core.PC = 0x10000000;
const wall0 = Date.now();
let lastWall = wall0, lastEmu = 0;
const execute = simulator.execute.bind(simulator);
simulator.execute = () => { pump(); execute(); };
log(`boot ${args.boot ?? 0}: MicroPython image ${blocks} UF2 blocks, flash ${flash.path || '(not kept)'}`);
simulator.execute();
setInterval(() => {
  pollCut();
  if (args.stats && Date.now() - lastWall >= 10000) {
    const w = Date.now(), e = mcu.clock.nanos;
    log(`speed ${((e - lastEmu) / 1e6 / (w - lastWall)).toFixed(3)} emulated s per wall s` +
        ` (emulated ${(e / 1e9).toFixed(1)} s, wall ${((w - wall0) / 1000).toFixed(1)} s,` +
        ` flash program ${flash.stats.program} erase ${flash.stats.erase}, busy ${flash.stats.busy_ms.toFixed(0)} ms)`);
    lastWall = w; lastEmu = e;
  }
}, 200).unref();

const watchdog = mcu.peripherals[0x40058];
watchdog.onWatchdogTrigger = () => {
  log('watchdog reset (machine.reset() or a watchdog timeout): a hard reset');
  simulator.stop();
  front.flush();
  process.exit(3);
};
function shutdown(why) {
  log('stopped: ' + why);
  simulator.stop();
  front.flush();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('uncaughtException', (e) => {
  process.stderr.write('vpico: the emulator failed: ' + (e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
