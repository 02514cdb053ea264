"""Microphone capture with MicroPython's machine.I2S: non-blocking, a ring of buffers.

The I2S driver fills one raw buffer at a time in the background; when a buffer
is full the driver schedules ``_irq``, which only re-arms ``readinto`` into the
next free buffer and advances a counter -- no DSP, no allocation. The main loop
asks ``next_hop()`` for the oldest full buffer, runs the detector on it and
calls ``done()`` to hand it back. With ``n_bufs`` buffers the loop may fall up
to ``n_bufs - 1`` buffers behind (plus whatever the driver's own ``ibuf``
holds) before audio is lost. When every other buffer is still waiting, the IRQ
drops the buffer that just completed (re-arms it in place): that is an
*overrun*; ``overruns`` counts them and ``dropped_samples`` the audio lost, so
detection times stay true to the clock. (On rp2 the driver also silently drops
DMA blocks when its ``ibuf`` ring is full; that cannot happen while a buffer is
always armed, which this class guarantees.)

Sample format. ``machine.I2S(bits=32, format=MONO)`` stores the left 32-bit
slot of each frame as one little-endian int32 (read ports/*/machine_i2s.c).
Microphones put their data MSB-first at the top of the slot:

- INMP441, ICS-43434: 24-bit two's complement in bits 31..8 (low byte zero or
  tristate) -> ``shift = 16`` keeps the top 16 bits;
- SPH0645: 18-bit two's complement in bits 31..14 (datasheet: "24-bit I2S,
  18-bit precision, unused bits are zeros") -> also ``shift = 16``. It is
  known to need one extra bit-clock of data delay on some receivers (ESP32
  register fix ``I2S_RX_MSB_SHIFT`` / timing BIT(9) in Arduino code); when a
  port samples it one BCLK late the word arrives doubled with the MSB lost, so
  use ``shift = 17`` there (exact while the signal stays below half scale).
  It also has a DC offset, which the detector removes. Check on hardware.

``shift = 16`` costs nothing: ``np.frombuffer(buf, dtype=np.int16)[1::2]`` is
a zero-copy view of the top 16 bits of each int32 (little endian). Any other
shift first rescales the raw buffer in place with ``I2S.shift(buf=, bits=32,
shift=16 - shift)`` (C loop, no allocation), then uses the same view.
With ``bits = 16`` the port itself keeps the top 16 bits; the view is dense.

For bits = 32 the view is *strided* (4-byte steps). Where the detector needs
a dense array (its viper kernels read ``ptr16``), pass ``dense_fn`` =
``airmark_capture_viper.top16``: each hop is then copied into one preallocated
dense int16 array by a viper loop (~0.8 % of real time on an RP2040) instead.
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

try:
    from ulab import numpy as np
except ImportError:
    try:
        import numpy as np
    except ImportError:
        np = None

SAMPLE_RATE_HZ = const(16000)
_WRAP_HOPS = const(65536)


def int16_views(buf, bits, hop_samples, sub_samples):
    """Zero-copy int16 views of `buf` (raw I2S samples), `hop_samples // sub_samples` of them."""
    flat = np.frombuffer(buf, dtype=np.int16)
    if bits == 32:
        flat = flat[1::2]
    out = []
    for j in range(hop_samples // sub_samples):
        out.append(flat[j * sub_samples:(j + 1) * sub_samples])
    return out


def open_i2s(board, i2s_class, pin_class, rate_hz=SAMPLE_RATE_HZ):
    """A machine.I2S receiver configured from the board definition (pins only from `board`)."""
    c = board["i2s"]
    return i2s_class(c["id"], sck=pin_class(c["sck"]), ws=pin_class(c["ws"]),
                     sd=pin_class(c["sd"]), mode=i2s_class.RX, bits=board["mic"]["bits"],
                     format=i2s_class.MONO, rate=rate_hz, ibuf=c["ibuf_bytes"])


class I2SCapture:
    """Ring of `n_bufs` raw buffers of `hop_samples` samples, filled by IRQ-driven readinto.

    i2s: a configured machine.I2S (or a fake with ``readinto(buf)`` and ``irq(handler)``).
    det_hop: samples per ``next_hop()`` (the detector's hop; divides `hop_samples`).
    shift_fn: ``machine.I2S.shift``; needed only when ``shift != 16``.
    views_fn: builds the per-buffer views (default `int16_views`; tests swap it).
    dense_fn: ``top16(src, dst, start, n)`` (viper) to hand out dense hops for bits=32;
    dense_out: the dense int16 array it writes (default: allocated here with np.zeros).
    """

    def __init__(self, i2s, hop_samples, det_hop=None, bits=32, shift=16, n_bufs=3,
                 shift_fn=None, views_fn=None, dense_fn=None, dense_out=None):
        if det_hop is None:
            det_hop = hop_samples
        if bits not in (16, 32):
            raise ValueError("bits must be 16 or 32, got %r" % (bits,))
        if hop_samples % det_hop:
            raise ValueError("capture hop %d is not a multiple of the detector hop %d"
                             % (hop_samples, det_hop))
        if n_bufs < 2:
            raise ValueError("n_bufs must be >= 2, got %r" % (n_bufs,))
        if shift != 16 and (bits != 32 or shift_fn is None):
            raise ValueError("shift %d needs bits=32 and I2S.shift" % shift)
        self.i2s = i2s
        self.hop_samples = det_hop
        self.capture_samples = hop_samples
        self.bits = bits
        self.shift_arg = 16 - shift
        self.shift_fn = shift_fn
        self.n_bufs = n_bufs
        self.subs = hop_samples // det_hop
        self.wrap = n_bufs * _WRAP_HOPS
        if views_fn is None:
            views_fn = int16_views
        self.bufs = []
        self.views = []
        for _ in range(n_bufs):
            b = bytearray(hop_samples * (bits // 8))
            self.bufs.append(b)
            self.views.append(views_fn(b, bits, hop_samples, det_hop))
        self.buf_bytes = n_bufs * hop_samples * (bits // 8)
        self.dense_fn = dense_fn if bits == 32 else None
        self.dense = None
        if self.dense_fn is not None:
            self.dense = dense_out if dense_out is not None else np.zeros(det_hop, dtype=np.int16)
            self.buf_bytes += 2 * det_hop
        self.produced = 0      # written only by _irq: buffers completed (mod wrap)
        self.consumed = 0      # written only by the main loop: buffers handed back (mod wrap)
        self.sub = 0
        self.cur = None
        self.overruns = 0
        self.dropped_samples = 0
        self.at_end = False
        self.running = False
        self._irq_cb = self._irq   # bound once: no allocation when the driver calls it

    def start(self):
        self.i2s.irq(self._irq_cb)
        self.running = True
        self.i2s.readinto(self.bufs[self.produced % self.n_bufs])

    def stop(self):
        self.running = False
        if hasattr(self.i2s, "deinit"):
            self.i2s.deinit()

    def pending(self):
        """Buffers completed and not yet handed back (including the one being processed)."""
        return (self.produced - self.consumed) % self.wrap

    def _irq(self, arg):
        # Runs as a scheduled callback between bytecodes: re-arm, count, nothing else.
        if not self.running:
            return
        if (self.produced - self.consumed) % self.wrap >= self.n_bufs - 1:
            self.overruns += 1
            self.dropped_samples += self.capture_samples
        else:
            self.produced = (self.produced + 1) % self.wrap
        self.i2s.readinto(self.bufs[self.produced % self.n_bufs])

    def next_hop(self):
        if self.sub == 0:
            if self.produced == self.consumed:
                return None
            i = self.consumed % self.n_bufs
            if self.shift_arg:
                self.shift_fn(buf=self.bufs[i], bits=32, shift=self.shift_arg)
            self.cur = self.views[i]
        if self.dense is not None:
            self.dense_fn(self.bufs[self.consumed % self.n_bufs], self.dense,
                          self.sub * self.hop_samples, self.hop_samples)
            return self.dense
        return self.cur[self.sub]

    def done(self):
        self.sub += 1
        if self.sub == self.subs:
            self.sub = 0
            self.consumed = (self.consumed + 1) % self.wrap
