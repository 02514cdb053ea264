"""tools/replay.py and firmware/airmark_replay.py under CPython: real detector, numpy and the strict ulab shim."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fw_helpers as h

REPLAY = os.path.join(h.TOOLS, "replay.py")
GOLDEN = os.path.join(h.ROOT, "tests", "golden")
SHIM_RUN = ("import sys; sys.path.insert(0, %r); import ulab_shim; ulab_shim.install(); "
            "sys.path.insert(0, %r); import airmark_replay; sys.exit(airmark_replay.main(sys.argv[1:]))"
            % (os.path.join(h.ROOT, "tests"), h.FIRMWARE))


def replay(*args, shim=False):
    if shim:
        cmd = [sys.executable, "-c", SHIM_RUN]
    else:
        cmd = [sys.executable, REPLAY]
    r = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    return r.returncode, h.parse_lines(r.stdout), r.stderr


@pytest.fixture(scope="module")
def key_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("key")
    return h.write_key(str(d / "key.json"), h.make_key())


def test_noise_lines(tmp_path, key_path):
    rng = np.random.default_rng(1)
    wav = h.write_wav(tmp_path / "n.wav", (rng.standard_normal(16000 * 3 + 100) * 3000).astype(np.int16))
    rc, lines, err = replay(wav, key_path, "--status-ms", "1000")
    assert rc == 0, err
    assert lines[0]["event"] == "hello" and lines[0]["board"] == "replay" and lines[0]["hop"] == 256
    assert lines[0]["state_bytes"] > 0 and lines[0]["buf_bytes"] == 512
    st = [x for x in lines if x["event"] == "status"]
    assert [s["uptime_ms"] for s in st[:2]] == [1008, 2016]      # audio time, board cadence
    assert st[-1]["blocks"] == (16000 * 3 + 100) // 256           # the partial hop is not fed
    assert all(x["event"] in ("hello", "status", "detection") for x in lines)


@pytest.mark.parametrize("shim", [False, True], ids=["numpy", "ulab-shim"])
def test_golden_vectors(shim):
    """The committed golden input reproduces the expected events exactly through the replay."""
    exp = json.load(open(os.path.join(GOLDEN, "expected.json")))
    rc, lines, err = replay(os.path.join(GOLDEN, "input.wav"), os.path.join(GOLDEN, "key.json"),
                            "--status-ms", "0", shim=shim)
    assert rc == 0, err
    dets = [x for x in lines if x["event"] == "detection"]
    # expected.json stores (t_samples, score_q8); the detector reports score_q8 / 256 and the
    # protocol line prints it with 3 decimals, rounded half up (scores are positive)
    assert [(d["t_ms"], d["score"]) for d in dets] == \
        [(t * 1000 // 16000, ((q8 * 1000 + 128) // 256) / 1000) for t, q8 in exp["events"]]
    assert lines[0]["hop"] == exp["hop_samples"]


def test_shim_and_numpy_agree():
    """The replay under the strict ulab shim and under numpy: the same lines, detections
    included (the golden input holds a mark)."""
    wav, key = os.path.join(GOLDEN, "input.wav"), os.path.join(GOLDEN, "key.json")
    a = replay(wav, key, "--status-ms", "500")
    b = replay(wav, key, "--status-ms", "500", shim=True)
    assert a[0] == b[0] == 0, a[2] + b[2]
    strip = lambda ls: [(x["event"], x.get("t_ms"), x.get("score"), x.get("blocks")) for x in ls[1:]]
    assert any(x["event"] == "detection" for x in a[1])
    assert strip(a[1]) == strip(b[1])


@pytest.mark.parametrize("kind", ["stereo", "rate", "missing", "text"])
def test_bad_wav_is_one_error_line(tmp_path, key_path, kind):
    p = tmp_path / "x.wav"
    if kind == "stereo":
        h.write_wav(p, np.zeros(400), channels=2)
    elif kind == "rate":
        h.write_wav(p, np.zeros(400), rate=48000)
    elif kind == "text":
        p.write_text("nope")
    rc, lines, err = replay(p, key_path)
    assert rc == 2 and len(lines) == 1 and lines[0]["event"] == "error", (lines, err)
    assert err == ""


def test_bad_key_is_one_error_line(tmp_path):
    wav = h.write_wav(tmp_path / "z.wav", np.zeros(1000))
    key = h.make_key()
    key["key_bits"] = "0" + key["key_bits"][1:] if key["key_bits"][0] == "1" else "1" + key["key_bits"][1:]
    kp = h.write_key(str(tmp_path / "k.json"), key)
    rc, lines, err = replay(wav, kp)
    assert rc == 2 and lines[0]["event"] == "error" and "checksum" in lines[0]["msg"]


def test_usage_error():
    rc, lines, err = replay("only-one-arg")
    assert rc == 2 and "usage" in lines[0]["msg"]


def test_firmware_entry_point_same_as_tool(tmp_path):
    """`python firmware/airmark_replay.py` (what `airmark detect --micropython` runs) ==
    tools/replay.py, detections and block counts included."""
    wav, key = os.path.join(GOLDEN, "input.wav"), os.path.join(GOLDEN, "key.json")
    r = subprocess.run([sys.executable, os.path.join(h.FIRMWARE, "airmark_replay.py"), wav, key,
                        "--status-ms", "0"], capture_output=True, text=True, cwd=str(tmp_path))
    a = h.parse_lines(r.stdout)
    rc, b, err = replay(wav, key, "--status-ms", "0")
    assert r.returncode == rc == 0
    strip = lambda ls: [(x["event"], x.get("t_ms"), x.get("score"), x.get("blocks"))
                        for x in ls if x["event"] != "hello"]
    assert any(x["event"] == "detection" for x in a)
    assert strip(a) == strip(b)
