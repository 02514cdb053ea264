"""Viper kernel of the line enhancer (MicroPython only; no allocation).

One call per hop computes exactly the integers of airmark_enhancer.process_block for one
hop (tests/test_enhancer.py runs both under real MicroPython and CPython). int32 arrays
are read through ptr32 with the sign fixed by `(v ^ S) - S` (a no-op on 32-bit MCUs, a
sign extension on 64-bit unix builds); int16 arrays through ptr16 with `(v ^ 0x8000) -
0x8000`. Constants are those of airmark_enhancer (frame 256 packed as 128 complex
points, hop 128, 129 bins).
"""

import micropython

try:
    import airmark_enhancer_thumb as _thumb  # ARM boards: the hop in Thumb assembly
except (ImportError, SyntaxError, ValueError, NotImplementedError):
    _thumb = None


def thumb_tables(tw, win, rev, xin, head, z, spec, past, rxy, rxx, tail, lo, hi):
    """The Thumb hop's tables and block (airmark_enhancer_thumb.tables), or None without
    it."""
    if _thumb is None:
        return None
    return _thumb.tables(tw, win, rev, xin, head, z, spec, past, rxy, rxx, tail, lo, hi)


@micropython.viper
def _fft(z: ptr32, tw: ptr16, inverse: int):
    """In-place radix-2 DIT FFT of 128 bit-reversed (re, im) pairs, halving every stage
    (stage twiddles W^(k 256 / (2 half)) of the 256-point table)."""
    sgn = 1 << 29
    sgn = sgn << 2
    half = 1
    while half < 128:
        step = 256 // half  # twiddle stride in int16 entries: 2 * (256 // (2 * half))
        span = 4 * half  # 2 * (2 * half) int32 entries
        k = 0
        t = 0
        while k < half:
            wr = int((tw[t] ^ 0x8000)) - 0x8000
            wi = int((tw[t + 1] ^ 0x8000)) - 0x8000
            if inverse:
                wi = 0 - wi
            i = 2 * k
            while i < 256:
                j = i + 2 * half
                vr = int((z[j] ^ sgn)) - sgn
                vi = int((z[j + 1] ^ sgn)) - sgn
                tr = (vr * wr - vi * wi + 64) >> 7
                ti = (vr * wi + vi * wr + 64) >> 7
                ur = int((z[i] ^ sgn)) - sgn
                ui = int((z[i + 1] ^ sgn)) - sgn
                z[i] = (ur + tr + 1) >> 1
                z[i + 1] = (ui + ti + 1) >> 1
                z[j] = (ur - tr + 1) >> 1
                z[j + 1] = (ui - ti + 1) >> 1
                i += span
            k += 1
            t += step
        half = half << 1


@micropython.viper
def _rescale(a: ptr32, n: int, s: int):
    """a[i] * 2**s for i < n, rounding half up when s < 0."""
    sgn = 1 << 29
    sgn = sgn << 2
    i = 0
    if s >= 0:
        while i < n:
            a[i] = (int((a[i] ^ sgn)) - sgn) << s
            i += 1
    else:
        r = 1 << (0 - s - 1)
        while i < n:
            a[i] = ((int((a[i] ^ sgn)) - sgn) + r) >> (0 - s)
            i += 1


@micropython.viper
def _peak(x: ptr16) -> int:
    """The hop's peak |x| (the AGC's input)."""
    peak = 0
    i = 0
    while i < 128:
        v = int((x[i] ^ 0x8000)) - 0x8000
        if v < 0:
            v = 0 - v
        if v > peak:
            peak = v
        i += 1
    return peak


@micropython.viper
def _agc(peak: int, head: ptr32) -> int:
    """airmark_enhancer.gains_for for one hop of this peak: updates head, returns the
    rescale shift."""
    sgn = 1 << 29
    sgn = sgn << 2
    g = int((head[0] ^ sgn)) - sgn  # -1 .. 10
    quiet = int(head[1])
    prev = int(head[2])
    if int(head[3]) == 0:
        g = 10  # G_MAX
    old = g
    both = peak
    if prev > both:
        both = prev
    fb = -1  # G_MIN
    while fb < 10 and (both << (fb + 1)) < 16384:
        fb += 1
    fp = -1
    while fp < 10 and (peak << (fp + 1)) < 16384:
        fp += 1
    if fb < g:
        g = fb
        quiet = 0
    elif fp > g:
        quiet += 1
        if quiet >= 64:  # RELEASE_HOPS
            g += 1
            quiet = 0
    else:
        quiet = 0
    head[0] = g
    head[1] = quiet
    head[2] = peak
    head[3] = 1
    return g - old


