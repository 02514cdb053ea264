"""Golden vectors: every port must reproduce the committed integers exactly."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(HERE, "golden")
# golden: a key with diff_weight 2 (the default); golden-dw1: a key made before the field
# existed (D = C - C(one block earlier)), which boards must keep reading the same way.
GOLDEN_DIRS = [GOLDEN, os.path.join(HERE, "golden-dw1")]
# golden-enh: the golden key with the line enhancer in front (numpy and viper only: ulab
# alone cannot hold the enhancer's integers, and refuses the key).
GOLDEN_ENH = os.path.join(HERE, "golden-enh")


def replay(core, golden=GOLDEN):
    with open(os.path.join(golden, "key.json")) as f:
        key = json.load(f)
    x, fs = sf.read(os.path.join(golden, "input.wav"), dtype="int16")
    assert fs == 16000
    det = core.Detector(key)
    h = det.hop_samples
    hops, events = [], []
    for i in range(len(x) // h):
        ev = det.feed(x[i * h:(i + 1) * h])
        hops.append([list(det.c), list(det.num)])
        if ev:
            events.append([ev[0], det.score_q8])
    return hops, events


def expected(golden=GOLDEN):
    with open(os.path.join(golden, "expected.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("golden", GOLDEN_DIRS + [GOLDEN_ENH], ids=os.path.basename)
def test_golden_numpy(core_numpy, golden):
    hops, events = replay(core_numpy, golden)
    exp = expected(golden)
    assert hops == exp["hops"]
    assert events == exp["events"] and len(events) == 1


@pytest.mark.parametrize("golden", GOLDEN_DIRS, ids=os.path.basename)
def test_golden_strict_ulab_shim(core_ulab, golden):
    hops, events = replay(core_ulab, golden)
    exp = expected(golden)
    assert hops == exp["hops"]
    assert events == exp["events"]


def test_strict_ulab_shim_refuses_the_enhancer_golden_key(core_ulab):
    with pytest.raises(ValueError, match="line enhancer"):
        replay(core_ulab, GOLDEN_ENH)


def test_the_enhancer_golden_vector_runs_the_enhancer():
    plain = json.load(open(os.path.join(GOLDEN, "key.json")))
    enh = json.load(open(os.path.join(GOLDEN_ENH, "key.json")))
    assert enh["line_enhancer"] == 1 and "line_enhancer" not in plain
    assert [enh[k] for k in ("block_samples", "pattern_blocks", "lag_periods", "diff_weight")] == \
        [plain[k] for k in ("block_samples", "pattern_blocks", "lag_periods", "diff_weight")]
    # the same input: its mark is found within a block of the same time (the enhancer's
    # hop of latency is taken back)
    a, _ = sf.read(os.path.join(GOLDEN, "input.wav"), dtype="int16")
    b, _ = sf.read(os.path.join(GOLDEN_ENH, "input.wav"), dtype="int16")
    assert np.array_equal(a, b)
    assert abs(expected(GOLDEN_ENH)["events"][0][0] - expected(GOLDEN)["events"][0][0]) <= 256


def test_the_two_golden_keys_differ_only_in_diff_weight_use():
    keys_ = [json.load(open(os.path.join(g, "key.json"))) for g in GOLDEN_DIRS]
    assert keys_[0]["diff_weight"] == 2 and "diff_weight" not in keys_[1]
    assert expected(GOLDEN_DIRS[0])["hops"] != expected(GOLDEN_DIRS[1])["hops"]


def test_golden_check_tool_runs_and_can_fail(tmp_path):
    ok = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "golden_check.py")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("PASS") == 3
    # a damaged expectation must be caught
    for name in ("input.wav", "key.json"):
        with open(os.path.join(GOLDEN, name), "rb") as f:
            (tmp_path / name).write_bytes(f.read())
    exp = expected()
    exp["hops"][300][0][0] += 1
    (tmp_path / "expected.json").write_text(json.dumps(exp))
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "golden_check.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "FAIL hop 300" in bad.stdout


@pytest.mark.parametrize("golden", GOLDEN_DIRS + [GOLDEN_ENH])
def test_make_golden_from_a_committed_vector_rewrites_it_byte_for_byte(tmp_path, golden):
    """`make_golden.py --from DIR` keeps DIR's key and input and computes the expected
    integers again: on unchanged code every file comes out identical, so the tool is how a
    deliberate change to the integers updates the committed vectors."""
    out = tmp_path / "g"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_golden.py"),
                        "--from", golden, str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for name in ("key.json", "input.wav", "expected.json"):
        with open(os.path.join(golden, name), "rb") as a, open(out / name, "rb") as b:
            assert a.read() == b.read(), name
    # and a changed input changes the expectation (the tool computes, it does not copy)
    x, fs = sf.read(os.path.join(golden, "input.wav"), dtype="int16")
    src = tmp_path / "src"
    src.mkdir()
    with open(os.path.join(golden, "key.json"), "rb") as f:
        (src / "key.json").write_bytes(f.read())
    sf.write(str(src / "input.wav"), (x // 2).astype(np.int16), fs, subtype="PCM_16")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_golden.py"),
                        "--from", str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(golden, "expected.json")) as f:
        assert json.load(f)["hops"] != json.loads((src / "expected.json").read_text())["hops"]
