"""Many hops of the detector core at once, vectorised with numpy (host only).

`feed_hops(det, x)` does to an `airmark_detector.Detector` on its array-ops path exactly
what `det.feed` would do hop after hop: the same integers for c, C, D, num, sum D^2,
the same fixed-point scores and events, and the same state afterwards, so
streaming can go on with either. Only the order of work changes: each lag pair's
correlations, differences and key-matched sums are computed for the whole chunk in a
few array operations instead of a dozen Python steps per hop. All arithmetic is
int64 on values the core bounds far below 2**31 (docs/ALGORITHM.md, "Integer bounds").

It is not shipped to boards (nothing on the board imports it) and it needs real numpy:
CPython's speed comes from here, the board keeps the per-hop core. The tests compare
the two on the golden vector, on noise and on marked audio, state by state.
"""

import numpy as np

import airmark_detector as core


def usable(det):
    """True if `det` runs the numpy array-ops path (not viper, not ulab)."""
    # numpy's own arrays: not viper's words, nor ulab's (or the tests' ulab stand-in's)
    return det.kernels is None and type(getattr(det, "_xf", None)) is np.ndarray


def _chronological(ring_buf, start, length):
    """The mirrored ring read oldest first, from slot `start`."""
    return np.asarray(ring_buf[start:start + length])


def _store_mirrored(view, last, start):
    """Write `last` (oldest first) into a mirrored ring so slot `start` holds last[0]."""
    n = len(last)
    base = np.roll(last, start % n)
    view[:n] = base
    view[n:2 * n] = base


def _isqrt(v):
    """floor(sqrt(v)) element-wise for int64 0 <= v < 2**52, exact."""
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    r -= (r * r > v).astype(np.int64)
    r += ((r + 1) * (r + 1) <= v).astype(np.int64)
    return r


def feed_hops(det, x):
    """Feed len(x) // hop_samples whole hops of int16 `x` (a trailing part is ignored).

    Returns (scores_q8, events): the fixed-point score after every hop (int64 array)
    and a list of (samples so far, score) for each detection, as `det.feed` returns them.
    """
    if not usable(det):
        raise ValueError("feed_hops needs the numpy array-ops path of the detector")
    h = det.hop_samples
    m = len(x) // h
    if m == 0:
        return np.zeros(0, dtype=np.int64), []
    x = np.asarray(x[:m * h], dtype=np.int64)
    if det.enhancer is not None:
        import airmark_enhancer

        x = airmark_enhancer.process_block(det.enhancer, x.reshape(m, h)).reshape(-1)
        det.enhancer.hops += m
    st = det._st
    hops0 = det.hops
    ring = det._ring
    nslots = ring // h
    dlen = det._dlen
    sub = core.SUBBLOCKS
    hist = core.FEATURE_HIST

    # Features, exactly as _features: sign of (x[n] + x[n-1]) - (x[n-8] + x[n-9]).
    xl = np.concatenate((det._xf[h:h + hist].astype(np.int64), x))
    pair = xl[1:] + xl[:-1]
    f = np.where(pair[core.FEATURE_LAG:] < pair[:m * h], -1, 1).astype(np.int8)
    det._xf[:] = xl[len(xl) - (hist + h):]
    feat = det._feat
    w0 = (hops0 % nslots) * h
    # the ring holds 1 for a feature of -1, 0 for +1
    fl = np.concatenate((1 - 2 * _chronological(feat, w0, ring).astype(np.int8), f))
    _store_mirrored(feat, (fl[len(fl) - ring:] < 0).astype(feat.dtype), ((hops0 + m) % nslots) * h)

    phase = (hops0 + np.arange(m)) % sub
    nhyp = len(det.hyp_pairs)
    nums = np.zeros((det.npairs, m), dtype=np.int64)
    qs = np.zeros((det.npairs, m), dtype=np.int64)
    cur = fl[ring:]
    for p in range(det.npairs):
        b = core.ST_HEADER + core.ST_PAIR * p
        lag = st[b]
        wl = st[b + 1]
        past = fl[ring - lag:ring - lag + m * h]
        c = (cur * past).reshape(m, h).sum(axis=1, dtype=np.int64)
        cc = np.concatenate(([det._cprev[p]], c))
        blk = cc[1:] + cc[:-1]
        # D = w*C - C(one block earlier), the earlier C read from the state for the first hops
        prev = np.array([det._cblk[(hops0 + k) % sub][p] for k in range(sub)], dtype=np.int64)
        ext = np.concatenate((prev, blk))
        d = det.diff_weight * ext[sub:] - ext[:m]
        dbase = p * 2 * dlen
        dv = det._d[dbase:dbase + 2 * dlen]
        dl = np.concatenate((_chronological(dv, hops0 % dlen, dlen).astype(np.int64), d))
        old = dl[dlen - wl * sub:dlen - wl * sub + m]
        dq = d * d - old * old
        q = np.empty(m, dtype=np.int64)
        for ph in range(sub):
            sel = phase == ph
            if sel.any():
                q[sel] = det._qs[ph][p] + np.cumsum(dq[sel])
                det._qs[ph][p] = int(q[sel][-1])
        taps = np.zeros((wl - 1) * sub + 1, dtype=np.int64)
        taps[::sub] = det._m2[p, det._wmax - wl:].astype(np.int64)
        corr = np.correlate(dl, taps, "valid")
        first = dlen - (wl - 1) * sub
        nums[p] = corr[first:first + m]
        qs[p] = q
        _store_mirrored(dv, dl[len(dl) - dlen:].astype(dv.dtype), (hops0 + m) % dlen)
        det._cprev[p] = int(c[-1])
        det._nums[p] = int(nums[p, -1])
        for k in range(min(sub, m)):
            det._cblk[(hops0 + m - 1 - k) % sub][p] = int(blk[m - 1 - k])

    # Scores: max over drift hypotheses of (256 * sum_j num) // isqrt(sum_j den).
    scores = np.zeros((nhyp, m), dtype=np.int64)
    for i, pairs in enumerate(det.hyp_pairs):
        num = nums[list(pairs)].sum(axis=0)
        den = qs[list(pairs)].sum(axis=0)
        ok = (num > 0) & (den > 0)
        r = _isqrt(np.where(ok, den, 1))
        scores[i] = np.where(ok, (num << 8) // r, 0)
    best = scores.max(axis=0)
    besth = scores.argmax(axis=0)

    events = []
    allowed = det._hold  # hops of this chunk still held off after an earlier event
    for t in np.flatnonzero(best >= det.threshold_q8):
        if t >= allowed:
            events.append(((hops0 + int(t) + 1) * h - det.latency_samples, int(best[t]) / 256.0))
            allowed = int(t) + det.holdoff_hops + 1
    det._hold = max(0, allowed - m)
    det.score_q8 = int(best[-1])
    det.best_hyp = int(besth[-1])
    det.hops = hops0 + m
    det.samples += m * h
    return best, events
