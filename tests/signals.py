"""Deterministic test signals at 16 kHz: music-like hosts, drum loops and a reference mark.

The reference mark follows the detector's contract (docs/ALGORITHM.md): back-to-back
blocks of N samples, pattern block b mod P, sign -1 where key bit b mod K is '1'.
It is independent of the embedder, so core tests don't depend on the masking model.
"""

import numpy as np

FS = 16000


def key_record(seed=1, threshold=6.0, **kw):
    from airmark import keys

    return keys.generate(seed, threshold=threshold, **kw)


def music_like(seconds, seed=0):
    """Sustained chords changing every 0.5 s + a 120 BPM drum loop + a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    y = np.zeros(n)
    seg = FS // 2
    for s in range(0, n, seg):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        for h in range(1, 12):
            amp = 0.3 / h
            y[s:s + seg] += amp * np.sin(2 * np.pi * f0 * h * t[s:s + seg] + rng.random() * 6.28)
    y += drum_loop(seconds, bpm=120, seed=seed)
    y += 0.003 * rng.standard_normal(n)
    return y / np.max(np.abs(y)) * 0.5


def drum_loop(seconds, bpm=120, seed=0):
    """Steady 4/4 kick/snare/hi-hat loop: identical hits on a fixed grid (the trap)."""
    rng = np.random.default_rng(seed + 1000)
    n = int(seconds * FS)
    y = np.zeros(n)
    beat = 60.0 / bpm
    tt = np.arange(int(0.2 * FS)) / FS
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-tt * 30)) * tt) * np.exp(-tt * 12)
    snare = rng.standard_normal(len(tt)) * np.exp(-tt * 25) * 0.5
    hat = np.diff(rng.standard_normal(len(tt) + 1)) * np.exp(-tt * 80) * 0.2
    for i in range(int(seconds / beat * 2) + 1):
        pos = int(i * beat / 2 * FS)
        for hit, cond in ((kick, i % 4 == 0), (snare, i % 4 == 2), (hat, True)):
            if cond and pos < n:
                m = min(len(hit), n - pos)
                y[pos:pos + m] += hit[:m]
    return y


def reference_mark(key, nblocks, seed_offset=0):
    """Unit-RMS reference mark of `nblocks` blocks in the key's band (float, 16 kHz)."""
    n = key["block_samples"]
    p = key["pattern_blocks"]
    bits = key["key_bits"]
    rng = np.random.default_rng(key["noise_seed"] + seed_offset)
    nb = n // 2 + 1
    f = np.arange(nb) * FS / n
    inband = (f >= key["band_hz"][0]) & (f <= key["band_hz"][1])
    pats = []
    for _ in range(p):
        spec = np.exp(2j * np.pi * rng.random(nb)) * inband
        blk = np.fft.irfft(spec, n)
        pats.append(blk / np.sqrt(np.mean(blk ** 2)))
    out = np.zeros(nblocks * n)
    for b in range(nblocks):
        s = -1.0 if bits[b % len(bits)] == "1" else 1.0
        out[b * n:(b + 1) * n] = s * pats[b % p]
    return out


def band_rms(x, lo=500, hi=6000):
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / FS)
    spec[(f < lo) | (f > hi)] = 0
    return np.sqrt(np.mean(np.fft.irfft(spec, len(x)) ** 2))


def embed_reference(host, key, start_s, whr_db, seed_offset=0):
    """host + reference mark at `whr_db` (in the key's band, relative to the host over the mark)."""
    n = key["block_samples"]
    k = len(key["key_bits"])
    start = int(start_s * FS)
    mark = reference_mark(key, k, seed_offset)
    seg = host[start:start + len(mark)]
    g = band_rms(seg, *key["band_hz"]) * 10 ** (whr_db / 20)
    y = host.copy()
    y[start:start + len(mark)] += g * mark[:len(seg)]
    return y, (start / FS, (start + k * n) / FS)


def to_int16(x, peak=0.5):
    x = np.asarray(x, dtype=float)
    m = np.max(np.abs(x)) or 1.0
    return np.clip(np.round(x / m * peak * 32767), -32768, 32767).astype(np.int16)


def resample_ppm(x, ppm):
    """Play `x` with a clock `ppm` fast: linear-interpolated time scaling."""
    r = 1 + ppm * 1e-6
    m = int(len(x) / r)
    return np.interp(np.arange(m) * r, np.arange(len(x)), x)
