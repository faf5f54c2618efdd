"""Where the emulated RP2040 spends its time: the runner's PC samples, by C function.

    python -m emulators.vpico start --name prof -- --pcprof out/pc.json --pcprof-gate 22
    ... run the code to profile (drive GPIO 22 high around it to sample only there) ...
    python -m tools.pcprof out/pc.json [--top 30]

The runner (emulators/vpico/runner.mjs --pcprof FILE) samples the program counter every
97th instruction (+1 when the core is in an interrupt handler) and writes a histogram;
this maps each PC to its function with the symbols of the vendored image
(emulators/vpico/image/firmware.elf, read with binutils' `nm`) and prints the functions
and a few groups (bytecode dispatch, attribute lookups, the collector, USB) by share.
"""

import argparse
import bisect
import collections
import json
import subprocess
import sys
from pathlib import Path

ELF = Path(__file__).resolve().parents[1] / "emulators" / "vpico" / "image" / "firmware.elf"
BOOTROM_END = 0x4000
GROUPS = (
    ("bytecode dispatch", ("mp_execute_bytecode",)),
    ("attribute and name lookups", ("mp_map_lookup", "mp_load_", "mp_obj_class_lookup",
                                    "mp_store_attr", "instance_")),
    ("calls and frames", ("mp_call_", "fun_bc_call", "mp_setup_code_state", "bound_meth")),
    ("heap: allocation and collection", ("gc_", "m_malloc", "m_free", "m_realloc")),
    ("integer division", ("__aeabi_idiv", "__aeabi_uidiv", "divmod", "hw_divider")),
    ("bigint and float", ("mpz", "mp_obj_float", "__aeabi_f", "__aeabi_d")),
    ("USB and the scheduler", ("tud_", "dcd_", "usbd_", "mp_usbd", "mp_handle_pending",
                               "mp_sched")),
    ("ADC, PWM, pins", ("machine_adc", "adc_", "machine_pwm", "pwm_", "machine_pin", "gpio_")),
)


def symbols(elf=ELF):
    """Sorted [(address, size, name)] of the ELF's code symbols."""
    try:
        out = subprocess.run(["nm", "-n", "-S", str(elf)], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit("pcprof: cannot read symbols of %s with nm (binutils): %s" % (elf, e))
    syms = []
    for line in out.splitlines():
        p = line.split()
        if p and p[-1].startswith("$"):          # ARM mapping symbols ($t, $d)
            continue
        if len(p) == 4 and p[2] in "tTwW":
            syms.append((int(p[0], 16), int(p[1], 16), p[3]))
        elif len(p) == 3 and p[1] in "tTwW":
            syms.append((int(p[0], 16), 0, p[2]))
    syms.sort()
    return syms


def attribute(hist, syms):
    """({function: samples}, irq samples, total) for [[pc, count], ...]."""
    addrs = [s[0] for s in syms]
    by = collections.Counter()
    irq = 0
    total = 0
    for pc, count in hist:
        a = pc & ~1
        i = bisect.bisect_right(addrs, a) - 1
        if a < BOOTROM_END:
            name = "(bootrom)"
        else:
            name = syms[i][2] if i >= 0 else "?%08x" % a
        by[name] += count
        irq += count if pc & 1 else 0
        total += count
    return by, irq, total


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.pcprof", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples", help="the runner's --pcprof file")
    ap.add_argument("--top", type=int, default=30)
    ns = ap.parse_args(argv)
    try:
        data = json.loads(Path(ns.samples).read_text())
    except (OSError, ValueError) as e:
        print("pcprof: cannot read %s: %s" % (ns.samples, e), file=sys.stderr)
        return 2
    by, irq, total = attribute(data["hist"], symbols())
    if not total:
        print("pcprof: no samples (was the gate GPIO ever high?)", file=sys.stderr)
        return 1
    print("%d samples (one per %d instructions, gate GPIO %s); in interrupts %.1f %%"
          % (total, data["every"], data["gate"], 100.0 * irq / total))
    groups = collections.Counter()
    for name, n in by.items():
        for label, prefixes in GROUPS:
            if any(name.startswith(p) for p in prefixes):
                groups[label] += n
                break
    print("\n  share  group")
    for label, n in groups.most_common():
        print("  %4.1f %%  %s" % (100.0 * n / total, label))
    print("\n  share  function")
    for name, n in by.most_common(ns.top):
        print("  %4.1f %%  %s" % (100.0 * n / total, name))
    return 0


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
