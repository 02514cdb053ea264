"""Board definitions: load and validate a board dict (the schema of boards/*.json).

Runs unchanged on CPython, MicroPython and CircuitPython (no ulab needed). The
same rules are written as a JSON schema in boards/schema.json; the tests check
every board file against both. Cross-field rules that the schema cannot say
clearly (rp2 ws == sck + 1, shift 16 when bits is 16) live only here.

On the board the definition comes from the generated module
``airmark_boardcfg`` (``BOARD = {...}``) or, failing that, ``board.json``.
"""

FORMAT = "airmark-board"
VERSION = 1

RUNTIMES = ("micropython", "circuitpython")
CHIP_ARCH = {"rp2040": "armv6m", "rp2350": "armv7m", "esp32": "xtensawin", "esp32s3": "xtensawin"}
RP2_CHIPS = ("rp2040", "rp2350")
MIC_MODELS = ("INMP441", "ICS-43434", "SPH0645", "PDM")
BUSES = ("i2s", "pdm")
LED_KINDS = ("gpio", "neopixel")
GPIO_MAX = 48

_TOP = ("format", "version", "name", "title", "runtime", "firmware", "chip", "mpy_arch",
        "cpu_hz", "mic", "i2s", "pdm", "led", "buffers", "watchdog_ms", "status_ms",
        "usb", "wiring", "notes")
_REQUIRED = ("format", "version", "name", "title", "runtime", "chip", "mpy_arch", "cpu_hz",
             "mic", "led", "buffers", "watchdog_ms", "usb", "wiring")

DEFAULT_STATUS_MS = 5000
DEFAULT_FLASH_MS = 200


