"""The emulated Pico from the command line.

    python -m emulators.vpico start  [--name pico] [--fresh] [--quiet] [-- RUNNER ARGS]
    python -m emulators.vpico stop   [--name pico | --all]
    python -m emulators.vpico list
    python -m emulators.vpico port   [--name pico]       (prints the port; 1 if not running)
    python -m emulators.vpico reset  [--name pico]       (power cycle: flash kept)
    python -m emulators.vpico load   [--name pico] [--hands in|out] [--skin-ohm R]
                                     [--water-ohm R] [--lift AREA] [--short on|off] [--clear]

`make pico` / `make pico-stop` call start / stop. The board's port works with mpremote and
every tool: `make flash PORT=$(python -m emulators.vpico port) BOARD=pico`.
"""

import argparse
import sys

from emulators.vpico import PicoError, VirtualPico, all_picos


def cmd_start(ns):
    vp = VirtualPico(ns.name)
    was = vp.running
    if not was and not ns.quiet:
        print("starting the emulated Pico %s (MicroPython rp2 in rp2040js) ..." % ns.name,
              flush=True)
    try:
        extra = [a for a in ns.runner_args if a != "--"]
        st = vp.start(fresh=ns.fresh, runner_args=extra, progress=None if ns.quiet else
                      (lambda m: print(m, flush=True)))
    except PicoError as e:
        print("emulated Pico: %s" % e, file=sys.stderr)
        return 1
    if ns.quiet:
        print(st["port"])
        return 0
    print("%semulated Pico %s: port %s (link %s)" % ("already running: " if was else "",
                                                     ns.name, st["port"], st["link"]))
    print("  flash %s, log %s" % (vp.flash_file, vp.state_dir / "bridge.log"))
    print("  make flash PORT=%s BOARD=pico      (stop: make pico-stop%s)"
          % (st["link"], "" if ns.name == "pico" else " PICO=" + ns.name))
    return 0


def cmd_stop(ns):
    picos = [p for p in all_picos() if p.running] if ns.all else [VirtualPico(ns.name)]
    if not picos:
        print("no emulated Pico is running")
    for vp in picos:
        print("emulated Pico %s: %s" % (vp.name, "stopped" if vp.stop() else "was not running"))
    return 0


def cmd_list(ns):
    found = False
    for vp in all_picos():
        st = vp.state()
        if st:
            found = True
            print("%-10s %-14s boots %-3d %s" % (vp.name, st["port"], st["boots"], vp.state_dir))
    if not found:
        print("no emulated Pico is running")
    return 0


def cmd_port(ns):
    st = VirtualPico(ns.name).state()
    if not st:
        print("emulated Pico %s is not running (make pico)" % ns.name, file=sys.stderr)
        return 1
    print(st["port"])
    return 0


def cmd_reset(ns):
    try:
        VirtualPico(ns.name).power_cycle()
    except PicoError as e:
        print("emulated Pico: %s" % e, file=sys.stderr)
        return 1
    print("emulated Pico %s: power cycled" % ns.name)
    return 0


def cmd_load(ns):
    vp = VirtualPico(ns.name)
    changes = {k: None for k in vp.load()} if ns.clear else {}
    if ns.hands is not None:
        changes["contact"] = ns.hands == "in"
    for key in ("skin_ohm", "water_ohm", "lift"):
        v = getattr(ns, key)
        if v is not None:
            changes["lift_area" if key == "lift" else key] = v
    if ns.short is not None:
        changes["short"] = ns.short == "on"
    try:
        current = vp.set_load(**changes)
    except ValueError as e:
        print("emulated Pico: %s" % e, file=sys.stderr)
        return 2
    print("emulated Pico %s load: %s%s" % (ns.name, current or "(defaults)",
                                           "" if vp.running else "  (not running)"))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m emulators.vpico", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def named(name, help_text, func):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--name", default="pico", help="board name (default pico)")
        p.set_defaults(func=func)
        return p

    p = named("start", "start an emulated Pico (or show the running one)", cmd_start)
    p.add_argument("--fresh", action="store_true", help="erase its flash first")
    p.add_argument("--quiet", action="store_true", help="print only the port")
    p.add_argument("runner_args", nargs=argparse.REMAINDER,
                   help="after --: passed to runner.mjs (e.g. -- --pcprof out/pc.json)")
    p = named("stop", "stop it (the flash is kept)", cmd_stop)
    p.add_argument("--all", action="store_true", help="stop every emulated Pico")
    sub.add_parser("list", help="list running emulated Picos").set_defaults(func=cmd_list)
    named("port", "print the port of a running emulated Pico", cmd_port)
    named("reset", "power cycle (the flash is kept)", cmd_reset)
    p = named("load", "change the load on its pins", cmd_load)
    p.add_argument("--hands", choices=("in", "out"))
    p.add_argument("--skin-ohm", type=float)
    p.add_argument("--water-ohm", type=float)
    p.add_argument("--lift", type=float, help="wetted area of one hand, 0.01..1")
    p.add_argument("--short", choices=("on", "off"))
    p.add_argument("--clear", action="store_true", help="back to the defaults first")
    ns = ap.parse_args(argv)
    return ns.func(ns)


if __name__ == "__main__":
    sys.exit(main())
