"""Line enhancer: takes the host's ringing partials out before the detector (integers).

A room makes the host's partials ring, and a sinusoid resembles itself at any lag, so it
leaks into the self-correlation. The mark cannot ring that way: its pattern block and key
sign change every block. Per bin of a 256-point STFT (hop 128, the detector's hop), the
enhancer subtracts the part of the bin predictable from the same bin one block (two hops)
earlier, then resynthesises the signal by overlap-add. docs/ALGORITHM.md §8 has the maths
and the integer bounds; every value below stays under 2**31 (viper's machine ints).

Per hop of 128 int16 samples x (all integers, floor shifts):
  AGC       g in -1..G_MAX: the frame peak * 2**g stays below 2**14 (attack at once,
            release one step after RELEASE_HOPS quiet hops; the state is rescaled)
  frame     v[n] = x[n] * W[n] * 2**g / 256 over the last 256 samples, W = sqrt-Hann Q8
  forward   the real frame packed as 128 complex points c[m] = v[2m] + i v[2m+1];
            C = FFT128(c) / 128: radix-2, twiddles round(127 e^(-i.)), each butterfly
            rounds the product by 7 bits and halves with rounding; then the split, per
            bin k <= 128: s = C[k] + conj(C[128-k]), d = C[k] - conj(C[128-k]),
            t = round(W^k (-i d) / 128) with W^k = round(127 e^(-2 pi i k / 256)),
            X[k] = (s + t + 2) >> 2  (X = DFT256(v) / 256, |X| < 2**14 + 1300)
  predictor per bin k of the key's band (lo..hi; E = 0 outside: the detector looks
            only there), with X2 the bin two hops back, p = X >> PSHIFT and
            q = X2 >> PSHIFT: a = R_xy * 128 // (R_xx + 1), clamped to +-A_MAX;
            E = X - round(a * X2 / 128); then R_xy += p conj(q) - floor(3 R_xy / 32)
            and R_xx += |q|^2 - floor(3 R_xx / 32) (forgetting factor 29/32)
  inverse   Z = 16 E; the merge, per k < 128: s = Z[k] + conj(Z[128-k]),
            d = Z[k] - conj(Z[128-k]), t = round(conj(W^k) (i d) / 128),
            Y[k] = (s + t + 1) >> 1; then the inverse FFT128 (halving) gives the
            enhanced frame / 16 packed as f[2m] + i f[2m+1]
  output    y = (f_b[n] W[n] + f_(b-1)[n + 128] W[n + 128] + 128) >> 8  (sqrt-Hann OLA)

The output hop lags the input by one hop (128 samples). Paths: the viper kernels
(airmark_enhancer_viper, MicroPython; on ARM boards the whole hop in one call of Thumb
assembly, airmark_enhancer_thumb) and numpy (CPython) compute the same integers; ulab
without viper (CircuitPython) cannot hold them exactly and is refused.
"""

try:
    from ulab import numpy as np

    ULAB = True
except ImportError:
    ULAB = False
    try:
        import numpy as np
    except ImportError:
        np = None

import array
import math

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


try:
    import airmark_enhancer_viper as _kernels
except (ImportError, SyntaxError):
    _kernels = None

FS = const(16000)  # the detector's sample rate
N = const(256)  # frame (samples)
HOP = const(128)  # hop (samples), the detector's
BINS = const(129)  # bins 0..N/2 of a real frame
M = const(128)  # complex points of the packed transform (N / 2)
LOG2M = const(7)
WQ = const(8)  # window: Q8 sqrt-Hann
TQ = const(7)  # twiddles: round(127 cos), round(127 sin)
DELAY_HOPS = const(2)  # predict from one block (two hops) back
PSHIFT = const(5)  # predictor statistics use p = X >> 5 (|p| <= 512)
FORGET_NUM = const(3)  # R -= floor(3 R / 32): forgetting factor 29/32 = 0.906
FORGET_SHIFT = const(5)
A_MAX = const(256)  # |a| components <= 2 (Q7)
INV_GAIN_SHIFT = const(4)  # E * 16 before the inverse: its output is frame / 16
PEAK_BITS = const(14)  # AGC: frame peak * 2**g < 2**14
G_MIN = const(-1)  # a full-scale frame is halved: |v| <= 2**14 always
G_MAX = const(10)
R_BOUND = const(1 << 23)  # |R_xy|, R_xx stay below (docs/ALGORITHM.md §8): 128 R < 2**30
RELEASE_HOPS = const(64)  # 0.5 s of headroom before the gain steps up


