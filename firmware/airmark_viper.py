"""Viper integer kernels for the detector core (MicroPython only; no allocation).

They compute exactly what the array-ops path of airmark_detector computes (same
integers, same order); golden vectors check it on every port, and
tests/test_viper_kernels.py runs the whole detector on them under real MicroPython.
Conventions: int16 arrays are read through ptr16 (unsigned loads, sign fixed here),
int32 state through ptr32 (sign fixed with `(v ^ S) - S`, a no-op on 32-bit MCUs and
a sign extension on 64-bit unix builds); features are bits (1 = feature -1), packed
32 per word, so a hop's correlation is h - 2*popcount(xor) over h/32 words.
State layout: see ST_HEADER / ST_PAIR in airmark_detector.
"""

import micropython

# Why the Thumb module did not load where it is present (a port without the Thumb
# assembler: SyntaxError; an .mpy for another architecture: ValueError), or None. Absent
# (ImportError) is the ESP32's normal case; a board reports the rest (main.py).
thumb_error = None
try:
    import airmark_viper_thumb as _thumb  # ARM boards: hop_pairs' work in Thumb assembly
except ImportError:
    _thumb = None
except (SyntaxError, ValueError, NotImplementedError) as exc:
    _thumb = None
    thumb_error = exc


def thumb_pairs():
    """(airmark_viper_thumb.pair_stats, .matched_filters) where the Thumb module loads,
    else None. The detector then calls them in place of hop_pairs: the same integers."""
    return None if _thumb is None else (_thumb.pair_stats, _thumb.matched_filters)


def thumb_features():
    """airmark_viper_thumb.hop_features where the Thumb module loads and has it, else None.
    The detector then calls it in place of features: the same bits."""
    return None if _thumb is None else getattr(_thumb, "hop_features", None)


@micropython.viper
def features(x: ptr16, hist: ptr16, bits: ptr32, w: int, ring: int, h: int):
    """Sign features as bits: bit n of the hop is 1 where x[n] + x[n-1] < x[n-8] + x[n-9]
    (feature -1).

    hist[0..8] hold the previous hop's last 9 samples and are updated. Bits are packed
    32 per word, least significant first, at word w//32 and at its mirror (w + ring)//32.
    Offset binary (^0x8000) makes the unsigned int16 loads compare as signed; the
    offsets cancel between the two pair sums.
    """
    wi = w >> 5
    mi = (w + ring) >> 5
    a1 = hist[8] ^ 0x8000  # x[n-1], carried from one sample to the next
    b1 = hist[0] ^ 0x8000  # x[n-9]
    j = 0
    while j < h:
        word = 0
        k = 0
        while k < 32:
            a = x[j] ^ 0x8000  # x[n]
            if j < 8:
                b = hist[j + 1] ^ 0x8000  # x[n-8] from the previous hop
            else:
                b = x[j - 8] ^ 0x8000
            if a + a1 < b + b1:
                word |= 1 << k
            a1 = a
            b1 = b
            j += 1
            k += 1
        bits[wi] = word
        bits[mi] = word
        wi += 1
        mi += 1
    k = 0
    while k < 9:
        hist[k] = x[h - 9 + k]
        k += 1