class BoardInvalid(ValueError):
    """A board definition is invalid. `problems` lists one line per problem."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = problems


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _int_in(out, where, v, lo, hi):
    if not _is_int(v):
        out.append("%s must be an integer, got %r" % (where, v))
        return False
    if not (lo <= v <= hi):
        out.append("%s=%d out of range %d..%d" % (where, v, lo, hi))
        return False
    return True


def _unknown(out, where, d, allowed):
    for k in d:
        if k not in allowed:
            out.append("%s: unknown field %r" % (where, k))


def _is_gpio(v):
    return _is_int(v) and 0 <= v <= GPIO_MAX


def _is_pinname(v):
    if not isinstance(v, str) or not (1 <= len(v) <= 16):
        return False
    if not ("A" <= v[0] <= "Z" or "a" <= v[0] <= "z"):
        return False
    for ch in v:
        if not ("A" <= ch <= "Z" or "a" <= ch <= "z" or "0" <= ch <= "9" or ch == "_"):
            return False
    return True


def _is_hex16(v):
    if not isinstance(v, str) or len(v) != 6 or not v.startswith("0x"):
        return False
    for ch in v[2:]:
        if ch not in "0123456789ABCDEF":
            return False
    return True


def _check_name(out, v):
    ok = isinstance(v, str) and 1 <= len(v) <= 40
    if ok:
        for i in range(len(v)):
            ch = v[i]
            if not ("a" <= ch <= "z" or "0" <= ch <= "9" or (ch == "-" and i > 0)):
                ok = False
    if not ok:
        out.append("name must be 1..40 characters of a-z, 0-9 and '-' (not first), got %r" % (v,))


def _check_mic(out, b):
    mic = b["mic"]
    if not isinstance(mic, dict):
        out.append("mic must be an object")
        return None
    _unknown(out, "mic", mic, ("model", "bus", "bits", "shift", "channel"))
    if mic.get("model") not in MIC_MODELS:
        out.append("mic.model must be one of %s, got %r" % (", ".join(MIC_MODELS), mic.get("model")))
    bus = mic.get("bus")
    if bus not in BUSES:
        out.append("mic.bus must be 'i2s' or 'pdm', got %r" % (bus,))
        return None
    if bus == "i2s":
        for k in ("bits", "shift", "channel"):
            if k not in mic:
                out.append("mic.%s is required for an I2S microphone" % k)
        bits = mic.get("bits")
        if "bits" in mic and bits not in (16, 32):
            out.append("mic.bits must be 16 or 32, got %r" % (bits,))
        if "shift" in mic and _int_in(out, "mic.shift", mic["shift"], 8, 24):
            if bits == 16 and mic["shift"] != 16:
                out.append("mic.shift must be 16 when mic.bits is 16 (the port already keeps the top 16 bits)")
        if "channel" in mic and mic["channel"] != "left":
            out.append("mic.channel must be 'left' (machine.I2S MONO reads the left slot; tie L/R to GND)")
    return bus


def _check_i2s(out, b):
    i2s = b.get("i2s")
    if not isinstance(i2s, dict):
        out.append("i2s {id, sck, ws, sd, ibuf_bytes} is required for an I2S microphone")
        return
    _unknown(out, "i2s", i2s, ("id", "sck", "ws", "sd", "ibuf_bytes"))
    # CircuitPython's receiver is a PIO program (airmark_capture_pio): no id, no ibuf
    need = ("id", "sck", "ws", "sd", "ibuf_bytes") if b.get("runtime") != "circuitpython" \
        else ("sck", "ws", "sd")
    for k in need:
        if k not in i2s:
            out.append("missing field 'i2s.%s'" % k)
    if "id" in i2s:
        _int_in(out, "i2s.id", i2s["id"], 0, 1)
    pins_ok = True
    for k in ("sck", "ws", "sd"):
        if k in i2s and not _is_gpio(i2s[k]):
            out.append("i2s.%s must be a GPIO number 0..%d, got %r" % (k, GPIO_MAX, i2s[k]))
            pins_ok = False
    if "ibuf_bytes" in i2s:
        _int_in(out, "i2s.ibuf_bytes", i2s["ibuf_bytes"], 2048, 65536)
    if pins_ok and "sck" in i2s and "ws" in i2s and "sd" in i2s:
        if len(set((i2s["sck"], i2s["ws"], i2s["sd"]))) != 3:
            out.append("i2s.sck, i2s.ws and i2s.sd must be three different pins")
        if b.get("chip") in RP2_CHIPS and i2s["ws"] != i2s["sck"] + 1:
            out.append("on rp2 i2s.ws must be i2s.sck + 1 (PIO side-set pins), got sck=%d ws=%d"
                       % (i2s["sck"], i2s["ws"]))


def _check_pdm(out, b):
    pdm = b.get("pdm")
    if not isinstance(pdm, dict):
        out.append("pdm {clk, data} is required for a PDM microphone")
        return
    _unknown(out, "pdm", pdm, ("clk", "data"))
    for k in ("clk", "data"):
        if not _is_pinname(pdm.get(k)):
            out.append("pdm.%s must be a board pin name such as 'D10', got %r" % (k, pdm.get(k)))


def _check_led(out, led):
    if led is None:
        return
    if not isinstance(led, dict):
        out.append("led must be null or an object {pin, kind}")
        return
    _unknown(out, "led", led, ("pin", "kind", "active_high", "flash_ms"))
    pin = led.get("pin")
    if not (_is_gpio(pin) or _is_pinname(pin)):
        out.append("led.pin must be a GPIO number or a pin name, got %r" % (pin,))
    if led.get("kind") not in LED_KINDS:
        out.append("led.kind must be 'gpio' or 'neopixel', got %r" % (led.get("kind"),))
    if "active_high" in led and not isinstance(led["active_high"], bool):
        out.append("led.active_high must be true or false")
    if "flash_ms" in led:
        _int_in(out, "led.flash_ms", led["flash_ms"], 10, 5000)


def _check_buffers(out, bufs):
    if not isinstance(bufs, dict):
        out.append("buffers must be an object {n_bufs, hop_samples}")
        return
    _unknown(out, "buffers", bufs, ("n_bufs", "hop_samples"))
    for k in ("n_bufs", "hop_samples"):
        if k not in bufs:
            out.append("missing field 'buffers.%s'" % k)
    if "n_bufs" in bufs:
        _int_in(out, "buffers.n_bufs", bufs["n_bufs"], 2, 16)
    if "hop_samples" in bufs:
        _int_in(out, "buffers.hop_samples", bufs["hop_samples"], 64, 4096)


def _check_usb(out, usb):
    if not isinstance(usb, list):
        out.append("usb must be a list of {vid, pid, what}")
        return
    for i in range(len(usb)):
        u = usb[i]
        if not isinstance(u, dict):
            out.append("usb[%d] must be an object" % i)
            continue
        _unknown(out, "usb[%d]" % i, u, ("vid", "pid", "what"))
        for k in ("vid", "pid"):
            if not _is_hex16(u.get(k)):
                out.append("usb[%d].%s must look like '0x2E8A', got %r" % (i, k, u.get(k)))
        if not isinstance(u.get("what"), str):
            out.append("usb[%d].what must be a string" % i)


def _check_wiring(out, wiring):
    if not isinstance(wiring, list) or len(wiring) < 3:
        out.append("wiring must be a list of at least 3 [mic pin, board pin] rows")
        return
    for i in range(len(wiring)):
        row = wiring[i]
        if not (isinstance(row, list) and len(row) == 2
                and isinstance(row[0], str) and isinstance(row[1], str)):
            out.append("wiring[%d] must be [mic pin, board pin] (two strings)" % i)


def problems(b):
    """Every problem with board dict `b`, one short line each; empty list when valid."""
    if not isinstance(b, dict):
        return ["board definition is not a JSON object"]
    out = []
    if b.get("format") != FORMAT:
        out.append("format is %r, expected %r" % (b.get("format"), FORMAT))
    if b.get("version") != VERSION:
        out.append("unknown board version %r (this build reads version %d)" % (b.get("version"), VERSION))
    for k in _REQUIRED:
        if k not in b:
            out.append("missing field %r" % k)
    _unknown(out, "board", b, _TOP)
    if out:
        return out
    _check_name(out, b["name"])
    if not isinstance(b["title"], str) or not (1 <= len(b["title"]) <= 80):
        out.append("title must be a string of 1..80 characters")
    for k in ("firmware", "notes"):
        if k in b and not isinstance(b[k], str):
            out.append("%s must be a string" % k)
    runtime = b["runtime"]
    if runtime not in RUNTIMES:
        out.append("runtime must be 'micropython' or 'circuitpython', got %r" % (runtime,))
    chip = b["chip"]
    arch = b["mpy_arch"]
    if chip not in CHIP_ARCH:
        out.append("chip must be one of rp2040, rp2350, esp32, esp32s3, got %r" % (chip,))
    elif runtime == "micropython" and arch != CHIP_ARCH[chip]:
        out.append("mpy_arch for %s must be %r, got %r" % (chip, CHIP_ARCH[chip], arch))
    elif runtime == "circuitpython" and arch is not None:
        out.append("mpy_arch must be null for CircuitPython (it rejects MicroPython .mpy files)")
    _int_in(out, "cpu_hz", b["cpu_hz"], 48000000, 400000000)
    bus = _check_mic(out, b)
    if bus == "i2s":
        _check_i2s(out, b)
    elif bus == "pdm":
        _check_pdm(out, b)
    if runtime == "circuitpython" and bus == "i2s":
        if chip not in RP2_CHIPS:
            out.append("CircuitPython takes an I2S microphone only on rp2040/rp2350 (a PIO "
                       "receiver; stable CircuitPython has no I2S input): use a PDM one")
        mic = b["mic"]
        if mic.get("bits") != 32 or mic.get("shift") != 16:
            out.append("CircuitPython's PIO receiver keeps the top 16 of 32 bits: "
                       "mic.bits must be 32 and mic.shift 16")
    _check_led(out, b["led"])
    _check_buffers(out, b["buffers"])
    _int_in(out, "watchdog_ms", b["watchdog_ms"], 0, 8300)
    if "status_ms" in b:
        _int_in(out, "status_ms", b["status_ms"], 0, 600000)
    _check_usb(out, b["usb"])
    _check_wiring(out, b["wiring"])
    return out


def validate(b):
    """Return `b` if valid, else raise BoardInvalid listing every problem."""
    p = problems(b)
    if p:
        raise BoardInvalid(p)
    return b


def load_json(path):
    """Read and validate a board JSON file."""
    import json
    with open(path) as f:
        b = json.load(f)
    return validate(b)


def load(module_name="airmark_boardcfg", json_path="board.json"):
    """The board on this device: ``BOARD`` from the generated module, else `json_path`."""
    try:
        mod = __import__(module_name)
    except ImportError:
        mod = None
    if mod is not None and hasattr(mod, "BOARD"):
        return validate(mod.BOARD)
    return load_json(json_path)


def status_ms(b):
    return b.get("status_ms", DEFAULT_STATUS_MS)


def flash_ms(b):
    led = b.get("led")
    if led is None:
        return DEFAULT_FLASH_MS
    return led.get("flash_ms", DEFAULT_FLASH_MS)
