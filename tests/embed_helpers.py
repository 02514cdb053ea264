"""Shared helpers for the embedder tests: a valid key record without a key file."""

import numpy as np


def make_key(seed=1234, **params):
    """A valid key record (airmark.keys.generate, so its checksum is the real one)."""
    from airmark import keys
    return keys.generate(seed, **params)


def music_like(seconds, samplerate, channels=2, seed=0):
    """Deterministic test signal: chords with vibrato, a beat, some noise, stereo spread."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * samplerate)) / samplerate
    x = np.zeros((t.size, channels))
    for ch in range(channels):
        s = np.zeros_like(t)
        for f in (220.0, 277.2, 329.6, 440.0, 1318.5):
            s += 0.08 * np.sin(2 * np.pi * f * t + 0.3 * np.sin(2 * np.pi * 5 * t) + ch)
        beat = (np.mod(t, 0.5) < 0.05) * rng.standard_normal(t.size) * 0.15
        s += beat + 0.01 * rng.standard_normal(t.size)
        x[:, ch] = s
    return x.astype(np.float32)
