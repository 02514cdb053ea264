"""airmark detector core: self-correlation at the pattern period, re-inverted by the key.

One file for every port: MicroPython+ulab (RP2040, ESP32), CircuitPython+ulab and
CPython+numpy (the host imports this very file). See docs/ALGORITHM.md for the maths.

Data flow per hop of H = block_samples/2 int16 samples (16 kHz):

  x (int16) -> feature f[n] = +1 if x[n] + x[n-1] >= x[n-8] + x[n-9] else -1      (bit; byte)
               (sign of a comb-filtered signal: kills DC, weighs 0.3-6 kHz about evenly
               where x[n] - x[n-2] favoured 4 kHz, the mark's weakest band in a room)
  -> c = sum over the hop of f[n] * f[n - lag]                   (int, |c| <= H)
     for every lag = j*P*N + o, j = 1..J periods, o = drift offsets in samples
  -> C = c(this hop) + c(previous hop)     block-long correlation  (|C| <= 2H)
  -> D = w*C - C(one block earlier)        w = the key's diff_weight (2; 1 in older keys):
                                          takes out half of the host's slow self-similarity
                                          (|D| <= (w + 1) * 2H)
  -> num = sum_i m_i * D_i over the key,   m_i = s_i * s_(i - jP) (key re-inversion)
     den = sum_i D_i^2                     over the same window    (exact ints)
  -> score = max over drift hypotheses of sum_j num / sqrt(sum_j den)
     in fixed point: score_q8 = (256 * num) // isqrt(den), exact on every port

Under no mark, the signs m_i are independent of the audio, so the score is a
self-normalised sum of symmetric terms: P(score > t) <= exp(-t^2 / 2) whatever the
music is (Hoeffding; exact for one lag period, a heuristic summed over J, so the
threshold comes from data). A mark makes D_i lean towards m_i and the score grows.
"""

try:
    from ulab import numpy as np
    from ulab import utils as _utils

    ULAB = True
except ImportError:
    ULAB = False
    try:
        import numpy as np
    except ImportError:
        np = None  # MicroPython without ulab: only the viper kernels can run

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

# Features: the sign of y[n] = (x[n] + x[n-1]) - (x[n-8] + x[n-9]), i.e. x filtered by
# (1 + z^-1)(1 - z^-8): zeros at 0, 2, 4, 6 and 8 kHz, lobes at 1, 3 and 5 kHz
# (0, -1.4, -4.9 dB), -12.5 dB at 150 Hz.
FEATURE_LAG = const(8)
FEATURE_HIST = const(9)  # samples of history a hop's features need (FEATURE_LAG + 1)
SUBBLOCKS = const(2)  # hops per block: a mark found within a quarter block of any offset
DRIFT_PPM = (-300, -200, -100, 0, 100, 200, 300)  # clock drift hypotheses
# Lag offsets are clamped to +-1 sample: exact up to +-1.5 samples of drift over the lag
# (+-240 ppm at 3 periods), half a sample off at +-300 ppm, 9 lag pairs instead of 11.
MAX_OFFSET = const(1)
VERSION = const(1)
FLOAT = (getattr(np, "float", None) or np.float64) if np is not None else None


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
            off = _round_div(ppm * j * period, 1000000)
            if off > MAX_OFFSET:
                off = MAX_OFFSET
            elif off < -MAX_OFFSET:
                off = -MAX_OFFSET
            lag = j * period + off
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


def _int32_array(n):
    return array.array("i", (0 for _ in range(n)))


from math import sqrt as _sqrt


def isqrt(n):
    """floor(sqrt(n)) for 0 <= n < 2**31: a float guess, then exact integer corrections
    (float32's guess is within a unit or two; a Newton loop costs ten times more)."""
    r = int(_sqrt(n))
    while r * r > n:
        r -= 1
    while (r + 1) * (r + 1) <= n:
        r += 1
    return r


try:
    from math import isqrt as _isqrt  # CPython >= 3.8: the same floor(sqrt(n)), in C
except ImportError:
    _isqrt = isqrt


# Layout of the int32 state array: a header, then one record per lag pair.
ST_HEADER = const(5)  # npairs, ring, hop_samples, dlen, diff_weight
ST_PAIR = const(14)  # lag, wlen, pos offset, c, c_prev, num, C_blk[2], q[2], T[2], npos, sigma