@micropython.viper
def _frame(x: ptr16, xin: ptr16, z: ptr32, win: ptr16, rev: ptr8, g: int):
    """Shift the input history, append this hop, write the windowed, gain-scaled frame
    into z packed (v[2m] + i v[2m+1] at pair rev[m], the transform's bit-reversed order)."""
    i = 0
    while i < 128:
        xin[i] = xin[i + 128]
        xin[i + 128] = x[i]
        i += 1
    n = 0
    if g <= 8:
        sh = 8 - g
        r = (1 << sh) >> 1
        while n < 256:
            p = (int((xin[n] ^ 0x8000)) - 0x8000) * int(win[n])
            z[2 * int(rev[n >> 1]) + (n & 1)] = (p + r) >> sh
            n += 1
    else:
        sh = g - 8
        while n < 256:
            p = (int((xin[n] ^ 0x8000)) - 0x8000) * int(win[n])
            z[2 * int(rev[n >> 1]) + (n & 1)] = p << sh
            n += 1


@micropython.viper
def _split(z: ptr32, spec: ptr32, tw: ptr16, band: int):
    """Bins lo..hi (band = lo | hi << 8) of the real frame from its packed transform C in
    z (natural order): s, d = C[k] +- conj(C[128 - k]);
    X[k] = (s + round(W^k (-i d) / 128) + 2) >> 2."""
    sgn = 1 << 29
    sgn = sgn << 2
    k = band & 255
    hi = band >> 8
    while k <= hi:
        a = 2 * (k & 127)
        b = 2 * ((128 - k) & 127)
        ar = int((z[a] ^ sgn)) - sgn
        ai = int((z[a + 1] ^ sgn)) - sgn
        br = int((z[b] ^ sgn)) - sgn
        bi = int((z[b + 1] ^ sgn)) - sgn
        er = ai + bi
        ei = br - ar
        wr = int((tw[2 * k] ^ 0x8000)) - 0x8000
        wi = int((tw[2 * k + 1] ^ 0x8000)) - 0x8000
        tr = (er * wr - ei * wi + 64) >> 7
        ti = (er * wi + ei * wr + 64) >> 7
        spec[2 * k] = (ar + br + tr + 2) >> 2
        spec[2 * k + 1] = (ai - bi + ti + 2) >> 2
        k += 1


@micropython.viper
def _merge(spec: ptr32, z: ptr32, tw: ptr16, rev: ptr8):
    """The packed inverse's input from Z = spec (bins 0..128, Hermitian): s, d = Z[k] +-
    conj(Z[128 - k]); Y[k] = (s + round(conj(W^k) (i d) / 128) + 1) >> 1 into z at pair
    rev[k], k < 128 (the inverse transform's bit-reversed order)."""
    sgn = 1 << 29
    sgn = sgn << 2
    k = 0
    while k < 128:
        ar = int((spec[2 * k] ^ sgn)) - sgn
        ai = int((spec[2 * k + 1] ^ sgn)) - sgn
        br = int((spec[256 - 2 * k] ^ sgn)) - sgn
        bi = int((spec[257 - 2 * k] ^ sgn)) - sgn
        fr = 0 - (ai + bi)
        fi = ar - br
        wr = int((tw[2 * k] ^ 0x8000)) - 0x8000
        wi = int((tw[2 * k + 1] ^ 0x8000)) - 0x8000
        tr = (fr * wr + fi * wi + 64) >> 7
        ti = (fi * wr - fr * wi + 64) >> 7
        j = 2 * int(rev[k])
        z[j] = (ar + br + tr + 1) >> 1
        z[j + 1] = (ai - bi + ti + 1) >> 1
        k += 1


