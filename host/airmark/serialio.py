"""The serial link to a board: a small transport interface, port listing and board guessing.

This is the only module that imports pyserial (mpremote brings its own copy for
``airmark flash``). Everything above it talks to a :class:`Transport`:

- ``open()`` / ``close()`` / ``reconnect()``;
- ``readline(timeout_s)`` returns one complete line (bytes, ending in ``b"\\n"``) or
  raises :class:`SerialTimeout` -- it never returns an empty or partial value;
  a vanished device raises :class:`Disconnected`, carrying the incomplete tail it
  had buffered;
- ``write(data)``.

Tests drive the same code through a fake transport (any object with these methods).
"""

import json
import os
import time
from dataclasses import asdict, dataclass, field

from . import fw
from .errors import AirmarkError

BAUDRATE = 115200
MAX_LINE_BYTES = 4096
POLL_S = 0.05


class SerialError(AirmarkError):
    """Base class of the serial link's errors."""


class PortUnavailable(SerialError):
    """The port cannot be opened (absent, busy or no permission)."""


class Disconnected(SerialError):
    """The device went away while the port was open.

    ``partial`` holds the bytes of an unfinished line that were buffered when it happened.
    """

    def __init__(self, msg, partial=b""):
        SerialError.__init__(self, msg)
        self.partial = bytes(partial)


class SerialTimeout(SerialError):
    """No complete line (or no write progress) within the time asked for."""


class NoPortFound(SerialError):
    """No port matches, or several do and the user must choose one."""


def _serial():
    try:
        import serial
    except ImportError:
        raise SerialError("the serial tools need pyserial: pip install 'airmark[board]'") from None
    return serial


class Transport:
    """The interface the host tools use. :class:`SerialTransport` is the pyserial one."""

    port = None

    def open(self):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

    @property
    def is_open(self):
        raise NotImplementedError

    def readline(self, timeout_s):
        raise NotImplementedError

    def write(self, data):
        raise NotImplementedError

    def reconnect(self):
        """Close (ignoring errors) and open again; raises PortUnavailable if the port is gone."""
        try:
            self.close()
        except SerialError:
            pass
        self.open()


class SerialTransport(Transport):
    """A pyserial port read line by line.

    ``port`` is a device path (``/dev/ttyACM0``, ``COM5``) or a pyserial URL. The
    port is opened exclusively (a second ``airmark monitor`` or ``flash`` gets
    PortUnavailable instead of stealing half the lines).
    """

    def __init__(self, port, *, baudrate=BAUDRATE, exclusive=True, write_timeout_s=2.0):
        self.port = port
        self.baudrate = baudrate
        self.exclusive = exclusive
        self.write_timeout_s = write_timeout_s
        self._ser = None
        self._buf = bytearray()

    @property
    def is_open(self):
        return self._ser is not None

    def open(self):
        if self._ser is not None:
            return
        serial = _serial()
        try:
            ser = serial.serial_for_url(self.port, do_not_open=True, baudrate=self.baudrate,
                                        timeout=POLL_S, write_timeout=self.write_timeout_s)
            if self.exclusive and hasattr(ser, "exclusive"):
                ser.exclusive = True
            ser.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortUnavailable("cannot open %s: %s" % (self.port, exc)) from None
        self._ser = ser
        self._buf = bytearray()

    def close(self):
        ser, self._ser = self._ser, None
        self._buf = bytearray()
        if ser is not None:
            try:
                ser.close()
            except Exception:
                pass

    def _lost(self, exc):
        partial = bytes(self._buf)
        self.close()
        return Disconnected("%s: device disconnected (%s)" % (self.port, exc), partial)

    def readline(self, timeout_s):
        """One complete line (bytes ending in b"\\n"); over-long runs come back cut at MAX_LINE_BYTES."""
        if self._ser is None:
            raise Disconnected("%s: port is not open" % self.port)
        serial = _serial()
        deadline = time.monotonic() + timeout_s
        while True:
            i = self._buf.find(b"\n", 0, MAX_LINE_BYTES)
            if i >= 0:
                line = bytes(self._buf[:i + 1])
                del self._buf[:i + 1]
                return line
            if len(self._buf) >= MAX_LINE_BYTES:  # no newline in the first MAX bytes: cut
                line = bytes(self._buf[:MAX_LINE_BYTES])
                del self._buf[:MAX_LINE_BYTES]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SerialTimeout("%s: no complete line within %.2f s" % (self.port, timeout_s))
            try:
                data = self._ser.read(1)  # waits at most POLL_S
                if data:
                    waiting = self._ser.in_waiting
                    if waiting:
                        data += self._ser.read(waiting)
            except (serial.SerialException, OSError) as exc:
                raise self._lost(exc) from None
            self._buf += data

    def write(self, data):
        if self._ser is None:
            raise Disconnected("%s: port is not open" % self.port)
        serial = _serial()
        try:
            self._ser.write(data)
            self._ser.flush()
        except serial.SerialTimeoutException:
            raise SerialTimeout("%s: write timed out after %.1f s" % (self.port, self.write_timeout_s)) from None
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from None


