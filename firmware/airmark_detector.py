"""airmark detector core: self-correlation at the pattern period, re-inverted by the key.

One file for every port: MicroPython+ulab (RP2040, ESP32), CircuitPython+ulab and
CPython+numpy (the host imports this very file). See docs/ALGORITHM.md for the maths.

Data flow per hop of H = block_samples/2 int16 samples (16 kHz):

  x (int16) -> feature f[n] = +1 if x[n] >= x[n-2] else -1       (int8, band 0..8 kHz
               (sign of a 2-sample difference: kills DC, peaks at 4 kHz, ignores volume)
  -> c = sum over the hop of f[n] * f[n - lag]                   (int, |c| <= H)
     for every lag = j*P*N + o, j = 1..J periods, o = drift offsets in samples
  -> C = c(this hop) + c(previous hop)     block-long correlation  (|C| <= 2H)
  -> D = C - C(one block earlier)          removes the host's slow self-similarity
  -> num = sum_i m_i * D_i over the key,   m_i = s_i * s_(i - jP) (key re-inversion)
     den = sum_i D_i^2                     over the same window    (exact ints)
  -> score = max over drift hypotheses of sum_j num / sqrt(sum_j den)

Under no mark, the signs m_i are independent of the audio, so the score is a
self-normalised sum of symmetric terms: P(score > t) <= exp(-t^2 / 2) whatever the
music is (Hoeffding). A mark makes D_i lean towards m_i and the score grows.
"""

try:
    from ulab import numpy as np

    ULAB = True
except ImportError:
    import numpy as np

    ULAB = False

import array

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


try:
    import airmark_viper as _kernels  # MicroPython only: viper integer kernels
except (ImportError, SyntaxError):
    _kernels = None

SUBBLOCKS = const(2)  # hops per block: a mark found within a quarter block of any offset
DRIFT_PPM = (-300, -200, -100, 0, 100, 200, 300)  # clock drift hypotheses
VERSION = const(1)
FLOAT = getattr(np, "float", None) or np.float64  # ulab: np.float; numpy: float64