@micropython.viper
def _predict(z: ptr32, past: ptr32, rxy: ptr32, rxx: ptr32, slot: int, band: int):
    """Per bin k = lo..hi (band = lo | hi << 8) of z (the spectrum, (re, im) pairs):
    E = X - a * X(two hops back), statistics updated; E * 16 left in z; X saved in
    past[slot]. Bins outside stay 0."""
    sgn = 1 << 29
    sgn = sgn << 2
    pb = slot * 258  # past layout: [slot][re, im][129]
    k = band & 255
    hi = band >> 8
    while k <= hi:
        xr = int((z[2 * k] ^ sgn)) - sgn
        xi = int((z[2 * k + 1] ^ sgn)) - sgn
        yr = int((past[pb + k] ^ sgn)) - sgn
        yi = int((past[pb + 129 + k] ^ sgn)) - sgn
        cr = int((rxy[k] ^ sgn)) - sgn
        ci = int((rxy[129 + k] ^ sgn)) - sgn
        cx = int((rxx[k] ^ sgn)) - sgn
        den = cx + 1
        ar = (cr << 7) // den
        if ar > 256:
            ar = 256
        elif ar < -256:
            ar = -256
        ai = (ci << 7) // den
        if ai > 256:
            ai = 256
        elif ai < -256:
            ai = -256
        er = xr - ((ar * yr - ai * yi + 64) >> 7)
        ei = xi - ((ar * yi + ai * yr + 64) >> 7)
        pr = xr >> 5
        pi = xi >> 5
        qr = yr >> 5
        qi = yi >> 5
        rxy[k] = cr + pr * qr + pi * qi - ((3 * cr) >> 5)
        rxy[129 + k] = ci + pi * qr - pr * qi - ((3 * ci) >> 5)
        rxx[k] = cx + qr * qr + qi * qi - ((3 * cx) >> 5)
        past[pb + k] = xr
        past[pb + 129 + k] = xi
        z[2 * k] = er << 4
        z[2 * k + 1] = ei << 4
        k += 1


@micropython.viper
def _overlap_add(z: ptr32, win: ptr16, tail: ptr32, out: ptr16):
    """out = clip((f[n] W[n] + tail[n] + 128) >> 8); tail = f[n + 128] W[n + 128], with the
    frame f = z (the packed inverse's output: f[2m] + i f[2m+1] at pair m)."""
    sgn = 1 << 29
    sgn = sgn << 2
    n = 0
    while n < 128:
        f = int((z[n] ^ sgn)) - sgn
        t = int((tail[n] ^ sgn)) - sgn
        y = (f * int(win[n]) + t + 128) >> 8
        if y > 32767:
            y = 32767
        elif y < -32768:
            y = -32768
        out[n] = y
        f2 = int((z[n + 128] ^ sgn)) - sgn
        tail[n] = f2 * int(win[n + 128])
        n += 1


def rescale_state(past, rxy, rxx, tail, s):
    """The AGC's gain step of s applied to the stored state (rare)."""
    _rescale(past, len(past), s)
    _rescale(rxy, len(rxy), 2 * s)
    _rescale(rxx, len(rxx), 2 * s)
    _rescale(tail, len(tail), s)


def thumb_hop():
    """The Thumb hop (airmark_enhancer_thumb.hop) LineEnhancer.process calls where it
    runs."""
    return _thumb.hop


def hop(x, out, xin, z, spec, past, rxy, rxx, tail, head, win, tw, rev, slot, band):
    """One hop of airmark_enhancer.LineEnhancer.process on the viper kernels (band =
    lo | hi << 8, the bins the predictor works on). Where the Thumb module runs,
    LineEnhancer._process_thumb calls its hop instead (thumb_hop)."""
    s = _agc(_peak(x), head)
    if s:
        rescale_state(past, rxy, rxx, tail, s)
    _frame(x, xin, z, win, rev, head[0])
    _fft(z, tw, 0)
    _split(z, spec, tw, band)
    _predict(spec, past, rxy, rxx, slot, band)
    _merge(spec, z, tw, rev)
    _fft(z, tw, 1)
    _overlap_add(z, win, tail, out)
