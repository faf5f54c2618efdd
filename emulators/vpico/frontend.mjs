// The analog front-end of boards/pico.py on the emulated RP2040's pins, driven by the one
// plant model (simulation/plant.py) running on the MicroPython WebAssembly port in this
// same Node process (emulators/vpico/plant_pins.py translates pins <-> plant).
//
// Every STEP_US of the emulator's own clock: read the reference PWM (GP16, slice 0 A),
// the pulse gate PWM (GP18, slice 1 A), enable (GP15) and polarity (GP14); step the
// plant; drive the comparator input GP13. Each ADC conversion on ADC0 / ADC1 takes a fresh
// sample from the plant. Buttons GP10-12 read released (pull-ups) unless the control file
// holds them (btn_start, btn_up, btn_down; service_button = up + down). Every ROW_US a row of the plant's TRUE state is
// appended to the recording (true.csv), which tests judge safety on.
//
// The control file (plant.json, boards/sim.py keys) is re-read every 200 ms of wall time;
// a refused file changes nothing and its reason is logged.
import fs from 'fs';
import path from 'path';

const STEP_US = 1000;          // plant step: 1 ms (the loop period is 5 ms)
const ROW_US = 10000;          // recording: one row per 10 ms
const PIN_ENABLE = 15, PIN_POLARITY = 14, PIN_TRIP = 13;
const PIN_BTN_START = 10, PIN_BTN_UP = 11, PIN_BTN_DOWN = 12;
const SLICE_REF = 0, SLICE_GATE = 1;   // GP16 = PWM 0A, GP18 = PWM 1A
const PLANT_PACKAGE = '@micropython/micropython-webassembly-pyscript';

/** Channel A's duty of a PWM slice, 0..1 (0 while the slice is disabled). */
function dutyA(ch) {
  if (!(ch.csr & 1)) return 0;
  const top = ch.timer.top + 1;
  const cc = ch.alarmA.target;
  return cc >= top ? 1 : cc / top;
}

export class FrontEnd {
  constructor(mcu, clock, opts) {
    this.mcu = mcu;
    this.clock = clock;
    this.root = opts.root;               // repository root (simulation/, boards/)
    this.stateDir = opts.stateDir;       // plant.json, true.csv, meter.json
    this.boot = opts.boot ?? 0;
    this.seed = opts.seed ?? 1;
    this.log = opts.log;
    this.rows = [];
    this.controlText = null;
    this.meterSeq = -1;
  }

  async load() {
    let loadMicroPython;
    try {
      ({ loadMicroPython } = await import(PLANT_PACKAGE));
    } catch (e) {
      throw new Error(`${PLANT_PACKAGE} is not installed (${e.message}); run \`npm ci\` (make node)`);
    }
    const err = [];
    const mp = await loadMicroPython({
      heapsize: 512 * 1024, linebuffer: false,
      stdout: (b) => process.stderr.write(Buffer.from(b)),
      stderr: (b) => err.push(...b),
    });
    mp.FS.mkdirTree('/lib');
    const files = [['simulation', 'plant.py'], ['boards', 'sim.py'], ['boards', 'pico.py'],
                   ['firmware', 'ticks.py'], ['emulators/vpico', 'plant_pins.py']];
    for (const [dir, name] of files) {
      mp.FS.writeFile('/lib/' + name, fs.readFileSync(path.join(this.root, dir, name)));
    }
    try {
      mp.runPython(`import plant_pins\npp = plant_pins.PinsPlant(seed=${Number(this.seed) | 0})`);
    } catch (e) {
      throw new Error('the plant did not start on MicroPython: ' + e.message + Buffer.from(err).toString());
    }
    const pp = mp.globals.get('pp');
    this.pp = pp;
    this.stepFn = pp.step;
    this.adcFn = pp.adc;
    this.header = mp.pyimport('plant_pins').ROW_HEADER;
  }

  attach() {
    const { mcu, clock } = this;
    const gpio = mcu.gpio;
    const pwm = mcu.pwm;
    // a pad driven as an output reads back its own level (rp2040js reads only what was set
    // with setInputValue); the self test reads the enable and polarity pins this way
    const driven = new Set([PIN_TRIP, PIN_BTN_START, PIN_BTN_UP, PIN_BTN_DOWN]);
    for (let n = 0; n < 30; n++) {
      if (driven.has(n)) continue;
      const pin = gpio[n];
      pin.addListener(() => { if (pin.outputEnable) pin.setInputValue(pin.outputValue); });
    }
    gpio[PIN_TRIP].setInputValue(false);
    for (const p of [PIN_BTN_START, PIN_BTN_UP, PIN_BTN_DOWN]) gpio[p].setInputValue(true);
    const adc = mcu.adc;
    adc.channelValues[4] = 876;                     // temperature sensor: ~27 C
    const prevRead = adc.onADCRead;
    adc.onADCRead = (channel) => {
      if (channel === 0 || channel === 1) adc.channelValues[channel] = this.adcFn(channel);
      prevRead(channel);
    };
    let sinceRow = 0;
    const step = clock.createAlarm(() => {
      const tripped = this.stepFn(STEP_US, dutyA(pwm.channels[SLICE_REF]),
                                  gpio[PIN_ENABLE].outputValue ? 1 : 0,
                                  gpio[PIN_POLARITY].outputValue ? 1 : 0,
                                  (pwm.channels[SLICE_GATE].csr & 1) ? dutyA(pwm.channels[SLICE_GATE]) : 1);
      gpio[PIN_TRIP].setInputValue(tripped === 1);
      sinceRow += STEP_US;
      if (sinceRow >= ROW_US) {
        sinceRow = 0;
        this.rows.push(this.boot + ',' + this.pp.row());
      }
      step.schedule(STEP_US * 1000);
    });
    step.schedule(STEP_US * 1000);
    this.pollControl();
    this.timer = setInterval(() => { this.pollControl(); this.flush(); }, 200);
    this.timer.unref();
  }

  pollControl() {
    if (!this.stateDir) return;
    let text = '';
    try { text = fs.readFileSync(path.join(this.stateDir, 'plant.json'), 'utf8'); } catch { /* none: defaults */ }
    if (text === this.controlText) return;
    this.controlText = text;
    const why = this.pp.control(text);
    if (why) this.log('control file refused, load unchanged: ' + why);
    const gpio = this.mcu.gpio;
    gpio[PIN_BTN_START].setInputValue(!this.pp.held('btn_start'));
    gpio[PIN_BTN_UP].setInputValue(!this.pp.held('btn_up'));
    gpio[PIN_BTN_DOWN].setInputValue(!this.pp.held('btn_down'));
  }

  /** Append the recorded rows to true.csv and write the bench meter's file. */
  flush() {
    if (!this.stateDir) { this.rows.length = 0; return; }
    if (this.rows.length) {
      const file = path.join(this.stateDir, 'true.csv');
      const head = fs.existsSync(file) ? '' : 'boot,' + this.header + '\n';
      fs.appendFileSync(file, head + this.rows.join('\n') + '\n');
      this.rows.length = 0;
    }
    if (this.pp.meter && this.pp.meter_seq !== this.meterSeq) {
      const text = this.pp.meter_json();
      if (text) {
        const file = path.join(this.stateDir, 'meter.json');
        fs.writeFileSync(file + '.tmp', text);
        fs.renameSync(file + '.tmp', file);
        this.meterSeq = this.pp.meter_seq;
      }
    }
  }
}
