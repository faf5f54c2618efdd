#!/usr/bin/env node
// Run one Python file on the MicroPython WebAssembly port under Node, with a real exit status.
//
//   node tools/mpvm/run_wasm.mjs SCRIPT.py [DIR ...] [--heapsize N[K|M]] [--pystack N]
//
// Every *.py file directly inside each DIR is copied into the in-memory filesystem under
// /lib (on the port's sys.path), so `import regulator` works.  When two DIRs hold the same
// file name the first one wins, as with sys.path.  Subdirectories are not copied.
//
// Exit status: 0 when the script ran to the end (or raised SystemExit with no code, None or 0);
// N for SystemExit(N); 1 for any other uncaught exception, whose traceback goes to stderr;
// 125 for a problem of this runner itself (bad arguments, unreadable file, package missing).
// The package's own CLI exits 0 even when the script raised, hence this runner.
//
// Limits (see docs/micropython_vm.md): the port never returns while Python code loops, and an
// uncaught exception raised while the heap is locked (micropython.heap_lock) hangs it, so
// callers must always run this under a timeout (tools/mpvm/runner.py does).

import fs from "node:fs";
import path from "node:path";

const RUNNER_ERROR = 125;
const PACKAGE = "@micropython/micropython-webassembly-pyscript";

function die(message) {
  process.stderr.write(`run_wasm: ${message}\n`);
  process.exit(RUNNER_ERROR);
}

function parseSize(text) {
  const m = /^(\d+)([kKmM]?)$/.exec(text || "");
  if (!m) die(`bad size ${JSON.stringify(text)} (want e.g. 65536, 64K or 1M)`);
  const unit = { "": 1, k: 1024, m: 1024 * 1024 }[m[2].toLowerCase()];
  return parseInt(m[1], 10) * unit;
}

function parseArgs(argv) {
  const opts = { script: null, dirs: [], heapsize: 1024 * 1024, pystack: 2048 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--heapsize") opts.heapsize = parseSize(argv[++i]);
    else if (arg.startsWith("--heapsize=")) opts.heapsize = parseSize(arg.slice(11));
    else if (arg === "--pystack") opts.pystack = parseSize(argv[++i]);
    else if (arg.startsWith("--pystack=")) opts.pystack = parseSize(arg.slice(10));
    else if (arg === "-h" || arg === "--help") {
      process.stdout.write("usage: node run_wasm.mjs SCRIPT.py [DIR ...] [--heapsize N[K|M]] [--pystack N]\n");
      process.exit(0);
    } else if (arg.startsWith("--")) die(`unknown option ${arg}`);
    else if (opts.script === null) opts.script = arg;
    else opts.dirs.push(arg);
  }
  if (opts.script === null) die("no script given (usage: run_wasm.mjs SCRIPT.py [DIR ...] [--heapsize N])");
  return opts;
}

// Byte-wise output sink that writes whole lines as they complete (so output produced before a
// hang survives the kill: writes to pipes and files are synchronous in Node on Linux).
function makeSink(stream) {
  let buf = [];
  const flush = () => {
    if (buf.length) {
      stream.write(Buffer.from(buf));
      buf = [];
    }
  };
  const put = (bytes) => {
    for (const b of bytes) {
      buf.push(b);
      if (b === 10 || buf.length >= 4096) flush();
    }
  };
  return { put, flush };
}

// SystemExit reaches JS only as the traceback text; its last line is "SystemExit: <str(arg)>".
function systemExitStatus(message, stderr) {
  const lines = message.trimEnd().split("\n");
  const last = lines[lines.length - 1];
  const arg = last.startsWith("SystemExit:") ? last.slice("SystemExit:".length).trim() : "";
  if (arg === "" || arg === "None" || arg === "0") return 0;
  if (/^-?\d+$/.test(arg)) {
    const code = parseInt(arg, 10) & 0xff;
    return code === 0 ? 1 : code;
  }
  stderr.put(Buffer.from(arg + "\n")); // sys.exit("message"): CPython prints it, status 1
  return 1;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));

  let source;
  try {
    source = fs.readFileSync(opts.script, "utf8");
  } catch (err) {
    die(`cannot read script ${opts.script}: ${err.message}`);
  }
  const files = new Map(); // module file name -> contents; first directory wins
  for (const dir of opts.dirs) {
    let names;
    try {
      names = fs.readdirSync(dir).sort();
    } catch (err) {
      die(`cannot list directory ${dir}: ${err.message}`);
    }
    for (const name of names) {
      const full = path.join(dir, name);
      if (name.endsWith(".py") && !files.has(name) && fs.statSync(full).isFile()) {
        files.set(name, fs.readFileSync(full));
      }
    }
  }

  let loadMicroPython;
  try {
    ({ loadMicroPython } = await import(PACKAGE));
  } catch (err) {
    die(`cannot load ${PACKAGE} (${err.message}); run \`npm ci\` at the repository root`);
  }

  const stdout = makeSink(process.stdout);
  const stderr = makeSink(process.stderr);
  const mp = await loadMicroPython({
    heapsize: opts.heapsize,
    pystack: opts.pystack,
    stdout: stdout.put,
    stderr: stderr.put,
    linebuffer: false, // the line-buffered mode drops a last line that has no newline
  });
  mp.FS.mkdirTree("/lib");
  for (const [name, data] of files) mp.FS.writeFile("/lib/" + name, data);

  let status = 0;
  try {
    mp.runPython(source);
  } catch (err) {
    if (err && err.name === "PythonError") {
      if (err.type === "SystemExit") status = systemExitStatus(err.message, stderr);
      else {
        stdout.flush();
        stderr.put(Buffer.from(err.message.endsWith("\n") ? err.message : err.message + "\n"));
        status = 1;
      }
    } else {
      stdout.flush();
      stderr.put(Buffer.from(`run_wasm: interpreter error: ${err && err.stack ? err.stack : err}\n`));
      status = RUNNER_ERROR;
    }
  }
  stdout.flush();
  stderr.flush();
  process.exit(status);
}

main().catch((err) => die(`unexpected error: ${err && err.stack ? err.stack : err}`));