# ---------------------------------------------------------------- boards and ports


def boards_dir():
    """The directory holding boards/*.json: the installed package data, else the repo's."""
    try:
        from . import _boards

        for d in getattr(_boards, "__path__", []):
            if os.path.isfile(os.path.join(d, "schema.json")):
                return d
    except ImportError:
        pass
    return os.path.join(os.path.dirname(fw.FIRMWARE_DIR), "boards")


def board_files():
    d = boards_dir()
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d)
                  if f.endswith(".json") and f != "schema.json")


def load_boards():
    """Every valid board definition, by name (invalid files are skipped here; flash reports them)."""
    ab = fw.module("airmark_board")
    out = {}
    for path in board_files():
        try:
            b = ab.load_json(path)
        except (ValueError, OSError):
            continue
        out[b["name"]] = b
    return out


def usb_hints(boards=None):
    """{(vid, pid): [(board name, what), ...]} from the boards' ``usb`` lists."""
    boards = load_boards() if boards is None else boards
    hints = {}
    for name in sorted(boards):
        for u in boards[name].get("usb", ()):
            key = (int(u["vid"], 16), int(u["pid"], 16))
            hints.setdefault(key, []).append((name, u["what"]))
    return hints


@dataclass
class PortInfo:
    """One serial port as the OS reports it, plus the boards it looks like."""

    device: str
    vid: object = None
    pid: object = None
    serial_number: object = None
    description: str = ""
    manufacturer: object = None
    product: object = None
    boards: list = field(default_factory=list)
    what: object = None

    @property
    def usb_id(self):
        if self.vid is None or self.pid is None:
            return None
        return "%04X:%04X" % (self.vid, self.pid)

    def to_dict(self):
        d = asdict(self)
        d["usb_id"] = self.usb_id
        return d


def describe_ports(raw_ports, boards=None):
    """PortInfo for pyserial ListPortInfo-like objects (device, vid, pid, serial_number, ...)."""
    hints = usb_hints(boards)
    out = []
    for p in raw_ports:
        vid, pid = getattr(p, "vid", None), getattr(p, "pid", None)
        match = hints.get((vid, pid), []) if vid is not None else []
        out.append(PortInfo(
            device=p.device, vid=vid, pid=pid, serial_number=getattr(p, "serial_number", None),
            description=getattr(p, "description", "") or "",
            manufacturer=getattr(p, "manufacturer", None), product=getattr(p, "product", None),
            boards=[name for name, _ in match], what=match[0][1] if match else None))
    return out


def list_ports(boards=None):
    """The serial ports on this machine, USB ones first, each with its board guess."""
    serial = _serial()
    from serial.tools import list_ports as lp

    ports = describe_ports(lp.comports(), boards)
    ports.sort(key=lambda p: (p.vid is None, not p.boards, p.device))
    return ports


def choose_port(ports, board=None):
    """The port to use when none was given: the only one that looks like `board` (or any board).

    Raises NoPortFound naming the candidates when there are none or several.
    """
    if board is not None:
        cands = [p for p in ports if board in p.boards]
        what = "board %s" % board
    else:
        cands = [p for p in ports if p.boards]
        what = "a known board"
    if not cands:
        usb = [p for p in ports if p.vid is not None]
        if board is None and len(usb) == 1:
            return usb[0].device
        listing = ", ".join("%s (%s)" % (p.device, p.usb_id or "no USB id") for p in ports) or "none"
        raise NoPortFound("no serial port looks like %s (ports: %s); pass --port" % (what, listing))
    if len(cands) > 1:
        raise NoPortFound("several ports look like %s: %s; pass --port"
                          % (what, ", ".join(p.device for p in cands)))
    return cands[0].device


def find_port(port=None, board=None):
    """`port` if given, else the one auto-detected port for `board` (see choose_port)."""
    if port:
        return port
    return choose_port(list_ports(), board)


def port_table_rows(ports):
    """Rows for the ``airmark ports`` table."""
    rows = []
    for p in ports:
        rows.append((p.device, p.usb_id or "-", p.serial_number or "-",
                     p.description or "-", ", ".join(p.boards) or "-"))
    return rows


def ports_json(ports):
    return json.dumps([p.to_dict() for p in ports])
