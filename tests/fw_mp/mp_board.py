"""Board definitions: every file validates; broken copies are refused with a clear line.

Usage: mp_board.py BOARD.json...   (prints the same lines on MicroPython and CPython)
"""

import json
import sys

from mp_common import check, finish
import airmark_board


def copy(d):
    return json.loads(json.dumps(d))


paths = [p for p in sys.argv[1:] if not p.endswith("schema.json")]
boards = {}
for p in paths:
    b = airmark_board.load_json(p)      # raises BoardInvalid if invalid
    name = p[p.rfind("/") + 1:-5]
    check("valid " + name, b["name"] == name, "name field %r != file name" % b["name"])
    boards[name] = b

pico = boards["pico-inmp441"]
cp = boards["feather-rp2040-pdm"]


def mutate(base, path, value):
    b = copy(base)
    node = b
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return b


CASES = [
    ("rp2 ws not sck+1", pico, ("i2s", "ws"), 19),
    ("bad arch for chip", pico, ("mpy_arch",), "xtensawin"),
    ("bits 24", pico, ("mic", "bits"), 24),
    ("shift with bits 16", mutate(pico, ("mic", "bits"), 16), ("mic", "shift"), 17),
    ("right channel", pico, ("mic", "channel"), "right"),
    ("missing i2s", pico, ("i2s",), KeyError),
    ("pin out of range", pico, ("i2s", "sd"), 99),
    ("same pins", pico, ("i2s", "sd"), 16),
    ("ibuf too small", pico, ("i2s", "ibuf_bytes"), 100),
    ("n_bufs 1", pico, ("buffers", "n_bufs"), 1),
    ("watchdog too long", pico, ("watchdog_ms",), 20000),
    ("unknown field", pico, ("colour",), "red"),
    ("bad usb vid", pico, ("usb", 0, "vid"), "2e8a"),
    ("bad led kind", pico, ("led", "kind"), "rgb"),
    ("bad name", pico, ("name",), "Pico W"),
    ("version 2", pico, ("version",), 2),
    ("cp with arch", cp, ("mpy_arch",), "armv6m"),
    ("cp pdm pin", cp, ("pdm", "clk"), 10),
    ("cp i2s mic", mutate(cp, ("mic", "bus"), "i2s"), ("mic", "model"), "INMP441"),
]
for name, base, path, value in CASES:
    p = airmark_board.problems(mutate(base, path, value))
    check("reject " + name, len(p) > 0)
    print("  " + name + " -> " + (p[0] if p else "(accepted)"))

try:
    airmark_board.validate({"format": "airmark-board"})
    check("BoardInvalid raised", False)
except airmark_board.BoardInvalid as exc:
    check("BoardInvalid raised", len(exc.problems) > 3)
    print("  " + exc.problems[0])
check("not a dict", airmark_board.problems([1]) == ["board definition is not a JSON object"])
check("status_ms default", airmark_board.status_ms({}) == 5000)
check("flash_ms", airmark_board.flash_ms(pico) == 200)
finish()
