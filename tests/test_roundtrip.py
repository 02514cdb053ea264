"""embed -> (codec, resampling, volume, drift, offset) -> firmware detector, at the default strength.

The host is generated music (chords, bass, drums, a shaker) so CI needs no corpus. Every
case runs twice: with a plain key and with its line-enhancer twin (the same mark).
"""

import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

import signals as sg
from airmark import audio, detect, embed, keys

FS = 44100
START_S = 3.0


def demo_music(seconds, seed):
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
    from demo import demo_music as dm

    return dm(seconds, seed)


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "line-enhancer"])
def key(request):
    return keys.generate(3, line_enhancer=request.param)


@pytest.fixture(scope="module")
def host():
    return demo_music(9.0, 2)


@pytest.fixture(scope="module")
def marked(host, key):
    y, info = embed.embed_array(host, FS, key, start_s=START_S, duration_s=2.0)
    assert info["segments"] == [[START_S, START_S + 2.0]]
    return y


def detect16(y, fs, key):
    return detect.detect_samples(audio.to_detector_int16(y, fs), key)


def one_event_near(res, t_end, tol_before=0.6, tol_after=0.2):
    assert len(res.events) == 1, res.events
    t = res.events[0]["t"]
    assert t_end - tol_before <= t <= t_end + tol_after, (t, t_end)


def test_digital(marked, key):
    one_event_near(detect16(marked, FS, key), START_S + 2.0)


def test_unmarked_and_other_key_stay_quiet(host, marked, key):
    assert detect16(host, FS, key).events == []
    other = keys.generate(4, line_enhancer=bool(key.get("line_enhancer")))
    assert detect16(marked, FS, other).events == []


@pytest.mark.parametrize("rate", [48000, 16000])
def test_resampled_host_rates(rate, key):
    from scipy.signal import resample_poly

    h = resample_poly(demo_music(9.0, 5), rate // 100, FS // 100, axis=0)
    y, _ = embed.embed_array(h, rate, key, start_s=START_S, duration_s=2.0)
    one_event_near(detect16(y, rate, key), START_S + 2.0)


@pytest.mark.parametrize("gain_db", [-20.0, 20.0])
def test_volume(gain_db, marked, key):
    y = marked * 10 ** (gain_db / 20)
    if gain_db > 0:
        y = np.clip(y, -1.0, 1.0)  # +20 dB clips hard
    one_event_near(detect16(y, FS, key), START_S + 2.0)


@pytest.mark.parametrize("ppm", [-300, 300])
def test_clock_drift(ppm, marked, key):
    x16 = audio.to_detector_int16(marked, FS).astype(float)
    y = sg.resample_ppm(x16, ppm)
    res = detect.detect_samples(np.round(y).astype(np.int16), key)
    one_event_near(res, (START_S + 2.0) / (1 + ppm * 1e-6))


def test_random_offset(marked, key):
    cut = int(np.random.default_rng(9).integers(1, FS))
    res = detect16(marked[cut:], FS, key)
    one_event_near(res, START_S + 2.0 - cut / FS)


def test_mp3_128k(marked, key, tmp_path):
    assert shutil.which("ffmpeg"), "ffmpeg missing: make test installs it"
    wav = tmp_path / "m.wav"
    mp3 = tmp_path / "m.mp3"
    sf.write(wav, marked, FS, subtype="PCM_16")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-b:a", "128k", str(mp3)], check=True)
    x = detect.load_for_detector(str(mp3))
    res = detect.detect_samples(x, key)
    # mp3 encoders add a short delay: allow 0.1 s more
    one_event_near(res, START_S + 2.0, tol_after=0.3)
