"""Shared command-line plumbing for the technician tools (monitor, logview, calibrate).

A tool built on it:

    from tools import cli

    def run(ns, dev, ident):                      # dev: tools.client.Client, identified
        print(cli.board_text(ident))
        ...
        return cli.EXIT_OK

    def main(argv=None, opener=None):
        ap = cli.parser("python -m tools.mytool", __doc__, EXAMPLES)
        cli.add_port_arguments(ap)
        ns = ap.parse_args(argv)
        return cli.run_with_device(ns, run, opener=opener)

What it gives every tool, the same way:

* `--port PORT` (any pyserial port or URL: /dev/ttyACM0, COM3, socket://host:port, a pty);
  without it the running virtual board `--vboard NAME` (default `sim`), as
  `tools/check.py` does. `--timeout S`: how long the device has to answer each request
  (default 3 s); nothing ever waits longer, so a silent port never hangs a tool.
* The identify check: the port must answer `identify` with this firmware's protocol
  (`proto` == PROTOCOL and a `fw` version) within the timeout. Boot text, a plain
  MicroPython REPL, garbage or silence are refused with a message.
* Exit statuses: 0 done; 1 the job failed (the device refused, the link broke during the
  job); 2 no device: the port is missing, cannot be opened, does not answer, or does not
  run this firmware (also: a usage error, as argparse does); 130 interrupted (Ctrl-C).
  Expected failures print one `error: ...` line on stderr, never a traceback. flash and
  check use the same numbers (flash: 2 = refused before anything was written).
* Port problems in the same words from every tool (`port_problem`): "PORT does not
  exist", "PORT is busy", "PORT is in use by another program (pid ...)" (ports are
  opened exclusively, as mpremote opens them), "permission denied on PORT"; a running virtual board is
  suggested with its name (`no_vboard_text`).
* `entry(main)`: what `python -m tools.X` runs. Ctrl-C anywhere prints one line
  ("interrupted") and exits 130; a closed stdout (`... | head`) ends the tool quietly.

`opener` (tests): a function (port, timeout) -> Client used instead of opening the port
with pyserial, e.g. to talk to the firmware's app in-process in virtual time.
"""

import argparse
import sys

from tools.client import ClientError, DeviceError, ProtocolError, Timeout

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NO_DEVICE = 2
EXIT_INTERRUPTED = 130

PROTOCOL = 2                  # the protocol version these tools speak (identify -> proto)
DEFAULT_TIMEOUT = 3.0
DEFAULT_VBOARD = "sim"
QUIET_S = 0.3                 # identify: silence awaited after an answer that is not ours


class CliError(Exception):
    """An expected failure: `str()` is the message for the user, `.status` the exit status."""

    def __init__(self, msg, status=EXIT_FAILED):
        Exception.__init__(self, msg)
        self.status = status


class NoDevice(CliError):
    """The port is missing, does not answer, or does not run this firmware (exit 2)."""

    def __init__(self, msg):
        CliError.__init__(self, msg, EXIT_NO_DEVICE)


# ---- arguments -------------------------------------------------------------------------------

def parser(prog, description, examples=""):
    """An ArgumentParser that keeps the layout of `description` and ends `--help` with
    `examples` (a text block)."""
    return argparse.ArgumentParser(
        prog=prog, description=description,
        epilog=("examples:\n" + examples.strip("\n")) if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)


def add_port_arguments(ap, timeout=DEFAULT_TIMEOUT):
    """--port, --vboard, --timeout."""
    g = ap.add_argument_group("device")
    g.add_argument("--port", default=None,
                   help="serial port or pyserial URL of the device (/dev/ttyACM0, COM3, "
                   "socket://127.0.0.1:PORT); default: the running virtual board")
    g.add_argument("--vboard", default=DEFAULT_VBOARD,
                   help="the virtual board used without --port (default %(default)s)")
    g.add_argument("--timeout", type=_positive, default=timeout, metavar="S",
                   help="seconds the device has to answer a request (default %(default)g)")
    return g


def _positive(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % text)
    if not v > 0:
        raise argparse.ArgumentTypeError("must be > 0: %r" % text)
    return v


