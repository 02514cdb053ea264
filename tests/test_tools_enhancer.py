"""tools/enhancer_study.py: the line enhancer studied in front of the detector (not the product)."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import enhancer_study as es  # noqa: E402

FS = 16000


def _band_power(y, lo, hi):
    f = np.fft.rfftfreq(len(y), 1.0 / FS)
    p = np.abs(np.fft.rfft(y)) ** 2
    return p[(f >= lo) & (f < hi)].sum()


@pytest.mark.parametrize("fixed_q", [None, 7])
def test_a_steady_partial_is_taken_out_and_noise_passes(fixed_q):
    rng = np.random.default_rng(1)
    t = np.arange(4 * FS) / FS
    noise = 300.0 * rng.standard_normal(len(t))
    tone = 8000.0 * np.sin(2 * np.pi * 1003.0 * t)
    y = es.enhance(tone + noise, fixed_q=fixed_q).astype(np.float64)
    x = tone + noise
    late = slice(FS, 3 * FS)  # after the predictor has settled, away from the edges
    # tone-to-noise ratio at the output against the input: the partial drops by > 20 dB
    def ratio(v):
        return _band_power(v[late], 980, 1030) / _band_power(v[late], 2000, 6000)
    assert 10 * np.log10(ratio(x) / ratio(y)) > 20
    # white noise alone passes with its spectrum nearly flat (no band lost or gained > 3 dB)
    yn = es.enhance(noise, fixed_q=fixed_q).astype(np.float64)[late]
    bands = [_band_power(yn, lo, lo + 1000) for lo in range(500, 6500, 1000)]
    assert 10 * np.log10(max(bands) / min(bands)) < 3.0


def test_fixed_point_fft_matches_float_and_stays_in_float32_range():
    rng = np.random.default_rng(0)
    re = rng.integers(-32767, 32768, (3, es.N))
    a, b = es.fft_fixed(re, np.zeros_like(re), 7)
    ref = np.fft.fft(re, axis=1) / es.N
    err = np.sqrt(np.mean(np.abs(a + 1j * b - ref) ** 2)) / np.sqrt(np.mean(np.abs(ref) ** 2))
    assert 20 * np.log10(err) < -25
    # magnitudes never grow through a halved stage: every output within the input's peak
    assert np.max(np.abs(a + 1j * b)) <= 32768 * np.sqrt(2)
    back, _ = es.fft_fixed(np.round(a * 16), np.round(b * 16), 7, inverse=True)
    assert np.corrcoef(back.ravel(), re.ravel())[0, 1] > 0.99


def test_bad_options_are_one_line_and_exit_2(capsys):
    assert es.main(["--delay", "0", "eval"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("enhancer_study:")


def test_install_routes_the_detector_through_the_enhancer(monkeypatch):
    import multiprocessing

    from airmark import detect, evaluate

    methods = []
    monkeypatch.setattr(multiprocessing, "set_start_method", lambda m, force=False: methods.append(m))
    seen = []
    monkeypatch.setattr(detect, "detect_samples", lambda s, k, **kw: seen.append(s) or "r")
    monkeypatch.setattr(evaluate, "_default_detect", evaluate._default_detect)
    monkeypatch.setattr(es, "enhance", lambda x, *a: np.full(len(x), 7, dtype=np.int16))
    wrapped = es.install()
    assert evaluate._default_detect() is wrapped and detect.detect_samples is wrapped
    assert wrapped(np.zeros(512, dtype=np.int16), {}) == "r" and seen[0][0] == 7
    assert methods == ["fork"]  # the eval's workers inherit the patch
