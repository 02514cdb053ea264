"""Sample conversion of the capture paths under CPython with numpy (and the strict ulab shim)."""

import array
import struct

import numpy as np
import pytest

import fw_helpers as h  # noqa: F401  (puts firmware/ on sys.path)
import airmark_capture
import airmark_capture_cp


def _i2s_words(samples24):
    """machine.I2S bits=32 MONO layout: one little-endian int32 per sample, data in bits 31..8."""
    return b"".join(struct.pack("<i", (int(s) << 8)) for s in samples24)


def test_top16_view_is_zero_copy_and_exact():
    rng = np.random.default_rng(0)
    s24 = rng.integers(-(1 << 23), 1 << 23, 512)
    buf = bytearray(_i2s_words(s24))
    views = airmark_capture.int16_views(buf, 32, 512, 256)
    got = np.concatenate([np.asarray(v) for v in views])
    assert np.array_equal(got, (s24 >> 8).astype(np.int16))      # int32 slot >> 16
    struct.pack_into("<i", buf, 0, 0x7FFF0000)                   # writes show through: a view
    assert views[0][0] == 0x7FFF


def test_shift_17_path_with_i2s_shift_semantics():
    s24 = np.array([-(1 << 22), -5, 0, 7, (1 << 22) - 1] * 52, dtype=np.int64)[:256]

    def shift(buf=None, bits=32, shift=0):      # machine.I2S.shift: in place, negative = right
        a = np.frombuffer(buf, dtype="<i4")
        a[:] = a >> -shift if shift < 0 else a << shift

    class I2S:
        def irq(self, h):
            self.h = h

        def readinto(self, b):
            self.b = b

    i2s = I2S()
    cap = airmark_capture.I2SCapture(i2s, 256, bits=32, shift=17, n_bufs=2, shift_fn=shift)
    cap.start()
    i2s.b[:] = _i2s_words(s24)
    i2s.h(i2s)
    x = cap.next_hop()
    assert np.array_equal(np.asarray(x), (s24 >> 9).astype(np.int16))


def test_bits16_view_dense():
    buf = bytearray(struct.pack("<4h", 1, -2, 3, -4))
    (v,) = airmark_capture.int16_views(buf, 16, 4, 4)
    assert list(np.asarray(v)) == [1, -2, 3, -4]


class FakePDM:
    def __init__(self, values):
        self.values = values

    def record(self, buf, n):
        for i in range(n):
            buf[i] = self.values[i]
        return n


def test_pdm_unsigned_to_signed():
    vals = [0, 1, 32767, 32768, 32769, 65535] * 43
    cap = airmark_capture_cp.PDMCapture(FakePDM(vals), 256)
    x = cap.next_hop()
    assert list(np.asarray(x)) == [v - 32768 for v in vals[:256]]


def test_pdm_gap_filling_keeps_time():
    """Hops handed to the detector (mic + silence) track the wall clock within one hop."""
    hop_ns = 256 * 1000000000 // 16000
    t = [0]

    class TimedPDM(FakePDM):
        def record(self, buf, n):
            t[0] += hop_ns            # recording takes one hop of real time
            return FakePDM.record(self, buf, n)

    cap = airmark_capture_cp.PDMCapture(TimedPDM([32768] * 256), 256, now_ns=lambda: t[0])
    out = []
    for _ in range(60):
        x = cap.next_hop()
        out.append("zero" if x is cap.zeros else "mic")
        t[0] += hop_ns // 2           # the loop spends half a hop processing: that audio is lost
    assert abs(len(out) * hop_ns - t[0]) <= hop_ns
    assert cap.dropped_samples == 256 * out.count("zero") and cap.overruns == out.count("zero") > 0
