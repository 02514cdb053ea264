"""The shared detector core (firmware/airmark_detector.py) on desktop, numpy and strict ulab shim."""

import numpy as np
import pytest

import signals as sg
import ulab_shim


def run(core, key, x, trace=False):
    det = core.Detector(key)
    h = det.hop_samples
    scores, events, tr = [], [], []
    for i in range(len(x) // h):
        ev = det.feed(x[i * h:(i + 1) * h])
        scores.append(det.score)
        if ev:
            events.append((ev[0] / sg.FS, ev[1]))
        if trace:
            tr.append((list(det.c), list(det.num), list(det.q)))
    return np.array(scores), events, tr


def marked(key, seconds=9.0, start_s=3.0, whr_db=-8.0, seed=0):
    host = sg.music_like(seconds, seed)
    y, seg = sg.embed_reference(host, key, start_s, whr_db)
    return y, seg


def test_shim_refuses_what_ulab_lacks():
    np_ = ulab_shim.numpy
    assert not hasattr(np_, "int32") and not hasattr(np_, "float64")
    with pytest.raises(ulab_shim.StrictDtypeError):
        np_.zeros(4, dtype=np.int32)
    a = np_.zeros(4, dtype=np_.int16)
    with pytest.raises(AttributeError):
        a.astype(np_.float)
    with pytest.raises(AttributeError):
        a.sum()
    with pytest.raises(TypeError):
        a >> 1
    with pytest.raises(ArithmeticError):
        np_.dot(np_.ones(1024, dtype=np_.int16) * 32767, np_.ones(1024, dtype=np_.int16) * 32767)
    assert isinstance(np_.dot(np_.ones(3, dtype=np_.int8), np_.ones(3, dtype=np_.int8)), float)


@pytest.mark.parametrize("which", ["numpy", "ulab"])
def test_features_are_signs_of_the_comb_filter(which, key, core_numpy, core_ulab):
    """f[n] = +1 where x[n] + x[n-1] >= x[n-8] + x[n-9] (zeros before the start), else -1,
    across hop boundaries and at full scale (no int16 wrap in the pair sums)."""
    core = core_numpy if which == "numpy" else core_ulab
    rng = np.random.default_rng(5)
    x = rng.integers(-32768, 32768, 6 * 128).astype(np.int16)
    x[300:340] = 32767
    x[340:380] = -32768  # full scale both ways; the flat runs give ties (+1)
    xi = np.concatenate([np.zeros(9, dtype=np.int64), x.astype(np.int64)])
    y = xi[9:] + xi[8:-1] - xi[1:-8] - xi[:-9]
    want = np.where(y < 0, -1, 1)
    assert (y == 0).sum() >= 10 and (want == -1).sum() > 100 and (want == 1).sum() > 100
    det = core.Detector(key, use_kernels=False)
    h = det.hop_samples
    got = []
    for i in range(len(x) // h):
        det.feed(x[i * h:(i + 1) * h])
        w = (i % (det._ring // h)) * h
        got.extend(1 - 2 * int(v) for v in det._feat[w:w + h])  # held as 1 for -1
    assert got == want.tolist()


@pytest.mark.parametrize("which", ["numpy", "ulab"])
def test_detects_reference_mark(which, key, core_numpy, core_ulab):
    core = core_numpy if which == "numpy" else core_ulab
    y, (s0, s1) = marked(key)
    scores, events, _ = run(core, key, sg.to_int16(y))
    assert len(events) == 1, (events, scores.max())
    t, score = events[0]
    assert s1 - 0.6 <= t <= s1 + 0.05, (t, s1)
    assert score >= key["threshold"]


def test_numpy_and_ulab_paths_agree_exactly(key, core_numpy, core_ulab):
    y, _ = marked(key, seconds=6.0, start_s=2.0)
    x = sg.to_int16(y)
    s1, e1, t1 = run(core_numpy, key, x, trace=True)
    s2, e2, t2 = run(core_ulab, key, x, trace=True)
    assert t1 == t2  # every integer: correlations, matched-filter sums, energies
    assert np.allclose(s1, s2, rtol=1e-5, atol=1e-6)
    assert [round(t, 4) for t, _ in e1] == [round(t, 4) for t, _ in e2]


def test_matched_filter_sums_past_int16_stay_exact(key, core_numpy, core_ulab):
    """The array-ops path sums every pair's matched filter as one int16 row sum, exact
    while |num| < 2**15, which (sum |D|)^2 <= wlen * sum D^2 < 2**30 guarantees; past that
    it redoes the pair in float. A full-scale tone whose block signs are the key's, with
    key bits that make period 1's modulation alternate block by block, drives |num| far
    past 2**15: both paths must give every integer, and the int64 batch twin every score."""
    from airmark import fw

    rec = dict(key)
    nb = len(rec["key_bits"])
    signs = [(-1) ** (b * (b // 8)) for b in range(nb)]  # m_i = s_i s_(i-8) = (-1)^i
    rec["key_bits"] = "".join("1" if v < 0 else "0" for v in signs)
    blocks = 2 * nb + 40
    t = np.arange(256 * blocks)
    block_signs = np.repeat(np.array((signs * 3)[:blocks]), 256)
    x = (20000 * np.sin(2 * np.pi * t / 32 + 0.3) * block_signs).astype(np.int16)
    s1, _, t1 = run(core_numpy, rec, x, trace=True)
    s2, _, t2 = run(core_ulab, rec, x, trace=True)
    assert max(abs(v) for _, num, _ in t1 for v in num) > 60000
    assert t1 == t2
    det = core_numpy.Detector(rec)
    want, _ = fw.module("airmark_batch").feed_hops(det, x)
    assert [int(round(v * 256)) for v in s1] == [int(v) for v in want]
    assert s1.max() > 8


def test_isqrt_is_exact_from_a_float32_guess(core_numpy, monkeypatch):
    """MicroPython has no math.isqrt: the core's isqrt corrects a float square root in
    integers. With the boards' float32 square root it must still be floor(sqrt(n))
    over the detector's range (sums of D^2 below 2**31)."""
    import math

    monkeypatch.setattr(core_numpy, "_sqrt", lambda n: float(np.sqrt(np.float32(n))))
    rng = np.random.default_rng(3)
    ns = [0, 1, 2, 3, 4, 2 ** 24 - 1, 2 ** 24 + 1, 2 ** 31 - 1]
    ns += [int(v) for v in rng.integers(0, 2 ** 31, 2000)]
    roots = [int(v) for v in rng.integers(1, 46341, 500)]
    ns += [r * r + d for r in roots for d in (-1, 0, 1) if r * r + d < 2 ** 31]
    for n in ns:
        assert core_numpy.isqrt(n) == math.isqrt(n), n
    guess_off = sum(1 for n in ns if int(np.sqrt(np.float32(n))) != math.isqrt(n))
    assert guess_off > 0  # the float32 guess alone is sometimes wrong: the corrections matter


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unmarked_music_stays_quiet(seed, key, core_numpy):
    x = sg.to_int16(sg.music_like(20.0, seed=seed + 10))
    scores, events, _ = run(core_numpy, key, x)
    assert events == []
    assert scores.max() < key["threshold"] - 1.0


@pytest.fixture(scope="module")
def enh_key():
    """The conftest key's line-enhancer twin (docs/ALGORITHM.md §8)."""
    return sg.key_record(seed=1, line_enhancer=True)


@pytest.mark.parametrize("enhancer", [False, True], ids=["plain", "line-enhancer"])
@pytest.mark.parametrize("bpm", [80, 100, 120, 128, 140, 160])
def test_steady_drum_loops_stay_quiet(bpm, enhancer, key, enh_key, core_numpy):
    x = sg.to_int16(sg.drum_loop(15.0, bpm=bpm) + 1e-4 * np.random.default_rng(bpm).standard_normal(15 * sg.FS))
    scores, events, _ = run(core_numpy, enh_key if enhancer else key, x)
    assert events == [], (bpm, scores.max())


def test_other_key_does_not_detect(key, core_numpy):
    other = sg.key_record(seed=99)
    assert other["key_bits"] != key["key_bits"]
    y, _ = marked(other)
    scores, events, _ = run(core_numpy, key, sg.to_int16(y))
    assert events == []
    # and the right key does
    assert run(core_numpy, other, sg.to_int16(y))[1]


@pytest.mark.parametrize("enhancer", [False, True], ids=["plain", "line-enhancer"])
@pytest.mark.parametrize("case", ["quiet-40dBFS", "loud-clipped", "dc-offset", "drift+300", "drift-300",
                                  "offset"])
def test_channel_robustness(case, enhancer, key, enh_key, core_numpy):
    key = enh_key if enhancer else key
    y, (s0, s1) = marked(key, whr_db=-6.0)
    rng = np.random.default_rng(5)
    if case == "quiet-40dBFS":
        x = sg.to_int16(y, peak=0.01)
    elif case == "loud-clipped":
        x = np.clip(np.round(y / np.max(np.abs(y)) * 32767 * 3.0), -32768, 32767).astype(np.int16)
    elif case == "dc-offset":
        x = np.clip(sg.to_int16(y).astype(np.int32) + 3000, -32768, 32767).astype(np.int16)
    elif case.startswith("drift"):
        ppm = int(case[5:])
        x = sg.to_int16(sg.resample_ppm(y, ppm))
        s1 = s1 / (1 + ppm * 1e-6)
    else:
        cut = int(rng.integers(1, 500))
        x = sg.to_int16(y[cut:])
        s1 -= cut / sg.FS
    _, events, _ = run(core_numpy, key, x)
    assert len(events) == 1, case
    assert s1 - 0.6 <= events[0][0] <= s1 + 0.1


@pytest.mark.parametrize("diff_weight", [1, 2])
def test_integer_state_bounds(core_numpy, diff_weight):
    """Worst cases for the proven bounds (airmark_key.state_bounds): full-scale periodic
    input maximises |c|, and every window sum stays inside the bound the key was checked for."""
    from airmark import fw, keys

    ak = fw.module("airmark_key")
    key = keys.generate(1, diff_weight=diff_weight)
    bounds = ak.state_bounds(key)
    assert bounds["d"] == (diff_weight + 1) * key["block_samples"]
    assert bounds["den"] <= ak.SMALL_INT_MAX and bounds["num_q8"] <= ak.SMALL_INT_MAX
    det = core_numpy.Detector(key)
    h = det.hop_samples
    n = key["block_samples"] * key["pattern_blocks"]
    sq = np.tile(np.array([32767, 32767, -32768, -32768], dtype=np.int16), n)  # period 4 divides every lag
    for i in range(len(sq) * 3 // h):
        j = (i * h) % (len(sq) - h)
        det.feed(sq[j:j + h])
        assert all(abs(c) <= h for c in det.c)
        assert all(0 <= q <= (det.key_blocks - key["pattern_blocks"]) * bounds["d"] ** 2 for q in det.q)
        assert sum(det.q) <= bounds["den"] * det.npairs
        assert all(256 * abs(v) <= bounds["num_q8"] for v in det.num)
    assert max(abs(c) for c in det.c) == h  # the bound is reached


def test_keys_beyond_the_integer_bounds_are_refused():
    from airmark import fw, keys
    from airmark.errors import AirmarkError

    ak = fw.module("airmark_key")
    key = keys.generate(1, lag_periods=3)
    longest = ak.max_key_bits(key)
    assert 600 <= longest <= 640  # about 10 s of 16 ms blocks with diff_weight 2
    # six periods sum twice as many terms: about 5.3 s
    assert 320 <= ak.max_key_bits(keys.generate(1)) <= 340
    assert ak.max_key_bits(dict(key, diff_weight=1)) > 2 * longest
    long_key = dict(key, key_bits="01" * ((longest + 2) // 2))
    long_key["checksum"] = ak.checksum(long_key)
    probs = ak.problems(long_key)
    assert len(probs) == 1 and "too long" in probs[0] and str(longest) in probs[0]
    ok_key = dict(key, key_bits="01" * (longest // 2))
    ok_key["checksum"] = ak.checksum(ok_key)
    assert ak.problems(ok_key) == []
    with pytest.raises(AirmarkError, match="at most 9.9"):
        keys.generate(1, key_seconds=12)


@pytest.mark.parametrize("diff_weight", [1, 2])
def test_silence_and_reset(core_numpy, diff_weight):
    """Silence gives a constant C. With diff_weight 1, D is 0 and so is the score; with 2,
    D = C is constant and the score is the key modulations' imbalance, far below threshold."""
    from airmark import keys

    key = keys.generate(1, diff_weight=diff_weight)
    det = core_numpy.Detector(key)
    z = np.zeros(det.hop_samples, dtype=np.int16)
    for _ in range(400):
        assert det.feed(z) is None
    if diff_weight == 1:
        assert det.score == 0.0
    else:
        # D is the same constant in every term: each hypothesis scores
        # sum_j sum_i m_ij / sqrt(sum_j n_j) over one pair per period, or 0 if negative
        periods = core_numpy.pair_lags(key["block_samples"], key["pattern_blocks"],
                                       key["lag_periods"])[1]
        first = [periods.index(j) for j in range(1, key["lag_periods"] + 1)]
        rows = [[int(v) for v in det._m2[p]] for p in first]
        s = sum(sum(r) for r in rows)
        n = sum(sum(abs(v) for v in r) for r in rows)  # the rows are zero-padded in front
        assert det.score == pytest.approx(max(0.0, s / np.sqrt(n)), abs=0.02)
        assert det.score < 1.0
    det.reset()
    assert det.hops == 0 and det.samples == 0


def _gap_responses(key, gap_blocks):
    """The score of a silent gap of `gap_blocks` blocks over the window's key positions
    [a, a + gap), for every a, in quiet surroundings: pair j holds the maximum C0 over
    [a + jP, a + gap), so D is w*C0 on that stretch's first block, (w - 1)*C0 on the
    others and -C0 on the block after it (inside the window)."""
    s = np.array([-1.0 if c == "1" else 1.0 for c in key["key_bits"]])
    pb, nj, k = key["pattern_blocks"], key["lag_periods"], len(s)
    w = key.get("diff_weight", 1)
    out = []
    for a in range(k - gap_blocks + 1):
        num = den = 0.0
        end = a + gap_blocks
        for j in range(1, nj + 1):
            lag = j * pb
            m = np.zeros(k + 1)
            m[lag:k] = s[lag:] * s[:-lag]
            lo = a + lag
            if lo >= end:
                continue
            num += w * m[lo] + (w - 1) * m[lo + 1:end].sum() - m[end]
            den += w * w + (w - 1) ** 2 * (end - lo - 1) + (end < k)
        if den:
            out.append(num / np.sqrt(den))
    return out or [0.0]


def _silent_gap_score(det, key, gap_blocks, seed):
    """Max score over quiet noise, a gap of digital silence, quiet noise; and the best
    that _gap_responses predicts for a gap of that length."""
    rng = np.random.default_rng(seed)
    h = det.hop_samples
    n = key["block_samples"]
    k = len(key["key_bits"])
    noise = lambda: rng.normal(0, 20, 3 * k * n)  # noqa: E731
    x = np.round(np.concatenate([noise(), np.zeros(gap_blocks * n), noise()])).astype(np.int16)
    top = 0.0
    for i in range(len(x) // h):
        det.feed(x[i * h:(i + 1) * h])
        top = max(top, det.score)
    return top, max(_gap_responses(key, gap_blocks))


def test_silence_inside_the_window_scores_the_keys_silence_response(core_numpy):
    """A gap of digital silence inside the window scores the key modulations' imbalance
    over the silent stretch (keys.silence_response is the worst such gap). A key drawn
    without keygen's rule can answer a gap with a score near a threshold; keygen keeps
    the worst gap at most SILENCE_MAX."""
    from airmark import fw, keys

    ak = fw.module("airmark_key")
    rng = np.random.default_rng(7)
    bad = None
    while bad is None:  # a random key with a strong silence response
        bits = rng.integers(0, 2, 125)
        if keys.silence_response(1 - 2 * bits, 8, 6) > 3.8:
            bad = bits
    key = keys.generate(12, threshold=9.0)
    key["key_bits"] = "".join("1" if b else "0" for b in bad)
    key["checksum"] = ak.checksum(key)
    worst = keys.silence_response(1 - 2 * bad, 8, 6)
    gap = max(range(9, 126), key=lambda g: max(_gap_responses(key, g)))
    top, predicted = _silent_gap_score(core_numpy.Detector(key), key, gap, 1)
    assert predicted == pytest.approx(worst)
    assert top == pytest.approx(predicted, abs=0.35)
    assert top > 3.4

    for seed, shape in ((12, {}), (3, {"lag_periods": 3}), (4, {"key_seconds": 6.0})):
        good = keys.generate(seed, **shape)
        signs = 1 - 2 * np.array([int(c) for c in good["key_bits"]])
        worst = keys.silence_response(signs, 8, good["lag_periods"])
        # a 6 s key has ~9x the gaps, and no candidate may reach SILENCE_MAX: keygen
        # then takes the lowest max(quality, silence), still below 19 of 20 random keys
        assert worst <= (keys.SILENCE_MAX if not shape.get("key_seconds") else 3.0)
        if not shape:
            assert max(max(_gap_responses(good, g)) for g in range(9, 126)) == pytest.approx(worst)


def test_kernel_path_names_the_code_that_runs_the_hop(key, enh_key, core_numpy):
    """No viper on CPython: the array ops, for the detector and its enhancer (the boards'
    paths are checked on their machine code in tests/test_thumb_emu.py)."""
    assert core_numpy.Detector(key).kernel_path() == "array-ops"
    det = core_numpy.Detector(enh_key)
    assert det.kernel_path() == "array-ops,enhancer:array-ops" and det.thumb_error is None


def test_state_fits_budget(key, core_ulab):
    det = core_ulab.Detector(key)
    assert det.state_bytes() <= 48 * 1024


@pytest.mark.parametrize("shape", [{}, {"pattern_blocks": 4, "lag_periods": 4},
                                   {"lag_periods": 6}], ids=["default", "p4-j4", "j6"])
def test_viper_positions_once_per_period(shape, core_numpy):
    """The viper matched filters read the rarer sign's positions of each pair's own
    modulation, held once per period and shared by that period's pairs (grouped in _grp)."""
    key = sg.key_record(seed=11, **shape)
    det = core_numpy.Detector(key)
    k, pb = len(key["key_bits"]), key["pattern_blocks"]
    s = core_numpy.key_signs(key["key_bits"])
    periods = core_numpy.pair_lags(key["block_samples"], pb, key["lag_periods"])[1]
    st, pos, grp = det._st, list(det._pos), list(det._grp)
    expect_total = 0
    for j in range(1, key["lag_periods"] + 1):
        m = [s[i] * s[i - j * pb] for i in range(j * pb, k)]
        sigma = 1 if 2 * m.count(1) <= len(m) else -1
        expect_total += sum(1 for v in m if v == sigma)
    assert len(pos) == expect_total
    for p in range(det.npairs):
        b = core_numpy.ST_HEADER + core_numpy.ST_PAIR * p
        j = periods[p]
        m = [s[i] * s[i - j * pb] for i in range(j * pb, k)]
        sigma = 1 if st[b + 13] else -1
        mine = pos[st[b + 2]:st[b + 2] + st[b + 12]]
        assert mine == [i for i, v in enumerate(m) if v == sigma]
        assert 2 * len(mine) <= len(m)
    assert grp[0] == key["lag_periods"]
    grouped = []
    for g in range(grp[0]):
        cnt = grp[1 + 4 * g]
        assert cnt in (1, 3)
        members = grp[2 + 4 * g:2 + 4 * g + cnt]
        assert all(periods[p] == g + 1 for p in members)
        grouped += members
    assert sorted(grouped) == list(range(det.npairs))