def _bitrev_table():
    """7-bit reversal of 0..127: the packed transform's input order."""
    out = bytearray(M)
    for i in range(M):
        r = 0
        v = i
        for _ in range(LOG2M):
            r = (r << 1) | (v & 1)
            v >>= 1
        out[i] = r
    return out


def _window_q8():
    """round(256 * sqrt(periodic Hann)): analysis times synthesis sums to 2**16 at hop N/2
    (to within rounding)."""
    w = array.array("h", (0 for _ in range(N)))
    for n in range(N):
        w[n] = int(math.floor(256.0 * math.sqrt(0.5 - 0.5 * math.cos(2.0 * math.pi * n / N)) + 0.5))
    return w


def _twiddles():
    """(cos, sin) pairs for e^(-2 pi i k / N), k <= N/2, scaled by 127 and rounded: the
    split and merge use all 129, the 128-point transform the even ones (its stages read
    index k * N / (2 half)); the inverse uses their conjugates."""
    t = array.array("h", (0 for _ in range(2 * BINS)))
    for k in range(BINS):
        a = -2.0 * math.pi * k / N
        t[2 * k] = int(math.floor(127.0 * math.cos(a) + 0.5))
        t[2 * k + 1] = int(math.floor(127.0 * math.sin(a) + 0.5))
    return t


