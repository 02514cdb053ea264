"""Microphone capture on CircuitPython with ``audiobusio.PDMIn`` (PDM microphone).

``PDMIn.record(buf, n)`` is blocking and one-shot (it clears the FIFO at each
call), so audio between two calls -- while the detector runs -- is lost. To keep
the detector's time axis true to the clock, this source measures the wall time
between recordings and, each time the lost audio adds up to a whole hop, hands
the detector one hop of silence (counted in ``overruns``/``dropped_samples``).
What remains is a timing jitter below one hop; detection is less sensitive
than on MicroPython's IRQ-driven I2S. CircuitPython has no viper and no
``ticks_us``, and ``time.monotonic_ns()`` returns long ints, so this path
allocates a little per hop (unlike the MicroPython one).

Sample format: with ``bit_depth=16`` PDMIn writes *unsigned* samples (a
sinc-filter sum centred near 32768) into an ``array('H')``. The same bytes read
as int16 are ``u - 65536`` for u >= 32768, and adding -32768 with int16 wrap-around
gives ``u - 32768`` for every u: one in-place add of a constant array, no
allocation.
"""

import array

try:
    from ulab import numpy as np
except ImportError:
    try:
        import numpy as np
    except ImportError:
        np = None

SAMPLE_RATE_HZ = 16000


class PDMCapture:
    """Blocking PDMIn source of int16 hops (same interface as I2SCapture).

    mic: an ``audiobusio.PDMIn`` (or a fake with ``record(buf, n)``).
    now_ns: wall clock in ns (``time.monotonic_ns``) or None to skip gap filling.
    """

    def __init__(self, mic, hop_samples, now_ns=None, rate_hz=SAMPLE_RATE_HZ):
        self.mic = mic
        self.hop_samples = hop_samples
        self.rate_hz = rate_hz
        self.raw = array.array("H", [0] * hop_samples)
        self.x = np.frombuffer(self.raw, dtype=np.int16)
        self.bias = np.zeros(hop_samples, dtype=np.int16)
        self.bias[:] = -32768
        self.zeros = np.zeros(hop_samples, dtype=np.int16)
        self.buf_bytes = 2 * hop_samples
        self.now_ns = now_ns
        self.overruns = 0
        self.dropped_samples = 0
        self.at_end = False
        self.gap_samples = 0
        self.t_end_ns = None

    def start(self):
        pass

    def stop(self):
        if hasattr(self.mic, "deinit"):
            self.mic.deinit()

    def next_hop(self):
        if self.now_ns is not None and self.t_end_ns is not None:
            now = self.now_ns()
            self.gap_samples += (now - self.t_end_ns) * self.rate_hz // 1000000000
            self.t_end_ns = now
            if self.gap_samples >= self.hop_samples:
                self.gap_samples -= self.hop_samples
                self.overruns += 1
                self.dropped_samples += self.hop_samples
                return self.zeros
        n = self.mic.record(self.raw, self.hop_samples)
        if self.now_ns is not None:
            self.t_end_ns = self.now_ns()
        if n != self.hop_samples:
            raise OSError("PDMIn recorded %d of %d samples" % (n, self.hop_samples))
        self.x += self.bias
        return self.x

    def done(self):
        pass
