"""Board definitions against boards/schema.json (jsonschema) and firmware/airmark_board.py (CPython)."""

import copy
import glob
import json
import os

import jsonschema
import pytest

import fw_helpers as h
import airmark_board

SCHEMA = json.load(open(os.path.join(h.BOARDS, "schema.json")))
FILES = sorted(f for f in glob.glob(os.path.join(h.BOARDS, "*.json")) if not f.endswith("schema.json"))
REQUIRED_BOARDS = {"pico-inmp441", "picow-inmp441", "pico2-inmp441", "esp32-devkitc-inmp441",
                   "esp32s3-devkitc-inmp441", "feather-rp2040-pdm", "pico-inmp441-circuitpython",
                   "pico2-inmp441-circuitpython"}


def test_schema_is_valid_draft7():
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_required_boards_present():
    assert REQUIRED_BOARDS <= {os.path.basename(f)[:-5] for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_board_valid_both_ways(path):
    b = json.load(open(path))
    jsonschema.validate(b, SCHEMA)
    assert airmark_board.problems(b) == []
    assert b["name"] == os.path.basename(path)[:-5]


def _pico():
    return json.load(open(os.path.join(h.BOARDS, "pico-inmp441.json")))


def _cp():
    return json.load(open(os.path.join(h.BOARDS, "feather-rp2040-pdm.json")))


def _cp_i2s():
    return json.load(open(os.path.join(h.BOARDS, "pico-inmp441-circuitpython.json")))


def _set(b, path, value):
    node = b
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return b


# Mutations both validators must refuse (everything the schema can express).
BOTH = [
    (_pico, ("mpy_arch",), "xtensawin"), (_pico, ("mic", "bits"), 24), (_pico, ("mic", "channel"), "right"),
    (_pico, ("i2s",), KeyError), (_pico, ("i2s", "sd"), 99), (_pico, ("i2s", "ibuf_bytes"), 100),
    (_pico, ("buffers", "n_bufs"), 1), (_pico, ("watchdog_ms",), 20000), (_pico, ("colour",), "red"),
    (_pico, ("usb", 0, "vid"), "2e8a"), (_pico, ("led", "kind"), "rgb"), (_pico, ("name",), "Pico W"),
    (_pico, ("version",), 2), (_pico, ("runtime",), "rust"), (_pico, ("wiring",), [["a", "b"]]),
    (_cp, ("mpy_arch",), "armv6m"), (_cp, ("pdm", "clk"), 10), (_cp, ("pdm",), KeyError),
    (_pico, ("i2s", "ibuf_bytes"), KeyError), (_pico, ("i2s", "id"), KeyError),
    (_cp_i2s, ("chip",), "esp32s3"), (_cp_i2s, ("mic", "bits"), 16), (_cp_i2s, ("mic", "shift"), 17),
    (_cp_i2s, ("i2s", "sd"), KeyError), (_cp_i2s, ("mpy_arch",), "armv6m"),
]


@pytest.mark.parametrize("make,path,value", BOTH, ids=["/".join(map(str, m[1])) + "=" + repr(m[2]) for m in BOTH])
def test_mutation_refused_by_both(make, path, value):
    b = _set(copy.deepcopy(make()), path, value)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(b, SCHEMA)
    assert airmark_board.problems(b)


def test_rp2_ws_rule_only_in_firmware_validator():
    b = _set(_pico(), ("i2s", "ws"), 19)
    assert any("sck + 1" in p for p in airmark_board.problems(b))
    b = _set(_pico(), ("i2s", "sd"), 16)
    assert any("three different pins" in p for p in airmark_board.problems(b))


def test_load_prefers_generated_module(tmp_path, monkeypatch):
    b = _pico()
    (tmp_path / "airmark_boardcfg_t.py").write_text("BOARD = %r\n" % (b,))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert airmark_board.load("airmark_boardcfg_t", "nonexistent.json")["name"] == "pico-inmp441"
    path = tmp_path / "board.json"
    path.write_text(json.dumps(_cp()))
    assert airmark_board.load("no_such_module_here", str(path))["name"] == "feather-rp2040-pdm"