def key_signs(key_bits):
    """Key bits ('0'/'1' string or 0/1 bytes) as a list of +1/-1 (bit 1 = inverted)."""
    out = []
    for b in key_bits:
        out.append(-1 if b in ("1", 1) else 1)
    return out


class Detector:
    """Streaming detector. `feed(x)` takes exactly `hop_samples` int16 samples.

    All storage is allocated here: the integer state lives in one int32 array
    (bounds in docs/ALGORITHM.md, "Integer bounds"), the feature and D rings in
    bytearray / int16 arrays; ndarray views over them serve the array-ops path.
    On MicroPython the whole hop runs in three viper calls (on ARM boards four calls of
    Thumb assembly and one of viper: the features, hop_pairs' work in two, best_score in
    viper) and allocates nothing.
    """

    def __init__(self, record, *, use_kernels=True, use_thumb=True):
        n = int(record["block_samples"])
        pb = int(record["pattern_blocks"])
        nj = int(record.get("lag_periods", 3))
        signs = key_signs(record["key_bits"])
        k = len(signs)
        self.key_id = record.get("key_id", "")
        # D = w*C - C(one block earlier): w = 1 for keys made before the field existed
        self.diff_weight = int(record.get("diff_weight", 1))
        if self.diff_weight not in (1, 2):
            raise ValueError("diff_weight must be 1 or 2")
        # The key's front end: its line enhancer (airmark_enhancer) or none. The enhancer's
        # output lags its input by one hop, so event times are taken back by that much.
        self.enhancer = None
        self.latency_samples = 0
        if int(record.get("line_enhancer", 0)):
            if ULAB and not (use_kernels and _kernels is not None):
                # its integers exceed float32's exact range: ulab alone cannot hold them
                raise ValueError("this key's line enhancer needs viper (MicroPython) or numpy")
            import airmark_enhancer

            self.enhancer = airmark_enhancer.LineEnhancer(use_kernels=use_kernels,
                                                          band_hz=record["band_hz"])
            self.latency_samples = airmark_enhancer.HOP
        self.threshold = float(record["threshold"])
        self.threshold_q8 = int(self.threshold * 256 + 0.5)
        self.block_samples = n
        self.hop_samples = h = n // SUBBLOCKS
        self.key_blocks = k
        self.lag_periods = nj
        self.kernels = _kernels if (use_kernels and _kernels is not None) else None
        if self.kernels is None and np is None:
            raise ImportError("airmark_detector needs ulab/numpy or the viper kernels")

        lags, periods, hyps = pair_lags(n, pb, nj)
        self.lags = lags
        self.hyp_pairs = hyps
        npairs = len(lags)
        self.npairs = npairs
        self._hyps8 = bytearray(len(hyps) * nj)
        for i in range(len(hyps)):
            for j in range(nj):
                self._hyps8[i * nj + j] = hyps[i][j]

        # Feature ring, mirrored (two copies) so every hop window is contiguous; a feature
        # is held as 1 where it is -1 and 0 where it is +1.
        ring = ((max(lags) + 2 * h) // h + 1) * h
        self._ring = ring
        self._period = n * pb
        self._da = None
        if self.kernels is not None:
            self._xa = _int16_array(FEATURE_HIST + h)  # history + this hop
            # viper: bits, 32 per word (+1 word so a window at a bit offset can read past)
            self._feat_buf = array.array("I", (0 for _ in range(2 * ring // 32 + 1)))
        else:
            # array ops: history + this hop in float (exact for int16), and a byte per
            # feature, so c = H - 2 * sum(this hop ^ the lagged hop)
            xf = np.zeros(FEATURE_HIST + h, dtype=FLOAT)
            self._xf = xf
            self._xf_hop = xf[FEATURE_HIST:]  # a view made once: a view costs a call a hop
            # Copies go through memoryviews of exactly the slice written: a ulab slice
            # assignment copies its source, then moves one element at a time (1 us each on
            # an RP2040), and MicroPython's slice assignment into a longer buffer moves the
            # whole rest of it onto itself (O(ring)).
            self._xf_mv = memoryview(xf)
            self._feat_buf = bytearray(2 * ring)
            self._feat_mv = memoryview(self._feat_buf)
            self._feat = np.frombuffer(self._feat_buf, dtype=np.uint8)
            # numpy's comparisons give bools ('?'), which CPython assigns into bytes only
            # once cast; ulab's are uint8 and MicroPython's memoryview has no cast
            self._cast_bytes = hasattr(self._feat_mv, "cast")

        # D rings (mirrored int16); the modulations m_i = s_i s_(i-jP) as one int8 matrix
        # on the array-ops path, or as the rarer sign's positions for the viper kernel.
        dlen = (k + 1) * SUBBLOCKS  # even, and > wlen*SUBBLOCKS: the leaving value is held
        self._dlen = dlen
        self._da = _int16_array(npairs * 2 * dlen)
        if self.kernels is None:
            self._d = np.frombuffer(self._da, dtype=np.int16)
        # The matched filter sums D over the positions of the rarer sign only:
        # sum_i m_i D_i = sigma * (2 * sum_{m_i = sigma} D_i - T), T = sum_i D_i (running).
        # The pairs of one period share the modulation, so their positions (the rarer
        # sign's, at most wlen/2 each) are stored once per period, back to back in _pos,
        # and the viper kernel gets the pairs grouped by period in _grp:
        # [groups, (count, p0, p1, p2)...]. The drift hypotheses are symmetric and offsets
        # are clamped to +-1, so a period has 1 pair (offset 0) or 3 (-1, 0, +1).
        mod_lists = {}  # period -> its modulations (array-ops path), shared by its pairs
        pos_at = {}  # period -> (offset in _pos, npos, sigma)
        plists = []
        total = 0
        self._grp = bytearray(1 + 4 * nj)
        self._grp[0] = nj
        for j in range(1, nj + 1):
            shift = j * pb
            mods = [signs[i] * signs[i - shift] for i in range(shift, k)]
            sigma = 1 if 2 * mods.count(1) <= k - shift else -1
            plist = [i for i in range(k - shift) if mods[i] == sigma]
            if self.kernels is None:
                mod_lists[j] = mods
            pos_at[j] = (total, len(plist), sigma)
            plists.append(plist)
            total += len(plist)
            g = [p for p in range(npairs) if periods[p] == j]
            if len(g) not in (1, 3):
                raise ValueError("a period must have 1 or 3 lag pairs, not %d" % len(g))
            self._grp[4 * j - 3] = len(g)
            for m in range(len(g)):
                self._grp[4 * j - 2 + m] = g[m]
        self._pos = array.array("H", (i for plist in plists for i in plist))
        # On ARM boards hop_pairs' work runs in Thumb assembly (airmark_viper_thumb): the
        # correlations and D (_ps), then the matched filters (_mf); _ctl is their control
        # words: hm, hm & 1, w, then _grp. use_thumb=False keeps viper there, to compare.
        self._ps = None
        self._mf = None
        self._ctl = None
        self._ft = None  # features in Thumb (airmark_viper_thumb.hop_features)
        self._fctl = None  # its control words: w, ring, h
        self.thumb_error = None  # why the Thumb module did not load, where present
        if self.kernels is not None and use_thumb:
            get = getattr(self.kernels, "thumb_pairs", None)
            fns = get() if get is not None else None
            self.thumb_error = getattr(self.kernels, "thumb_error", None)
            if fns is not None and n >= 64 and n % 64 == 0:  # pair_stats: whole hop words
                self._ps, self._mf = fns
                self._ctl = array.array("i", [0, 0, 0] + [int(v) for v in self._grp])
                getf = getattr(self.kernels, "thumb_features", None)
                self._ft = getf() if getf is not None else None
                if self._ft is not None:
                    self._fctl = array.array("i", [0, ring, h])
        st = _int32_array(ST_HEADER + ST_PAIR * npairs)
        st[0] = npairs
        st[1] = ring
        st[2] = h
        st[3] = dlen
        st[4] = self.diff_weight
        for p in range(npairs):
            b = ST_HEADER + ST_PAIR * p
            st[b] = lags[p]
            st[b + 1] = k - periods[p] * pb
            st[b + 2], st[b + 12], sigma = pos_at[periods[p]]
            st[b + 13] = 1 if sigma > 0 else 0
        self._st = st
        if self.kernels is None:
            self._array_ops_tables(lags, periods, hyps, mod_lists, k, pb)
        self._enh_out = None
        if self.enhancer is not None:
            if self.enhancer.kernels is not None:
                self._enh_out = _int16_array(h)
            else:
                self._enh_out = np.zeros(h, dtype=np.int16)
        self.hops = 0
        self.samples = 0
        self.score_q8 = 0
        self.best_hyp = 0
        self._hold = 0
        self.holdoff_hops = k * SUBBLOCKS
        self.reset()

    def _array_ops_tables(self, lags, periods, hyps, mod_lists, k, pb):
        """What the array-ops path looks up each hop, and its moving state: for each pair,
        the column (0, 1, 2 for offsets +1, 0, -1) and row (period J first) of its
        correlation among the windows taken at once; the modulations as one int8 matrix,
        a row per pair, oldest first, zero-padded in front to the longest window so every
        row ends at the newest D; the pairs' c, C and sum D^2 in lists."""
        npairs = self.npairs
        period = self._period
        cr = bytearray(2 * npairs)
        cols = []
        for p in range(npairs):
            col = periods[p] * period + 1 - lags[p]
            cr[2 * p] = col
            cr[2 * p + 1] = self.lag_periods - periods[p]
            if col not in cols:
                cols.append(col)
        self._cols = sorted(cols)
        nj = self.lag_periods
        wmax = k - pb  # period 1's window, the longest
        self._wmax = wmax
        self._span = (wmax - 1) * SUBBLOCKS
        m2 = np.zeros((npairs, wmax), dtype=np.int8)
        for p in range(npairs):
            row = mod_lists[periods[p]]
            m2[p, wmax - len(row):] = np.array(row, dtype=np.int8)
        self._m2 = m2
        self._d2 = self._d.reshape((npairs, 2 * self._dlen))  # a view: a row per pair
        # Per pair: its index; its index among one hop's correlations (the columns' sums
        # back to back, J each); where in the mirrored D ring (whose copies make every
        # index below valid without a wrap) it reads the value leaving its window and
        # writes the new one (twice); and the least sum D^2 with wlen * sum D^2 >= 2**30
        # (a product would be a long int on the boards). Small ints in lists: bytecode
        # indexes them several times faster than an int32 array.
        dlen = self._dlen
        plist = []
        for p in range(npairs):
            wl2 = (k - periods[p] * pb) * SUBBLOCKS
            base = p * 2 * dlen
            plist.append((p, self._cols.index(cr[2 * p]) * nj + cr[2 * p + 1],
                          base + dlen - wl2, base, base + dlen, (2147483648 + wl2 - 1) // wl2))
        self._plist = tuple(plist)
        # The moving state of the array-ops path (viper's lives in the int32 array):
        # this hop's c, C per hop phase, sum D^2 per hop phase (bounds as there)
        self._cprev = [0] * npairs
        self._cblk = ([0] * npairs, [0] * npairs)
        # sum D^2 and this hop's matched-filter sums, each with a zero entry past the last
        # pair (see _hyp_swaps)
        self._qs = ([0] * (npairs + 1), [0] * (npairs + 1))
        self._nums = [0] * (npairs + 1)
        # Each drift hypothesis as (pair out, pair in) swaps from the one before it; the
        # first one's from nothing, for which the out pair is a zero entry past the last.
        swaps = []
        prev = (npairs,) * nj
        for hp in hyps:
            swaps.append(tuple((prev[j], hp[j]) for j in range(nj) if hp[j] != prev[j]))
            prev = hp
        self._hyp_swaps = tuple(swaps)

    # Read-only views of the integer state, for tests and golden vectors.
    def _field(self, i):
        st = self._st
        return [st[ST_HEADER + ST_PAIR * p + i] for p in range(self.npairs)]

    @property
    def c(self):
        """This hop's correlation per lag pair, |c| <= H."""
        return self._field(3) if self.kernels is not None else list(self._cprev)

    @property
    def num(self):
        """Matched-filter sum per lag pair, |num| <= wlen * 4H."""
        return self._field(5) if self.kernels is not None else self._nums[:self.npairs]

    @property
    def q(self):
        """Window energy sum(D^2) per lag pair for this hop's phase, <= wlen * (4H)^2."""
        phase = (self.hops - 1) % SUBBLOCKS
        if self.kernels is None:
            return self._qs[phase][:self.npairs]
        return self._field(8 + phase)

    @property
    def score(self):
        return self.score_q8 / 256.0

    def kernel_path(self):
        """Which code runs the hop: "viper", "viper+thumb" (the features and hop_pairs'
        correlations, D and matched filters in Thumb assembly) or "array-ops" (ulab or
        numpy); with a line enhancer, its own after a comma ("enhancer:thumb",
        "enhancer:viper" or "enhancer:array-ops")."""
        if self.kernels is None:
            path = "array-ops"
        else:
            path = "viper+thumb" if self._mf is not None else "viper"
        e = self.enhancer
        if e is not None:
            path += ",enhancer:" + ("thumb" if e.thumb_tables is not None else
                                    "viper" if e.kernels is not None else "array-ops")
        return path

    def state_bytes(self):
        """Bytes held in arrays, and in the array-ops path's per-pair lists (the detector's
        RAM apart from object headers and small Python objects)."""
        fb = self._feat_buf
        if self.kernels is not None:
            total = len(fb) * 4 + 2 * len(self._xa)
        else:
            total = len(fb) + len(self._xf) * (4 if ULAB else 8)  # float32 on the boards
        total += 2 * len(self._da)
        total += 4 * len(self._st) + 2 * len(self._pos) + len(self._hyps8) + len(self._grp)
        if self._ctl is not None:
            total += 4 * len(self._ctl)
        if self._fctl is not None:
            total += 4 * len(self._fctl)
        if self.kernels is None:
            total += self.npairs * self._wmax  # int8 modulations
            # lists and tuples of small ints, 4 B an item on the boards (headers left out)
            items = len(self._cprev) + len(self._nums)
            items += 2 * len(self._cblk[0]) + 2 * len(self._qs[0]) + 6 * len(self._plist)
            for swaps in self._hyp_swaps:
                items += 2 * len(swaps)
            total += 4 * items
        if self.enhancer is not None:
            total += self.enhancer.state_bytes() + 2 * len(self._enh_out)
        return total

    def reset(self):
        fb = self._feat_buf
        for i in range(len(fb)):
            fb[i] = 0  # +1 everywhere (bit or byte 0): no zero feature, so viper == array ops
        if self.kernels is not None:
            xa = self._xa
            for i in range(len(xa)):
                xa[i] = 0
        else:
            for i in range(len(self._xf)):
                self._xf[i] = 0
        da = self._da
        for i in range(len(da)):
            da[i] = 0
        st = self._st
        for p in range(self.npairs):
            b = ST_HEADER + ST_PAIR * p
            for i in range(3, 12):
                st[b + i] = 0
        if self.kernels is None:
            for v in (self._cprev, self._nums) + self._cblk + self._qs:
                for p in range(self.npairs):
                    v[p] = 0
        if self.enhancer is not None:
            self.enhancer.reset()
        self.hops = 0
        self.samples = 0
        self.score_q8 = 0
        self.best_hyp = 0
        self._hold = 0

    def _features(self, x, w):
        """Write this hop's features into the mirrored ring at `w` (1 where the feature
        is -1); returns the ring's view of them."""
        h = self.hop_samples
        mv = self._xf_mv
        mv[:FEATURE_HIST][:] = mv[h:]  # the last hop's tail becomes the history
        if ULAB:
            _utils.from_int16_buffer(x, out=self._xf_hop)  # exact, and allocates nothing
        else:
            self._xf_hop[:] = x
        xf = self._xf
        pair = xf[1:] + xf[:-1]  # pair[k] = x[k+1] + x[k], k indexing xf: |.| < 2**16, exact
        # a dense array of 0/1 bytes, written to both mirrored copies of the ring
        neg = memoryview(pair[FEATURE_LAG:] < pair[:h])
        if self._cast_bytes:
            neg = neg.cast("B")
        fb = self._feat_mv
        fb[w:w + h][:] = neg
        w2 = w + self._ring
        fb[w2:w2 + h][:] = neg
        return self._feat[w:w + h]

    def _pairs(self, w, hm, phase, cur):
        """Array-ops twin of airmark_viper.hop_pairs: same c, D, num and sum D^2."""
        h = self.hop_samples
        period = self._period
        nj = self.lag_periods
        # Every lag's window at once: the J periods back as rows of one view, the drift
        # offsets +1, 0, -1 as its columns 0, 1, 2 on.
        a = w - nj * period - 1
        if a < 0:
            a += self._ring
        past = self._feat[a:a + nj * period].reshape((nj, period))
        dis = []  # disagreements (<= H) per column and period, as a list: cheap to index
        for col in self._cols:
            dis += np.sum(past[:, col:col + h] ^ cur, axis=1).tolist()
        da = self._da
        dw = self.diff_weight
        cp = self._cprev
        cb = self._cblk[phase]
        qs = self._qs[phase]
        big = 0
        for p, i, old_at, new_at, new_at2, qbig in self._plist:
            c = h - 2 * dis[i]  # |c| <= H
            blk = c + cp[p]  # |C| <= 2H
            cp[p] = c
            d = dw * blk - cb[p]  # |D| <= (dw + 1) * 2H
            cb[p] = blk
            old = da[old_at + hm]
            da[new_at + hm] = d
            da[new_at2 + hm] = d
            q = qs[p] + d * d - old * old
            qs[p] = q
            if q >= qbig:  # wlen * sum D^2 >= 2**30
                big = 1
        # Matched filters, every pair at once: each row of the padded modulations against
        # the D ring's row, over the window that ends at this hop's D. Where
        # (sum |D|)^2 <= wlen * sum D^2 < 2**30 for every pair, |num| < 2**15 and ulab's
        # int16 row sums are exact.
        dlen = self._dlen
        start = hm - self._span
        if start < 0:
            start += dlen
        win = self._d2[:, start:start + self._span + 1:SUBBLOCKS]
        nums = np.sum(win * self._m2, axis=1).tolist()
        if big:  # rare (loud tones): pairs past that bound again in float, exact < 2**24
            wmax = self._wmax
            for p, i, old_at, new_at, new_at2, qbig in self._plist:
                if qs[p] >= qbig:
                    wl = (new_at2 - old_at) // SUBBLOCKS
                    nums[p] = int(np.dot(np.array(self._m2[p, wmax - wl:], dtype=FLOAT),
                                         np.array(win[p, wmax - wl:], dtype=FLOAT)))
        nums.append(0)
        self._nums = nums  # the state's num fields are viper's; here the list holds them

    def _best(self, phase):
        """Best drift hypothesis: returns score_q8 * 8 + hypothesis (viper: best_score)."""
        nums = self._nums
        qv = self._qs[phase]
        # the hypotheses in turn, each one's sums from the last one's: neighbours differ
        # in a few periods' pairs (12 swaps instead of 42 terms for the default key)
        num = 0
        den = 0
        best = 0
        besth = 0
        i = 0
        for swaps in self._hyp_swaps:
            for out, into in swaps:
                num += nums[into] - nums[out]
                den += qv[into] - qv[out]
            if num > 0 and den > 0:
                s = (num << 8) // _isqrt(den)
                if s > best:
                    best = s
                    besth = i
            i += 1
        return best * 8 + besth

    def feed(self, x):
        """Process one hop of int16 samples; return (t_samples, score) on a detection."""
        h = self.hop_samples
        hop = self.hops
        w = (hop % (self._ring // h)) * h
        hm = hop % self._dlen
        phase = hop % SUBBLOCKS
        kern = self.kernels
        if self.enhancer is not None:
            self.enhancer.process(x, self._enh_out)
            x = self._enh_out
        if kern is not None:
            if self._ft is not None:
                fctl = self._fctl
                fctl[0] = w
                self._ft(x, self._xa, self._feat_buf, fctl)
            else:
                kern.features(x, self._xa, self._feat_buf, w, self._ring, h)
            if self._ps is not None:
                ctl = self._ctl
                ctl[0] = hm
                ctl[1] = hm & 1
                ctl[2] = w
                self._ps(self._st, self._feat_buf, self._da, ctl)
                self._mf(self._st, self._da, self._pos, ctl)
            else:
                kern.hop_pairs(self._feat_buf, self._st, self._da, self._pos, w, hm, self._grp)
            packed = kern.best_score(self._st, self._hyps8, len(self._hyps8), self.lag_periods, phase)
        else:
            cur = self._features(x, w)
            self._pairs(w, hm, phase, cur)
            packed = self._best(phase)
        self.score_q8 = packed >> 3
        self.best_hyp = packed & 7
        self.hops = hop + 1
        self.samples += h
        if self._hold > 0:
            self._hold -= 1
            return None
        if self.score_q8 >= self.threshold_q8:
            self._hold = self.holdoff_hops
            return (self.samples - self.latency_samples, self.score_q8 / 256.0)
        return None
