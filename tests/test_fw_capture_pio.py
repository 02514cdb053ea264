"""CircuitPython's PIO I2S receiver: the program, cycle by cycle, against a model microphone.

The model runs the 16-bit words of ``PROGRAM`` as an RP2040 state machine does (side-set,
X/Y counters, ``in`` with a left shift and autopush at 16 bits) and an I2S transmitter
that answers the clocks it drives. The ring that serves hops is tested in
tests/fw_mp/mp_capture_pio.py, on MicroPython and CPython.
"""

import sys

import numpy as np
import pytest

import fw_helpers as h  # noqa: F401  (puts firmware/ on sys.path)
import airmark_capture_pio as cap_pio



def run_pio(words, data_fn, cycles, sideset_bits=2):
    """Run `words` for `cycles` state-machine cycles. Returns the pushed FIFO words and the
    (bclk, ws) pins after every cycle. `data_fn(bclk_edges)` is called on every BCLK edge
    with ("rise"|"fall", ws) and returns the data pin level (None: unchanged)."""
    pc, x, y, isr, isr_count = 0, 0, 0, 0, 0
    bclk, ws, data = 0, 0, 0
    pushed, pins = [], []
    delay_bits = 5 - sideset_bits
    for _ in range(cycles):
        w = words[pc]
        op, arg1, arg2 = w >> 13, (w >> 5) & 7, w & 31
        assert (w >> 8) & ((1 << delay_bits) - 1) == 0, "no delays in this program"
        side = (w >> (8 + delay_bits)) & ((1 << sideset_bits) - 1)
        sampled = data                      # the input as it stood when the cycle began
        new_bclk, new_ws = side & 1, (side >> 1) & 1
        ws = new_ws
        if new_bclk != bclk:
            level = data_fn("rise" if new_bclk else "fall", ws)
            if level is not None:
                data = level
        bclk = new_bclk
        nxt = (pc + 1) % len(words)
        if op == 0b000:                                   # JMP
            if arg1 == 0b000:
                nxt = arg2
            elif arg1 == 0b010:                           # X--
                if x != 0:
                    nxt = arg2
                x = (x - 1) & 0xFFFFFFFF
            elif arg1 == 0b100:                           # Y--
                if y != 0:
                    nxt = arg2
                y = (y - 1) & 0xFFFFFFFF
            else:
                raise AssertionError("unexpected JMP condition %d" % arg1)
        elif op == 0b010:                                 # IN
            assert arg1 == 0b000 and arg2 == 1, "only `in pins, 1`"
            isr = ((isr << 1) | sampled) & 0xFFFFFFFF
            isr_count += 1
            if isr_count == 16:                           # autopush, threshold 16
                pushed.append(isr)
                isr, isr_count = 0, 0
        elif op == 0b111:                                 # SET
            if arg1 == 0b001:
                x = arg2
            elif arg1 == 0b010:
                y = arg2
            else:
                raise AssertionError("unexpected SET destination %d" % arg1)
        elif op == 0b101:                                 # MOV: only the nop, mov y, y
            assert w & 0xFF == 0x42, "only `nop`"
        else:
            raise AssertionError("unexpected opcode %d" % op)
        pc = nxt
        pins.append((bclk, ws))
    return pushed, pins


class I2SMic:
    """An INMP441 on the left channel: WS read on rising BCLK edges; after WS falls, the MSB
    of the next 24-bit word goes out on the second falling edge (one bit clock of delay),
    then one bit per falling edge, then zeros; the right slot is someone else's (random)."""

    def __init__(self, words24, seed=0):
        self.words = list(words24)
        self.rng = np.random.default_rng(seed)
        self.ws_seen = 1
        self.bit = None
        self.word = None
        self.sent = []

    def __call__(self, edge, ws):
        if edge == "rise":
            if ws == 0 and self.ws_seen == 1:
                self.word = self.words.pop(0) if self.words else 0
                self.sent.append(self.word)
                self.bit = 0
            self.ws_seen = ws
            return None
        if self.ws_seen == 1:
            return int(self.rng.integers(0, 2))
        if self.bit is None:
            return 0
        b = self.bit
        self.bit += 1
        return (self.word >> (23 - b)) & 1 if b < 24 else 0