def _round_div(a, b):
    """a / b rounded half away from zero, in integers (b > 0)."""
    if a >= 0:
        return (2 * a + b) // (2 * b)
    return -((-2 * a + b) // (2 * b))


def pair_lags(block_samples, pattern_blocks, lag_periods):
    """Lags (samples) of every (period j, drift offset o) pair and, per drift
    hypothesis, the index of the pair it uses for each period j.

    Returns (lags, periods, hyp_pairs): lags[p] = j*L + o, periods[p] = j,
    hyp_pairs[d] = tuple of pair indices (one per j) for DRIFT_PPM[d].
    """
    period = block_samples * pattern_blocks
    lags = []
    periods = []
    hyp_pairs = []
    for ppm in DRIFT_PPM:
        row = []
        for j in range(1, lag_periods + 1):
            lag = j * period + _round_div(ppm * j * period, 1000000)
            if lag in lags:
                idx = lags.index(lag)
            else:
                idx = len(lags)
                lags.append(lag)
                periods.append(j)
            row.append(idx)
        hyp_pairs.append(tuple(row))
    return lags, periods, hyp_pairs


def _int16_array(n):
    return array.array("h", (0 for _ in range(n)))


def key_signs(key_bits):
    """Key bits ('0'/'1' string or 0/1 bytes) as a list of +1/-1 (bit 1 = inverted)."""
    out = []
    for b in key_bits:
        out.append(-1 if b in ("1", 1) else 1)
    return out


class Detector:
    """Streaming detector. `feed(x)` takes exactly `hop_samples` int16 samples.

    All arrays are allocated here; `feed` keeps integer state whose bounds are
    stated next to each variable (see docs/ALGORITHM.md, "Integer bounds").
    """

    def __init__(self, record, *, use_kernels=True):
        n = int(record["block_samples"])
        pb = int(record["pattern_blocks"])
        nj = int(record.get("lag_periods", 3))
        signs = key_signs(record["key_bits"])
        k = len(signs)
        self.key_id = record.get("key_id", "")
        self.threshold = float(record["threshold"])
        self.block_samples = n
        self.hop_samples = h = n // SUBBLOCKS
        self.key_blocks = k
        self.kernels = _kernels if (use_kernels and _kernels is not None) else None

        lags, periods, hyps = pair_lags(n, pb, nj)
        self.lags = lags
        self.hyp_pairs = hyps
        npairs = len(lags)
        self.npairs = npairs

        # Feature ring: int8 +/-1, mirrored (two copies) so every hop window is contiguous.
        ring = ((max(lags) + 2 * h) // h + 1) * h
        self._ring = ring
        # Storage is array.array/bytearray (element access allocates nothing on MicroPython);
        # ndarray views over the same memory serve the vector operations.
        self._feat_buf = bytearray(2 * ring)
        self._feat = np.frombuffer(self._feat_buf, dtype=np.int8)
        self._feat[:] = 1  # +1 everywhere: no zero feature ever, so viper == numpy
        self._xa = _int16_array(h + 2)  # two samples of history + this hop
        self._x = np.frombuffer(self._xa, dtype=np.int16)
        self._plus = np.ones(h, dtype=np.int8)
        self._minus = np.zeros(h, dtype=np.int8) - self._plus

        # Per pair: window length (block pairs), modulation m_i, D ring (mirrored int16).
        self._wlen = []
        self._mods = []
        self._msum = []
        dlen = (k + 1) * SUBBLOCKS  # >= wlen*SUBBLOCKS + 1: the leaving value is still held
        self._dlen = dlen
        self._da = _int16_array(npairs * 2 * dlen)
        self._d = np.frombuffer(self._da, dtype=np.int16)
        for p in range(npairs):
            shift = periods[p] * pb
            wl = k - shift
            mods = [signs[i] * signs[i - shift] for i in range(shift, k)]
            self._wlen.append(wl)
            self._mods.append(np.array(mods, dtype=FLOAT))
            self._msum.append(sum(mods))
        self._mods8 = None
        if self.kernels is not None:
            self._mods8 = []
            for p in range(npairs):
                b = bytearray(self._wlen[p])
                for i in range(self._wlen[p]):
                    b[i] = 1 if self._mods[p][i] > 0 else 0
                self._mods8.append(b)

        # Small integer state, Python lists of ints (bounds in docs/ALGORITHM.md).
        self.c = [0] * npairs  # this hop's correlation, |c| <= H
        self._c_prev = [0] * npairs  # previous hop's c
        self._c_blk = [0] * (npairs * SUBBLOCKS)  # C one block ago, per hop phase
        self._q = [0] * (npairs * SUBBLOCKS)  # sum of D^2 over the window, per phase
        self.num = [0] * npairs  # sum m_i D_i, |num| <= wlen * 4H
        self.hops = 0
        self.samples = 0
        self.score = 0.0
        self.best_hyp = 0
        self._hold = 0
        self.holdoff_hops = k * SUBBLOCKS

    def state_bytes(self):
        """Bytes held in arrays (the detector's RAM apart from small Python objects)."""
        total = len(self._feat_buf) + 2 * len(self._xa) + 2 * len(self._plus) + 2 * len(self._da)
        for m in self._mods:
            total += len(m) * (4 if ULAB else 8)
        if self._mods8 is not None:
            for b in self._mods8:
                total += len(b)
        return total

    def reset(self):
        self._feat[:] = 1
        self._x[:] = 0
        self._d[:] = 0
        self._xa[0] = 0
        self._xa[1] = 0
        for i in range(self.npairs):
            self.c[i] = 0
            self._c_prev[i] = 0
            self.num[i] = 0
        for i in range(len(self._q)):
            self._q[i] = 0
            self._c_blk[i] = 0
        self.hops = 0
        self.samples = 0
        self.score = 0.0
        self._hold = 0

    def _features(self, x):
        """Write this hop's sign features into the mirrored ring at the write position."""
        h = self.hop_samples
        xa = self._xa
        w = (self.hops % (self._ring // h)) * h
        if self.kernels is not None:
            self.kernels.features(x, xa, self._feat_buf, w, self._ring, h)
            return w
        xa[0] = xa[h]
        xa[1] = xa[h + 1]
        xb = self._x
        xb[2:] = x
        f = np.where(xb[2:] < xb[:h], self._minus, self._plus)
        self._feat[w:w + h] = f
        self._feat[w + self._ring:w + self._ring + h] = f
        return w

    def _corr(self, w, lag):
        h = self.hop_samples
        a = (w - lag) % self._ring
        if self.kernels is not None:
            return self.kernels.corr8(self._feat_buf, w, a, h)
        cur = self._feat[w:w + h]
        past = self._feat[a:a + h]
        if ULAB:
            return int(np.dot(cur, past))  # ulab: float result, exact (|c| <= H < 2**24)
        return int(np.dot(cur.astype(np.int16), past.astype(np.int16)))

    def _mf(self, p, start, wl):
        """sum_i m_i D_i over the window of pair p starting at ring index `start`."""
        base = p * 2 * self._dlen + start
        if self.kernels is not None:
            return self.kernels.mf16(self._mods8[p], self._da, base, SUBBLOCKS, wl)
        view = self._d[base:base + (wl - 1) * SUBBLOCKS + 1:SUBBLOCKS]
        return int(np.dot(self._mods[p], view))  # float, exact: |num| < 2**24

    def feed(self, x):
        """Process one hop of int16 samples; return (t_samples, score) on a detection."""
        w = self._features(x)
        hop = self.hops
        phase = hop % SUBBLOCKS
        dlen = self._dlen
        e = hop % dlen
        for p in range(self.npairs):
            c = self._corr(w, self.lags[p])
            self.c[p] = c
            blk = c + self._c_prev[p]  # |C| <= 2H
            self._c_prev[p] = c
            ip = p * SUBBLOCKS + phase
            d = blk - self._c_blk[ip]  # |D| <= 4H
            self._c_blk[ip] = blk
            wl = self._wlen[p]
            base = p * 2 * dlen
            da = self._da
            old = da[base + (hop - wl * SUBBLOCKS) % dlen]
            da[base + e] = d
            da[base + e + dlen] = d
            self._q[ip] += d * d - old * old  # <= wl * (4H)^2
            start = (hop - (wl - 1) * SUBBLOCKS) % dlen
            self.num[p] = self._mf(p, start, wl)
        best = 0.0
        besth = 0
        for hi in range(len(self.hyp_pairs)):
            num = 0
            den = 0
            for p in self.hyp_pairs[hi]:
                num += self.num[p]
                den += self._q[p * SUBBLOCKS + phase]
            if den > 0 and num > 0:
                s = num / (den ** 0.5)
                if s > best:
                    best = s
                    besth = hi
        self.score = best
        self.best_hyp = besth
        self.hops = hop + 1
        self.samples += self.hop_samples
        if self._hold > 0:
            self._hold -= 1
            return None
        if best >= self.threshold:
            self._hold = self.holdoff_hops
            return (self.samples, best)
        return None