# ---- the device --------------------------------------------------------------------------------

def resolve_port(port, vboard=DEFAULT_VBOARD):
    """(port, label): `port` itself, or the running virtual board's pty. NoDevice if neither."""
    if port:
        return port, port
    from emulators.vboard import VirtualBoard
    st = VirtualBoard(vboard).state()
    if not st:
        raise NoDevice(no_vboard_text(vboard))
    return st["port"], "%s (virtual board %s)" % (st["port"], vboard)


def no_vboard_text(vboard):
    """The one sentence for 'no --port and the virtual board is not running'."""
    named = "" if vboard == DEFAULT_VBOARD else " VBOARD=%s" % vboard
    return ("no port given and virtual board %s is not running: start it with `make sim%s` "
            "(and `make flash%s`), or give the device's port (PORT=/dev/ttyACM0)"
            % (vboard, named, named))


def port_problem(port):
    """Why `port` (a device path) cannot be a board, in the words every tool uses, or None
    when it may be one (URLs such as socket://... are not judged here)."""
    import errno
    import os
    if not port or "://" in port or not (port.startswith("/dev/") or os.sep in port):
        return None
    if not os.path.exists(port):
        return "port %s does not exist (is the board plugged in? `ls /dev/ttyACM*`)" % port
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.EBUSY:
            return "port %s is busy: another program has it open (close it and retry)" % port
        if e.errno in (errno.EACCES, errno.EPERM):
            return ("permission denied on port %s: add yourself to its group (e.g. "
                    "`sudo usermod -aG dialout $USER`, then log in again)" % port)
        return "port %s cannot be opened: %s" % (port, e.strerror or e)
    os.close(fd)
    return None


def entry(main, *args, **kw):
    """Run a tool's main() as `python -m tools.X` does: Ctrl-C -> one line and 130, a
    closed stdout (a pipe into `head`) -> quiet, never a traceback for either."""
    try:
        return main(*args, **kw)
    except KeyboardInterrupt:
        _say(sys.stderr, "interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK


def _quiet_stdout():
    """Point stdout at /dev/null, so the interpreter's final flush does not complain."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def open_client(port, timeout=DEFAULT_TIMEOUT, opener=None):
    """A Client on `port`; NoDevice when the port cannot be opened."""
    if opener is not None:
        return opener(port, timeout)
    problem = port_problem(port)
    if problem:
        raise NoDevice(problem)
    from tools.client import Client, PortInUse
    try:
        import serial
    except ImportError:
        raise CliError("pyserial is not installed (make venv, or pip install pyserial)")
    try:
        return Client(port, timeout=timeout)
    except PortInUse as e:
        raise NoDevice(str(e))
    except (serial.SerialException, OSError, ValueError) as e:
        raise NoDevice("cannot open %s: %s" % (port, _reason(e)))


def identify(dev, timeout=DEFAULT_TIMEOUT, label="the port"):
    """The device's identify reply, asked until it answers (a board that was just reset
    prints boot text first) for at most `timeout` seconds of the client's clock.
    NoDevice when nothing answers as this firmware does."""
    deadline = dev.clock() + timeout
    last = None
    while True:
        left = deadline - dev.clock()
        if left <= 0:
            break
        dev.drain()
        try:
            ident = dev.request("identify", timeout=min(left, 1.0))
        except Timeout as e:
            if e.garbage is not None:
                last = "it answers, but not with this firmware's protocol (%r)" % (
                    e.garbage[:80],)
                _wait_quiet(dev, QUIET_S, deadline)   # never flood what might be a REPL
            else:
                last = "nothing answered" if last is None else last
            continue
        except ProtocolError as e:
            last = "it answers, but not with this firmware's protocol (%s)" % e
            # let the other end finish talking (boot text, a REPL's echo and prompt)
            # before asking again: never flood what might be a REPL
            _wait_quiet(dev, QUIET_S, deadline)
            continue
        except DeviceError as e:
            if e.code in ("E_JSON", "E_UTF8", "E_TOO_LONG"):
                # our line arrived damaged (e.g. partly while the board was booting)
                last = "the request arrived damaged (%s)" % e
                _wait_quiet(dev, QUIET_S, deadline)
                continue
            if e.code == "E_UNKNOWN_CMD":
                raise NoDevice("%s does not know identify (%s): it does not run this "
                               "firmware (protocol %d)" % (label, e, PROTOCOL))
            raise NoDevice("%s answered identify with an error (%s)" % (label, e))
        check_identity(ident, label)
        return ident
    raise NoDevice("%s does not answer as this firmware within %g s: %s. Is it a board "
                   "flashed with this firmware (make flash PORT=...), and is no other "
                   "program using the port?" % (label, timeout, last or "nothing answered"))


def _wait_quiet(dev, quiet_s, deadline):
    """Read and drop what arrives until nothing came for `quiet_s` (or the deadline)."""
    until = dev.clock() + quiet_s
    while True:
        now = dev.clock()
        if now >= until or now >= deadline:
            break
        waiting = dev.port.in_waiting
        if dev.port.read(waiting if waiting > 0 else 1):
            until = dev.clock() + quiet_s
    dev.drain()


def check_identity(ident, label="the port"):
    """NoDevice unless `ident` (an identify reply) is this firmware's."""
    if not isinstance(ident.get("fw"), str) or ident.get("proto") != PROTOCOL:
        raise NoDevice("%s answers identify with fw %r, protocol %r: these tools need this "
                       "firmware with protocol %d" % (label, ident.get("fw"),
                                                      ident.get("proto"), PROTOCOL))