def test_program_receives_the_top_16_bits_of_every_left_word():
    rng = np.random.default_rng(1)
    words = [int(v) & 0xFFFFFF for v in rng.integers(-2 ** 23, 2 ** 23, 40)]
    words[:4] = [0x7FFFFF, 0x800000, 0x000001, 0xFFFFFF]     # extremes, +1 and -1 LSB
    mic = I2SMic(words)
    frames = 40
    pushed, pins = run_pio(cap_pio.PROGRAM, mic, frames * 128)
    assert len(pushed) == frames
    got = [w - 65536 if w >= 32768 else w for w in pushed]      # the low half, as int16
    expect = [((w >> 8) ^ 0x8000) - 0x8000 for w in mic.sent[:frames]]
    assert got == expect
    assert got[:4] == [32767, -32768, 0, -1]
    assert all(w < 65536 for w in pushed)                      # the upper half stays zero


def test_program_clocks_a_64_bit_frame_with_ws_on_falling_edges():
    _, pins = run_pio(cap_pio.PROGRAM, lambda edge, ws: None, 10 * 128)
    bclk = np.array([p[0] for p in pins])
    ws = np.array([p[1] for p in pins])
    assert np.all(bclk[1:] != bclk[:-1])                       # one edge every cycle
    assert np.array_equal(ws.reshape(10, 128), np.repeat([[0] * 64 + [1] * 64], 10, axis=0))
    changes = np.flatnonzero(ws[1:] != ws[:-1]) + 1
    assert np.all(bclk[changes] == 0)                          # WS moves with BCLK falling
    assert cap_pio.CYCLES_PER_BIT * cap_pio.BITS_PER_FRAME * cap_pio.SAMPLE_RATE_HZ == 2048000


def test_program_fits_and_matches_its_source():
    assert len(cap_pio.PROGRAM) <= 32                          # one PIO block's memory
    import adafruit_pioasm as pioasm   # tools/install_deps.sh installs it
    assert tuple(pioasm.assemble(cap_pio.PROGRAM_SOURCE)) == cap_pio.PROGRAM


class FakeStateMachine:
    def __init__(self, program, **kw):
        self.program = program
        self.kw = kw

    def background_read(self, loop=None, loop2=None):
        pass


class FakeRp2pio:
    StateMachine = FakeStateMachine


def test_state_machine_arguments():
    sm = cap_pio.state_machine(FakeRp2pio, "GP16", "GP18")
    assert sm.program.typecode == "H" and tuple(sm.program) == cap_pio.PROGRAM
    assert sm.kw == dict(frequency=2048000, first_sideset_pin="GP16", sideset_pin_count=2,
                         first_in_pin="GP18", in_pin_count=1, auto_push=True,
                         push_threshold=16, in_shift_right=False)


def test_code_py_opens_the_pio_receiver_from_the_board_definition(monkeypatch, capsys):
    import importlib.util
    import json
    import os
    import types

    class Pins:
        def __getattr__(self, name):
            return "pin:" + name

    made = {}

    class SM(FakeStateMachine):
        def __init__(self, program, **kw):
            super().__init__(program, **kw)
            made["sm"] = self

    monkeypatch.setitem(sys.modules, "microcontroller", types.SimpleNamespace(pin=Pins()))
    monkeypatch.setitem(sys.modules, "rp2pio", types.SimpleNamespace(StateMachine=SM))
    monkeypatch.setitem(sys.modules, "board", types.SimpleNamespace())
    spec = importlib.util.spec_from_file_location("cp_code", os.path.join(h.FIRMWARE, "code.py"))
    code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(code)          # its main() finds no key here and says so
    assert "error" in capsys.readouterr().out
    bdef = json.load(open(os.path.join(h.BOARDS, "pico-inmp441-circuitpython.json")))
    cap = code.open_pio_i2s(bdef, types.SimpleNamespace(hop_samples=256), None)
    assert made["sm"].kw["first_sideset_pin"] == "pin:GPIO16"
    assert made["sm"].kw["first_in_pin"] == "pin:GPIO18"
    assert cap.hop_samples == 256 and cap.hpb == 4 and cap.n_slots == 3
    with pytest.raises(ValueError, match="multiple of the detector hop"):
        code.open_pio_i2s(bdef, types.SimpleNamespace(hop_samples=384), None)
    monkeypatch.setitem(sys.modules, "rp2pio", types.SimpleNamespace(StateMachine=object))
    with pytest.raises(OSError, match="9.2.1 or later"):    # CircuitPython before 9.2.1
        code.open_pio_i2s(bdef, types.SimpleNamespace(hop_samples=256), None)
