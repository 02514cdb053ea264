"""Viper integer kernels for the detector core (MicroPython only; no allocation).

Each kernel computes exactly what the numpy/ulab path of airmark_detector computes;
tests/test_viper_kernels.py runs them under real MicroPython against numpy.
Buffers: int16 arrays are read through ptr16 (unsigned loads, sign fixed here),
features are int8 +1/-1 stored as bytes 0x01/0xFF.
"""

import micropython


@micropython.viper
def features(x: ptr16, hist: ptr16, feat: ptr8, w: int, ring: int, h: int):
    """feat[w+n] = feat[w+ring+n] = -1 if x[n] < x[n-2] else +1, for n in 0..h-1.

    hist[0], hist[1] hold the previous hop's last two samples and are updated here.
    Offset binary (^0x8000) makes the unsigned int16 loads compare like signed values.
    """
    p2 = hist[0] ^ 0x8000
    p1 = hist[1] ^ 0x8000
    n = 0
    while n < h:
        cur = x[n] ^ 0x8000
        v = 0xFF if cur < p2 else 0x01
        feat[w + n] = v
        feat[w + ring + n] = v
        p2 = p1
        p1 = cur
        n += 1
    hist[0] = x[h - 2]
    hist[1] = x[h - 1]


@micropython.viper
def corr8(feat: ptr8, a: int, b: int, h: int) -> int:
    """sum_n f[a+n] * f[b+n] for +/-1 features: h - 2 * (number of sign mismatches)."""
    mism = 0
    n = 0
    while n < h:
        mism += ((feat[a + n] ^ feat[b + n]) >> 7) & 1
        n += 1
    return h - 2 * mism


@micropython.viper
def mf16(mods: ptr8, d: ptr16, base: int, stride: int, wl: int) -> int:
    """sum_q m_q * D[base + q*stride]; m_q = +1 where mods[q] is 1, else -1; D int16."""
    acc = 0
    q = 0
    i = base
    while q < wl:
        v = int(d[i])
        if v >= 32768:
            v -= 65536
        if mods[q]:
            acc += v
        else:
            acc -= v
        q += 1
        i += stride
    return acc