@micropython.viper
def hop_pairs(feat: ptr32, st: ptr32, d: ptr16, pos: ptr16, w: int, hm: int, grp: ptr8):
    """For every lag pair: correlation c, block sum C, difference D = dw*C - C(one block
    earlier) (dw = st[4], the key's diff_weight), D ring and
    window sums (D^2 and D), matched filter num = sigma * (2 * sum over the rarer
    sign's positions - window sum). Detector._pairs computes the same in array ops.

    grp lists the pairs by period: [count, p0, p1, p2] per period j (count 1 or 3), since
    the pairs of one period share the window and the modulation: their matched filters
    run in one loop that reads each position once."""
    sgn = 1 << 29
    sgn = sgn << 2  # 2**31 as a machine int (a literal would be a boxed big int)
    ones = (sgn << 1) - 1  # 0xFFFFFFFF (all ones on a 32-bit MCU)
    m1 = 0x5555  # SWAR popcount masks, built at run time: folded literals would be
    m1 = m1 | (m1 << 16)  # boxed big ints on a 32-bit port
    m2 = 0x3333
    m2 = m2 | (m2 << 16)
    m4 = 0x0F0F
    m4 = m4 | (m4 << 16)
    npairs = int(st[0])
    ring = int(st[1])
    h = int(st[2])
    dlen = int(st[3])
    dw = int(st[4])
    phase = hm & 1
    p = 0
    while p < npairs:
        b = 5 + 14 * p
        lag = int(st[b])
        wl = int(st[b + 1])
        a = w - lag
        if a < 0:
            a += ring
        # popcount of (this hop XOR the hop `lag` earlier), the past window at any bit offset
        mism = 0
        ci = w >> 5
        pi = a >> 5
        r = a & 31
        k = 0
        while k < h:
            pw = int(feat[pi]) & ones
            if r:
                pw = ((pw >> r) & ((1 << (32 - r)) - 1)) | ((int(feat[pi + 1]) << (32 - r)) & ones)
            v = (int(feat[ci]) ^ pw) & ones
            v = v - ((v >> 1) & m1)
            v = (v & m2) + ((v >> 2) & m2)
            v = (v + (v >> 4)) & m4
            mism += ((v * 0x01010101) >> 24) & 0xFF
            ci += 1
            pi += 1
            k += 32
        c = h - 2 * mism
        prev = (int(st[b + 4]) ^ sgn) - sgn
        blk = c + prev
        st[b + 3] = c
        st[b + 4] = c
        ip = b + 6 + phase
        dd = dw * blk - ((int(st[ip]) ^ sgn) - sgn)
        st[ip] = blk
        dbase = p * 2 * dlen
        li = hm - wl * 2
        if li < 0:
            li += dlen
        old = int(d[dbase + li])
        if old >= 32768:
            old -= 65536
        d[dbase + hm] = dd
        d[dbase + hm + dlen] = dd
        qi = b + 8 + phase
        st[qi] = ((int(st[qi]) ^ sgn) - sgn) + dd * dd - old * old
        ti = b + 10 + phase
        tot = ((int(st[ti]) ^ sgn) - sgn) + dd - old
        st[ti] = tot
        p += 1
    # Matched filters, one loop per period. Offset binary: (u ^ 0x8000) is D + 32768 for
    # the int16 D stored as u, so the loop has no sign branch and the offset comes off once
    # at the end (acc < npos * 2**16, and npos <= wlen / 2 < 2**15 as pos holds uint16
    # indices: acc < 2**31, a machine int on 32-bit ports).
    ng = int(grp[0])
    gi = 1
    g = 0
    while g < ng:
        cnt = int(grp[gi])
        p0 = int(grp[gi + 1])
        b = 5 + 14 * p0
        wl = int(st[b + 1])
        mo = int(st[b + 2])
        npos = int(st[b + 12])
        start = hm - (wl - 1) * 2
        if start < 0:
            start += dlen
        i0 = p0 * 2 * dlen + start
        a0 = 0
        a1 = 0
        a2 = 0
        q = mo
        qend = mo + npos
        if cnt == 3:
            i1 = int(grp[gi + 2]) * 2 * dlen + start
            i2 = int(grp[gi + 3]) * 2 * dlen + start
            while q < qend:
                k = 2 * int(pos[q])
                a0 += int(d[i0 + k]) ^ 0x8000
                a1 += int(d[i1 + k]) ^ 0x8000
                a2 += int(d[i2 + k]) ^ 0x8000
                q += 1
        else:
            while q < qend:
                a0 += int(d[i0 + 2 * int(pos[q])]) ^ 0x8000
                q += 1
        off = npos << 15
        m = 0
        while m < cnt:
            pb = 5 + 14 * int(grp[gi + 1 + m])
            acc = a0
            if m == 1:
                acc = a1
            elif m == 2:
                acc = a2
            num = 2 * (acc - off) - ((int(st[pb + 10 + phase]) ^ sgn) - sgn)
            if not st[pb + 13]:
                num = -num
            st[pb + 5] = num
            m += 1
        gi += 4
        g += 1


@micropython.viper
def best_score(st: ptr32, hyps: ptr8, nbytes: int, nj: int, phase: int) -> int:
    """max over drift hypotheses of (256*num)//isqrt(den); returns score_q8*8 + hypothesis."""
    sgn = 1 << 29
    sgn = sgn << 2
    best = 0
    besth = 0
    hi = 0
    i = 0
    while i < nbytes:
        num = 0
        den = 0
        j = 0
        while j < nj:
            b = 5 + 14 * int(hyps[i + j])
            num += (int(st[b + 5]) ^ sgn) - sgn
            den += (int(st[b + 8 + phase]) ^ sgn) - sgn
            j += 1
        if num > 0 and den > 0:
            r = den
            t = den
            k = 0
            while t > 0:
                t = t >> 2
                k += 1
            x = 1 << k
            while True:
                y = (x + r // x) >> 1
                if y >= x:
                    break
                x = y
            s = (num << 8) // x
            if s > best:
                best = s
                besth = hi
        hi += 1
        i += nj
    return best * 8 + besth
