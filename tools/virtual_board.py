"""The virtual board from the command line: start, stop, list, reset, change the load.

    python -m tools.virtual_board start  [--name sim] [--tcp [PORT]] [--speed S] [--quiet]
    python -m tools.virtual_board stop   [--name sim | --all]   (also finds a board whose
                                                              state folder was removed)
    python -m tools.virtual_board list
    python -m tools.virtual_board port   [--name sim]          (prints the port; 1 if not running)
    python -m tools.virtual_board reset  [--name sim]          (hard reset: as from power-up)
    python -m tools.virtual_board load   [--name sim] [--hands in|out] [--skin-ohm R]
                                         [--water-ohm R] [--lift AREA] [--short on|off]
                                         [--speed S] [--clear]
    python -m tools.virtual_board session [--name sim] [--target-ma 15] [--treat-s 20] ...

A virtual board is the MicroPython unix port running the `sim` board (boards/sim.py on
the plant model) behind a pseudo-terminal, so `mpremote connect /dev/pts/N ...` treats it
as it would a Pico on /dev/ttyACM0. Its flash is a folder (build/vboard/NAME/flash);
`make flash` fills it. Several boards run at once under different names; one
firmware per flash folder (a second start on the same folder is refused).

The load and the clock are in the board's control file flash/plant.json, which the sim
board re-reads every 0.2 s: `load` edits it. speed: virtual seconds per wall second
(1 = real time, the default; 0 = as fast as it runs).
"""

import argparse
import sys

from emulators.vboard import BoardError, VirtualBoard, running_boards


def _describe(vb, st):
    s = "virtual board %s: port %s" % (vb.name, st["port"])
    if st.get("url"):
        s += "  (also %s)" % st["url"]
    return s + "\n  flash %s\n  pid %s, log %s" % (st["flash"], st["pid"],
                                                  vb.state_dir / "daemon.log")


def mpremote_command():
    """How to run mpremote from this shell: the one next to this Python (the project's
    .venv/bin/mpremote, relative when it is under the current folder)."""
    import os
    exe = os.path.join(os.path.dirname(sys.executable), "mpremote")
    if not os.path.exists(exe):
        return "%s -m mpremote" % sys.executable
    rel = os.path.relpath(exe)
    return rel if not rel.startswith("..") else exe


def cmd_start(ns):
    vb = VirtualBoard(ns.name)
    was = vb.state()
    try:
        st = vb.start(tcp=ns.tcp, speed=ns.speed)
    except BoardError as e:
        print("virtual board: %s" % e, file=sys.stderr)
        return 1
    if ns.speed is not None and was:
        vb.set_load(speed=ns.speed)
    if ns.quiet:
        print(st["port"])
    else:
        print(("already running: " if was else "") + _describe(vb, st))
        print("  %s connect %s      (stop: make sim-stop%s)"
              % (mpremote_command(), st["port"], "" if ns.name == "sim" else " VBOARD=" + ns.name))
    return 0


def cmd_stop(ns):
    # boards are found by their state files and by their host programs' command lines,
    # so one whose build/ folder was removed (make clean) is found and stopped too
    boards = [vb for vb, _ in running_boards()] if ns.all else [VirtualBoard(ns.name)]
    if not boards:
        print("no virtual board is running")
    for vb in boards:
        gone = not vb.state_dir.exists()
        print("virtual board %s: %s%s" % (vb.name, "stopped" if vb.stop() else "was not running",
                                          " (its state folder was gone)" if gone else ""))
    return 0


def cmd_list(ns):
    found = False
    for vb, st in running_boards():
        found = True
        if st:
            print("%-10s %-14s %-28s %s" % (vb.name, st["port"], st.get("url") or "",
                                            st["flash"]))
        else:
            print("%-10s %-14s %-28s %s" % (vb.name, "?", "", "(no state file: its state "
                                            "folder %s was removed; make sim-stop VBOARD=%s)"
                                            % (vb.state_dir, vb.name)))
    if not found:
        print("no virtual board is running")
    return 0


def cmd_port(ns):
    st = VirtualBoard(ns.name).state()
    if not st:
        print("virtual board %s is not running" % ns.name, file=sys.stderr)
        return 1
    print(st["port"])
    return 0


def cmd_reset(ns):
    try:
        VirtualBoard(ns.name).hard_reset()
    except BoardError as e:
        print("virtual board: %s" % e, file=sys.stderr)
        return 1
    print("virtual board %s: reset (power-up)" % ns.name)
    return 0


def cmd_load(ns):
    vb = VirtualBoard(ns.name)
    changes = {k: None for k in vb.load()} if ns.clear else {}
    if ns.hands is not None:
        changes["contact"] = ns.hands == "in"
    if ns.skin_ohm is not None:
        changes["skin_ohm"] = ns.skin_ohm
    if ns.water_ohm is not None:
        changes["water_ohm"] = ns.water_ohm
    if ns.lift is not None:
        changes["lift_area"] = ns.lift
    if ns.short is not None:
        changes["short"] = ns.short == "on"
    if ns.speed is not None:
        changes["speed"] = ns.speed
    try:
        current = vb.set_load(**changes) if changes else vb.load()
    except ValueError as e:
        print("virtual board: %s" % e, file=sys.stderr)
        return 2
    print("virtual board %s load: %s%s" % (ns.name, current or "(defaults)",
                                           "" if vb.running else "  (not running)"))
    return 0


def cmd_session(ns):
    from emulators.vboard import session
    return session.main_from_args(ns)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.virtual_board", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def named(name, help_text):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--name", default="sim", help="board name (default sim)")
        return p

    p = named("start", "start a virtual board (or show the running one)")
    p.add_argument("--tcp", type=int, nargs="?", const=0, default=None,
                   help="also serve socket://127.0.0.1:PORT (no PORT: any free one)")
    p.add_argument("--speed", type=float, default=None, help="virtual seconds per wall second")
    p.add_argument("--quiet", action="store_true", help="print only the port")
    p.set_defaults(func=cmd_start)
    p = named("stop", "stop a virtual board")
    p.add_argument("--all", action="store_true", help="stop every running virtual board")
    p.set_defaults(func=cmd_stop)
    p = sub.add_parser("list", help="list running virtual boards")
    p.set_defaults(func=cmd_list)
    p = named("port", "print the port of a running virtual board")
    p.set_defaults(func=cmd_port)
    p = named("reset", "hard reset (as from power-up; files kept)")
    p.set_defaults(func=cmd_reset)
    p = named("load", "change the load (hands, skin) or the clock speed")
    p.add_argument("--hands", choices=("in", "out"))
    p.add_argument("--skin-ohm", type=float)
    p.add_argument("--water-ohm", type=float)
    p.add_argument("--lift", type=float, help="wetted area of one hand, 0.01..1 (1 = fully in)")
    p.add_argument("--short", choices=("on", "off"), help="electrodes touching")
    p.add_argument("--speed", type=float, help="virtual seconds per wall second (0: max)")
    p.add_argument("--clear", action="store_true", help="back to the defaults first")
    p.set_defaults(func=cmd_load)
    p = named("session", "run a short time-compressed treatment on the board and plot it")
    from emulators.vboard import session
    session.add_arguments(p)
    p.set_defaults(func=cmd_session)
    ns = ap.parse_args(argv)
    return ns.func(ns)


if __name__ == "__main__":
    from tools.cli import entry
    sys.exit(entry(main))