def band_bins(band_hz):
    """(lo, hi): the bins whose centres lie within the band, widened to whole bins
    (150-6000 Hz: bins 2..96 of 62.5 Hz)."""
    lo = int(band_hz[0]) * N // FS
    hi = -(-int(band_hz[1]) * N // FS)
    return max(0, min(lo, BINS - 1)), max(0, min(hi, BINS - 1))


def fit_gain(peak):
    """Largest g <= G_MAX with peak * 2**g < 2**PEAK_BITS, or G_MIN (peak >= 0)."""
    g = G_MIN
    while g < G_MAX and (peak << (g + 1)) < (1 << PEAK_BITS):
        g += 1
    return g


# The AGC's state (int32 array `head`):
EH_G = const(0)  # current gain exponent
EH_QUIET = const(1)  # hops in a row with headroom for g + 1
EH_PEAK_PREV = const(2)  # previous hop's peak |x|
EH_HOPS = const(3)  # 0 before the first hop, then 1
EH_SIZE = const(4)


class LineEnhancer:
    """Streaming line enhancer: `process(x, out)` takes a hop of 128 int16 samples and
    writes the enhanced hop (one hop late) into `out` (int16 array of 128). `band_hz`
    (the key's band) limits it to the bins there (band_bins); None keeps every bin.
    use_thumb=False keeps the viper kernels where the Thumb hop would run (to compare
    them)."""

    def __init__(self, *, use_kernels=True, band_hz=None, use_thumb=True):
        self.kernels = _kernels if (use_kernels and _kernels is not None) else None
        if self.kernels is None and (np is None or ULAB):
            raise ValueError("the line enhancer needs the viper kernels or CPython numpy")
        self.lo, self.hi = band_bins(band_hz) if band_hz is not None else (0, BINS - 1)
        self.band = self.lo | (self.hi << 8)
        self.window = _window_q8()
        self.twiddles = _twiddles()
        self.bitrev = _bitrev_table()
        self.head = array.array("i", (0 for _ in range(EH_SIZE)))
        self.xin = array.array("h", (0 for _ in range(N)))  # last N input samples
        self.z = array.array("i", (0 for _ in range(N)))  # packed transform (re, im) x 128
        self.spec = array.array("i", (0 for _ in range(2 * BINS)))  # X, then 16 E: (re, im)
        # spectra of the last DELAY_HOPS frames, bins 0..128, (re, im): a ring of 2
        self.past = array.array("i", (0 for _ in range(2 * BINS * DELAY_HOPS)))
        self.rxy = array.array("i", (0 for _ in range(2 * BINS)))
        self.rxx = array.array("i", (0 for _ in range(BINS)))
        self.tail = array.array("i", (0 for _ in range(HOP)))  # f_(b-1)[128:] * W, unshifted
        self.hops = 0
        self.thumb_tables = None  # the Thumb hop's tables and block, where it runs
        if self.kernels is None:
            self._np_setup()
        elif use_thumb:
            self.thumb_tables = self.kernels.thumb_tables(self.twiddles, self.window, self.bitrev,
                                                          self.xin, self.head, self.z, self.spec,
                                                          self.past, self.rxy, self.rxx,
                                                          self.tail, self.lo, self.hi)
            if self.thumb_tables is not None:
                # one call per hop: the Thumb hop and its block, bound once
                self._th = self.kernels.thumb_hop()
                self._tb = self.thumb_tables[-1]
                self.process = self._process_thumb

    def state_bytes(self):
        extra = 0
        if self.thumb_tables is not None:
            extra = 4 * sum(len(t) for t in self.thumb_tables)
        words = (len(self.head) + len(self.z) + len(self.spec) + len(self.past) + len(self.rxy)
                 + len(self.rxx) + len(self.tail))
        halves = len(self.xin) + len(self.window) + len(self.twiddles)
        return extra + 4 * words + 2 * halves + len(self.bitrev)

    def reset(self):
        for a in (self.head, self.xin, self.z, self.spec, self.past, self.rxy, self.rxx, self.tail):
            for i in range(len(a)):
                a[i] = 0
        self.hops = 0

    # ---- numpy (CPython) twin --------------------------------------------------------
    def _np_setup(self):
        i32 = np.int32
        self._w = np.array(self.window, dtype=i32)
        tw = np.array(self.twiddles, dtype=i32)
        self._twr = tw[0::2]  # W^k, k = 0..128
        self._twi = tw[1::2]
        self._rev = np.array(self.bitrev, dtype=np.intp)
        # per stage of the 128-point transform: the twiddles of its butterflies
        # k = 0..half-1 (W^(k N / (2 half))), forward and inverse
        self._stage_tw = []
        self._stage_tw_inv = []
        for st in range(LOG2M):
            half = 1 << st
            step = N // (2 * half)
            wr = self._twr[:N // 2:step][:half]
            wi = self._twi[:N // 2:step][:half]
            self._stage_tw.append((wr, wi))
            self._stage_tw_inv.append((wr, -wi))

    def _process_thumb(self, x, out):
        """process() where the Thumb module runs: airmark_enhancer_viper.hop's steps in one
        call of airmark_enhancer_thumb.hop, whose block holds the state's addresses."""
        h = self.hops
        self._th(self._tb, x, out, h & 1)
        self.hops = h + 1

    def process(self, x, out):
        if self.kernels is not None:
            k = self.kernels
            k.hop(x, out, self.xin, self.z, self.spec, self.past, self.rxy, self.rxx,
                  self.tail, self.head, self.window, self.twiddles, self.bitrev,
                  self.hops & 1, self.band)
        else:
            out[:] = process_block(self, np.asarray(x, dtype=np.int64).reshape(1, HOP))[0]
        self.hops += 1


def _fit_gains(peaks):
    """fit_gain over a numpy array of peaks, as a list: peak * 2**g < 2**PEAK_BITS holds
    while bit_length(peak) <= PEAK_BITS - g, clipped to G_MIN..G_MAX."""
    bits = np.frexp(np.asarray(peaks, dtype=np.float64))[1]  # bit length (0 for 0)
    return np.clip(PEAK_BITS - bits, G_MIN, G_MAX).tolist()


def gains_for(head, peaks):
    """AGC over a run of hops (numpy array of peaks): the gain exponent before each hop's
    frame and the rescale shift applied to the state at that hop (0, +1 or negative).
    Updates `head`."""
    g = head[EH_G]
    quiet = head[EH_QUIET]
    prev = head[EH_PEAK_PREV]
    if head[EH_HOPS] == 0:
        g = G_MAX
    peaks = np.asarray(peaks, dtype=np.int64)
    fit_p = _fit_gains(peaks)
    fit_both = _fit_gains(np.maximum(peaks, np.concatenate([[prev], peaks[:-1]])))
    gs = []
    shifts = []
    for i in range(len(fit_p)):
        old = g
        if fit_both[i] < g:
            g = fit_both[i]
            quiet = 0
        elif fit_p[i] > g:
            quiet += 1
            if quiet >= RELEASE_HOPS:
                g += 1
                quiet = 0
        else:
            quiet = 0
        gs.append(g)
        shifts.append(g - old)
    head[EH_HOPS] = 1
    head[EH_G] = g
    head[EH_QUIET] = quiet
    if len(peaks):
        head[EH_PEAK_PREV] = int(peaks[-1])
    return gs, shifts


def _rescale(a, s):
    """a * 2**s for numpy int arrays, rounding half up when s < 0."""
    if s >= 0:
        return a << s
    return (a + (1 << (-s - 1))) >> (-s)


def fft_rows(st, re, im, inverse, chunk=256):
    """The packed transform's fixed-point radix-2 FFT of rows (int32 arrays of shape
    (m, 128)), natural order in and out, every stage halving: returns DFT / 128 (forward,
    twiddles W^k) or the inverse's sum / 128 (conjugate twiddles), as int32.

    Stage by stage, the butterflies of a row are views of it reshaped into groups
    (u = first half of each group, v = second half); int32 holds every value (§8 bounds:
    products and sums stay under 2**29), and rows go in chunks that stay in cache."""
    m = re.shape[0]
    i32 = np.int32
    outr = np.empty((m, M), dtype=i32)
    outi = np.empty((m, M), dtype=i32)
    for c0 in range(0, m, chunk):
        r = re[c0:c0 + chunk][:, st._rev].astype(i32)
        i = im[c0:c0 + chunk][:, st._rev].astype(i32)
        rows = r.shape[0]
        for wr, wi in (st._stage_tw_inv if inverse else st._stage_tw):
            half = len(wr)
            r = r.reshape(rows, -1, 2 * half)
            i = i.reshape(rows, -1, 2 * half)
            ur = r[..., :half]
            ui = i[..., :half]
            vr = r[..., half:]
            vi = i[..., half:]
            tr = (vr * wr - vi * wi + 64) >> TQ
            ti = (vr * wi + vi * wr + 64) >> TQ
            nr = np.empty_like(r)
            ni = np.empty_like(i)
            np.add(ur, tr, out=nr[..., :half])
            np.subtract(ur, tr, out=nr[..., half:])
            np.add(ui, ti, out=ni[..., :half])
            np.subtract(ui, ti, out=ni[..., half:])
            nr += 1
            nr >>= 1
            ni += 1
            ni >>= 1
            r = nr.reshape(rows, M)
            i = ni.reshape(rows, M)
        outr[c0:c0 + chunk] = r
        outi[c0:c0 + chunk] = i
    return outr, outi


def _rotate_add(sr, si, er, ei, wr, wi, shift):
    """(s + round(w e / 128) + 2**(shift - 1)) >> shift per component, w = wr + i wi (Q7):
    the split's and the merge's last step, in place on s."""
    tr = er * wr
    tr -= ei * wi
    tr += 64
    tr >>= TQ
    ti = er * wi
    ti += ei * wr
    ti += 64
    ti >>= TQ
    half = 1 << (shift - 1)
    sr += tr
    sr += half
    sr >>= shift
    si += ti
    si += half
    si >>= shift
    return sr, si


def split_rows(st, cr, ci):
    """Bins 0..128 of the real frame from its packed transform C (m, 128):
    X[k] = (s + round(W^k (-i d) / 128) + 2) >> 2 with s, d = C[k] +- conj(C[128 - k])."""
    m = cr.shape[0]
    ar = np.empty((m, BINS), dtype=np.int32)  # C[k mod 128], k = 0..128
    ai = np.empty((m, BINS), dtype=np.int32)
    ar[:, :M] = cr
    ar[:, M] = cr[:, 0]
    ai[:, :M] = ci
    ai[:, M] = ci[:, 0]
    br = ar[:, ::-1]  # C[(128 - k) mod 128]; b is its conjugate: imaginary part -bi
    bi = ai[:, ::-1]
    # -i d = (d.im, -d.re) with d = (ar - br, ai + bi)
    return _rotate_add(ar + br, ai - bi, ai + bi, br - ar, st._twr, st._twi, 2)


def merge_rows(st, zr, zi):
    """The packed inverse transform's input from bins 0..128 of a Hermitian spectrum Z
    (m, 129): Y[k] = (s + round(conj(W^k) (i d) / 128) + 1) >> 1, k < 128, with
    s, d = Z[k] +- conj(Z[128 - k])."""
    ar = zr[:, :M]
    ai = zi[:, :M]
    br = zr[:, M:0:-1]  # Z[128 - k]
    bi = zi[:, M:0:-1]
    # i d = (-d.im, d.re) with d = (ar - br, ai + bi)
    return _rotate_add(ar + br, ai - bi, -(ai + bi), ar - br, st._twr[:M], -st._twi[:M], 1)


def _predict_segment(st, xr, xi, h0, s):
    """The predictor over k hops from absolute hop h0, after a gain step of s at h0 (0:
    none) and with no step inside, on the band's bins (xr, xi: (k, hi - lo + 1)); returns
    (E re, E im) of the same shape and updates the past spectra and R there. Only R's
    recursion runs hop by hop (its floors chain)."""
    k = xr.shape[0]
    i32 = np.int32
    lo, hi = st.lo, st.hi + 1
    past_all = np.array(st.past, dtype=i32).reshape(DELAY_HOPS, 2, BINS)
    r_all = np.array(list(st.rxy) + list(st.rxx), dtype=i32).reshape(3, BINS)
    past = past_all[:, :, lo:hi]
    r = np.ascontiguousarray(r_all[:, lo:hi])
    if s:
        past = _rescale(past, s)
        r = _rescale(r, 2 * s)
    prev = past[[(h0 - 2) % 2, (h0 - 1) % 2]]  # hops h0 - 2, h0 - 1
    x2r = np.concatenate([prev[:, 0], xr])[:k]
    x2i = np.concatenate([prev[:, 1], xi])[:k]
    pr = xr >> PSHIFT
    pim = xi >> PSHIFT
    qr = x2r >> PSHIFT
    qi = x2i >> PSHIFT
    terms = np.stack([pr * qr + pim * qi, pim * qr - pr * qi, qr * qr + qi * qi], axis=1)
    hist = np.empty((k + 1, 3, hi - lo), dtype=i32)  # R before each hop, then after the last
    hist[0] = r
    tmp = np.empty_like(r)
    # in place: the per-hop cost is four ufunc calls, with their views and scalars made once
    views = list(hist)
    term_views = list(terms)
    num = i32(FORGET_NUM)
    shift = i32(FORGET_SHIFT)
    mul, rsh, sub, add = np.multiply, np.right_shift, np.subtract, np.add
    for b in range(k):
        h = views[b]
        nxt = views[b + 1]
        mul(h, num, out=tmp)
        rsh(tmp, shift, out=tmp)
        sub(h, tmp, out=nxt)
        add(nxt, term_views[b], out=nxt)
    r = hist[k]
    den = hist[:k, 2] + 1
    ar = np.clip((hist[:k, 0] << TQ) // den, -A_MAX, A_MAX)
    ai = np.clip((hist[:k, 1] << TQ) // den, -A_MAX, A_MAX)
    er = xr - ((ar * x2r - ai * x2i + 64) >> TQ)
    ei = xi - ((ar * x2i + ai * x2r + 64) >> TQ)
    for i in range(max(0, k - DELAY_HOPS), k):
        past[(h0 + i) % 2, 0] = xr[i]
        past[(h0 + i) % 2, 1] = xi[i]
    past_all[:, :, lo:hi] = past
    r_all[:, lo:hi] = r
    st.past[:] = array.array("i", [int(v) for v in past_all.reshape(-1)])
    st.rxy[:] = array.array("i", [int(v) for v in r_all[:2].reshape(-1)])
    st.rxx[:] = array.array("i", [int(v) for v in r_all[2]])
    return er, ei


BLOCK_HOPS = const(512)  # process_block's chunk: its arrays stay in the cache


def process_block(st, x):
    """Enhance m hops at once: x is int64 (m, 128); returns int64 (m, 128), the output
    hops, and leaves `st` (a LineEnhancer on its numpy path) as m calls of process would,
    except `st.hops`, which the caller advances."""
    m = x.shape[0]
    if m <= BLOCK_HOPS:
        return _process_chunk(st, x)
    hops0 = st.hops
    out = np.empty((m, HOP), dtype=np.int64)
    try:
        for b0 in range(0, m, BLOCK_HOPS):
            out[b0:b0 + BLOCK_HOPS] = _process_chunk(st, x[b0:b0 + BLOCK_HOPS])
            st.hops += min(BLOCK_HOPS, m - b0)
    finally:
        st.hops = hops0
    return out


def _process_chunk(st, x):
    m = x.shape[0]
    gs, shifts = gains_for(st.head, np.max(np.abs(x), axis=1))
    gs = np.array(gs, dtype=np.int64)[:, None]
    prev = np.array(st.xin, dtype=np.int64)[HOP:]
    hops = np.concatenate([prev.reshape(1, HOP), x], axis=0)
    frames = np.concatenate([hops[:-1], hops[1:]], axis=1)  # (m, N), raw samples
    st.xin[:] = array.array("h", [int(s) for s in frames[-1]])
    i32 = np.int32  # every value below stays under 2**31 (docs/ALGORITHM.md §8)
    p = frames.astype(i32) * st._w
    sh = np.maximum(WQ - gs, 0).astype(i32)
    v = ((p + ((1 << sh) >> 1)) >> sh) << np.maximum(gs - WQ, 0).astype(i32)
    cr, ci = fft_rows(st, v[:, 0::2], v[:, 1::2], False)
    xr, xi = split_rows(st, cr, ci)
    lo, hi = st.lo, st.hi + 1
    er = np.zeros((m, BINS), dtype=i32)  # 0 outside the band
    ei = np.zeros((m, BINS), dtype=i32)
    starts = [0] + [b for b in range(1, m) if shifts[b]] + [m]
    for b0, b1 in zip(starts[:-1], starts[1:]):
        er[b0:b1, lo:hi], ei[b0:b1, lo:hi] = _predict_segment(
            st, xr[b0:b1, lo:hi], xi[b0:b1, lo:hi], st.hops + b0, shifts[b0])
    er <<= INV_GAIN_SHIFT
    ei <<= INV_GAIN_SHIFT
    yr, yi = merge_rows(st, er, ei)
    fr, fi = fft_rows(st, yr, yi, True)
    f = np.empty((m, N), dtype=i32)
    f[:, 0::2] = fr
    f[:, 1::2] = fi
    fw = f * st._w
    tails = np.concatenate([np.array(st.tail, dtype=i32).reshape(1, HOP),
                            fw[:-1, HOP:]], axis=0)
    for b in range(m):
        if shifts[b]:
            tails[b] = _rescale(tails[b], shifts[b])
    st.tail[:] = array.array("i", [int(a) for a in fw[-1, HOP:]])
    return np.clip((fw[:, :HOP] + tails + (1 << (WQ - 1))) >> WQ, -32768, 32767).astype(np.int64)
