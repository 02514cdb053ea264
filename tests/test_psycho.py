"""The masking model: units, spreading, tonal vs noise maskers, absolute threshold, smoothing."""

import doctest

import numpy as np
import pytest

from airmark import psycho

FS = 16000
NFFT = 512


def _spectrum(x):
    return psycho.power_spectrum(x[None, :NFFT], np.hanning(NFFT))


def _tone(freq_hz, amp, n=NFFT):
    t = np.arange(n) / FS
    return amp * np.sin(2 * np.pi * freq_hz * t + 0.3)


def test_doctests():
    assert doctest.testmod(psycho).failed == 0


def test_reference_values():
    assert psycho.bark(1000.0) == pytest.approx(8.51, abs=0.01)
    assert psycho.ath_db_spl(1000.0) == pytest.approx(3.37, abs=0.05)
    # Terhardt's curve has its minimum (most sensitive) near 3.3 kHz, below 0 dB SPL.
    f = np.linspace(500, 6000, 1000)
    assert 3000 < f[np.argmin(psycho.ath_db_spl(f))] < 3800
    assert psycho.spreading_db(0.0) == pytest.approx(0.0, abs=0.01)
    # masking spreads further upwards than downwards
    assert psycho.spreading_db(1.0) > psycho.spreading_db(-1.0) + 3
    assert psycho.spreading_gain() == pytest.approx(10 ** 0.2021, rel=0.01)


def test_power_spectrum_units():
    amp = 0.5
    p = _spectrum(_tone(1000.0, amp))
    assert p.sum() == pytest.approx(amp ** 2 / 2, rel=0.02)
    rng = np.random.default_rng(0)
    noise = 0.1 * rng.standard_normal(NFFT * 64).reshape(64, NFFT)
    pn = psycho.power_spectrum(noise, np.hanning(NFFT))
    assert pn.sum(axis=1).mean() == pytest.approx(0.01, rel=0.05)


def test_tone_masks_near_not_far():
    model = psycho.MaskingModel(NFFT, FS)
    x = _tone(2000.0, 0.3) + 1e-6 * np.random.default_rng(1).standard_normal(NFFT)
    p = _spectrum(x)
    thr = model.threshold(p)[0]
    k = int(round(2000.0 / (FS / NFFT)))
    # Near the tone: masked noise is allowed, but well below the tone itself.
    assert thr[k] < p[0, k] / 10
    near = thr[k + 3]
    assert near > 1e-7
    # Far below the tone (-8 Bark) the threshold has fallen to the threshold in quiet.
    far = int(round(300.0 / (FS / NFFT)))
    assert thr[far] < near / 1e4
    ath = psycho.ath_power(model.out_freqs_hz[far]) * model.out_bark_width[far]
    assert thr[far] == pytest.approx(ath, rel=0.01)
    # ... and above the (near-silent) host there: the model never asks for less than hearing.
    assert thr[far] > p[0, far]


def test_noise_masker_beats_tone_at_equal_power():
    model = psycho.MaskingModel(NFFT, FS)
    rng = np.random.default_rng(2)
    n = NFFT * 8
    spec = np.zeros(n // 2 + 1, complex)
    band = slice(int(900 / (FS / n)), int(1100 / (FS / n)))
    spec[band] = np.exp(2j * np.pi * rng.random(band.stop - band.start))
    noise = np.fft.irfft(spec, n)[:NFFT]
    tone = _tone(1000.0, 1.0)
    noise *= np.sqrt(np.mean(tone ** 2) / np.mean(noise ** 2))
    k = int(round(1000.0 / (FS / NFFT)))
    t_tone = model.threshold(_spectrum(tone))[0, k - 8:k + 9].sum()
    t_noise = model.threshold(_spectrum(noise))[0, k - 8:k + 9].sum()
    assert 10 * np.log10(t_noise / t_tone) > 6.0


def test_tonality_tone_vs_noise():
    model = psycho.MaskingModel(NFFT, FS)
    rng = np.random.default_rng(3)
    a_noise = model.tonality(_spectrum(rng.standard_normal(NFFT)))
    a_tone = model.tonality(_spectrum(_tone(1000.0, 0.5) + 1e-5 * rng.standard_normal(NFFT)))
    k = np.searchsorted(model.part_bark, psycho.bark(1000.0)) - 1
    assert a_noise.mean() < 0.3
    assert a_tone[0, k] > 0.8


def test_partitions_and_output_bins():
    model = psycho.MaskingModel(NFFT, FS, out_freqs_hz=[500.0, 1000.0, 6000.0],
                                out_width_hz=62.5)
    assert model.part_starts[0] == 0 and np.all(np.diff(model.part_starts) >= 1)
    assert model.sfm_parts.sum() == model.part_starts.size
    p = _spectrum(np.random.default_rng(4).standard_normal(NFFT) * 0.1)
    assert model.threshold_db(p).shape == (1, 3)
    # Louder host, higher threshold (+20 dB in, +20 dB out, away from the ATH floor).
    d = model.threshold_db(p * 100.0) - model.threshold_db(p)
    assert np.allclose(d, 20.0, atol=0.01)


def test_smooth_threshold_caps_and_slows_attack():
    hist = np.full((2, 3), -60.0)
    thr = np.array([[-30.0, -60.0, -60.0], [-30.0, -90.0, -60.0]])
    out, new_hist = psycho.smooth_threshold(thr, hist)
    # Onset: the smoothed threshold stays below the current one (no pre-echo).
    assert out[0, 0] < -30.0 and out[1, 0] < -30.0 and out[1, 0] > out[0, 0]
    # Drop: at most SMOOTH_CAP_DB above the current block.
    assert out[1, 1] == pytest.approx(-90.0 + psycho.SMOOTH_CAP_DB)
    assert np.allclose(out[:, 2], -60.0)
    assert np.array_equal(new_hist, thr)