def connect(port=None, vboard=DEFAULT_VBOARD, timeout=DEFAULT_TIMEOUT, opener=None):
    """(client, identify reply, port label); the client is closed again on failure."""
    port, label = resolve_port(port, vboard)
    dev = open_client(port, timeout, opener)
    try:
        ident = identify(dev, timeout, label)
    except BaseException:
        close_quietly(dev)
        raise
    return dev, ident, label


def close_quietly(dev):
    try:
        dev.close()
    except Exception:
        pass


def board_text(ident):
    """'board sim, uid 1a2b..., firmware 0.4.0' for titles and headers."""
    s = "board %s" % ident.get("board")
    if ident.get("uid"):
        s += ", uid %s" % ident["uid"]
    return s + ", firmware %s" % ident.get("fw")


# ---- running a tool ------------------------------------------------------------------------------

def run_with_device(ns, job, opener=None, err=None):
    """Connect as `ns` says (--port/--vboard/--timeout), run job(ns, dev, ident), close the
    port; expected failures become a message on `err` and an exit status (module doc)."""
    def body():
        dev, ident, ns.port_label = connect(ns.port, ns.vboard, ns.timeout, opener)
        try:
            return job(ns, dev, ident)
        finally:
            close_quietly(dev)
    return guarded(body, err=err)


def guarded(fn, *args, err=None, **kw):
    """fn(*args, **kw) -> its exit status; CliError, the client's errors, serial/OS errors
    and Ctrl-C -> one line on stderr and the matching exit status, no traceback."""
    err = err or sys.stderr
    try:
        status = fn(*args, **kw)
        return EXIT_OK if status is None else status
    except CliError as e:
        _say(err, "error: %s" % e)
        return e.status
    except DeviceError as e:
        _say(err, "error: the device refused: %s" % e)
        return EXIT_FAILED
    except Timeout as e:
        _say(err, "error: the device stopped answering (%s)" % e)
        return EXIT_FAILED
    except ClientError as e:
        _say(err, "error: unexpected data from the device: %s" % e)
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say(err, "interrupted")
        return EXIT_INTERRUPTED
    except (OSError, _serial_error()) as e:
        _say(err, "error: the port failed: %s" % _reason(e))
        return EXIT_FAILED


def _serial_error():
    try:
        import serial
        return serial.SerialException
    except ImportError:            # pragma: no cover
        return OSError


def _reason(e):
    return str(e) or type(e).__name__


def _say(stream, text):
    try:
        stream.write(text + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


# the exceptions a broken or misbehaving link raises (for tools that want to finish their
# files before reporting one)
LINK_ERRORS = (ClientError, OSError, _serial_error())
