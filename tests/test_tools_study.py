"""tools/ota_study.py (the over-the-air decomposition) and tools/bench_host.py."""

import json
import os
import subprocess
import sys

import numpy as np
import soundfile as sf

from airmark import channel, embed, keys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import ota_study  # noqa: E402
from demo import demo_music  # noqa: E402


def test_decomposition_adds_up_and_the_mark_alone_is_coherent(tmp_path):
    """The study's premise: mark + host + noise at the mic == the noisy marked channel output
    (the chain is linear but for the loudspeaker's soft clip and rounding), and the received
    mark alone keeps its self-correlation through the 6.1 m room."""
    key = keys.generate(seed=5)
    x = demo_music(10.0, 4)[:, 0] * 0.3  # below the loudspeaker's soft-clip knee
    path = tmp_path / "clip.wav"
    sf.write(str(path), x, 44100, subtype="FLOAT")
    w, h, n, end_s = ota_study.parts(str(path), key, "living-room-6m", 0, str(tmp_path / "cache"))
    y, _ = embed.embed_array(x, 44100, key, start_s=ota_study.MARK_START_S, duration_s=2.0)
    full, _ = channel.simulate(y, 44100, channel.ChannelConfig.from_preset("living-room-6m"),
                               seed=0, cache_dir=str(tmp_path / "cache"))
    err = full.astype(np.float64) - (w + h + n)
    assert np.sqrt(np.mean(err ** 2)) < 0.01 * np.sqrt(np.mean(full.astype(np.float64) ** 2))
    assert np.sqrt(np.mean(w ** 2)) > 0          # there is a received mark
    alone = ota_study.model_score(w, key, "stft-phat", end_s)
    before = ota_study.model_score(w, key, "stft-phat", end_s - 3.0)   # no mark has ended there
    assert alone > 6.0 and alone > 2 * before, (alone, before)
    assert 5.0 < end_s < 7.0


def _study_cmd(tmp_path, seconds=10.0):
    """The study tool's command line over a one-clip corpus of generated music."""
    corpus = tmp_path / "corpus"
    (corpus / "music").mkdir(parents=True)
    sf.write(str(corpus / "music" / "m0.wav"), demo_music(seconds, 6) * 0.5, 44100,
             subtype="PCM_16")
    (corpus / "manifest.json").write_text(json.dumps(
        {"clips": [{"category": "music", "file": "music/m0.wav"}]}))
    return [sys.executable, os.path.join(ROOT, "tools", "ota_study.py"), "--corpus", str(corpus),
            "--clips", "1", "--json", "--cache-dir", str(tmp_path / "cache")]


def test_study_cli_json_on_a_tiny_corpus(tmp_path):
    r = subprocess.run(_study_cmd(tmp_path) + ["--no-model"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [c["detector"] for c in out["cases"]] == ["product"] * 5
    assert [c["condition"] for c in out["cases"]][3:] == ["received mark alone",
                                                          "mark and noise, no host"]
    assert all(c["clips"] == 1 for c in out["cases"])
    assert all(sum(c["detected_by_category"].values()) == c["detected"] for c in out["cases"])
    assert len(out["mark_to_rest_db"]) == len(out["band_edges_hz"]) - 1
    assert all(-60 < v < 20 for v in out["mark_to_rest_db"])
    assert len(out["host_to_noise_db"]) == len(out["mark_to_rest_db"])
    # the bounds: the mark alone scores above the mark with its host and the noise
    score = {c["condition"]: out["per_clip"][str(i)][0]["score"]
             for i, c in enumerate(out["cases"])}
    assert score["received mark alone"] > score["default strength, noise"] + 2, score
    assert score["received mark alone"] >= score["mark and noise, no host"], score


def test_study_placements_and_long_keys(tmp_path):
    """--azimuths places the microphone clip by clip; a key longer than a clip allows is one
    error line (exit 2), as is a bad azimuth list."""
    base = _study_cmd(tmp_path, 7.0) + ["--no-model"]
    r = subprocess.run(base + ["--azimuths=15", "--set", "distance_m=3", "--set", "noise=null"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["azimuths_deg"] == [15.0]
    assert out["set"] == {"distance_m": 3, "noise": None}
    score = {c["condition"]: c["median"] for c in out["cases"]}
    # no noise anywhere: the noisy and the quiet run are the same
    assert score["default strength, noise"] == score["default strength, no noise"]
    assert score["mark and noise, no host"] == score["received mark alone"]
    assert out["cases"][0]["median_by_category"] == {"music": out["cases"][0]["median"]}
    for args, words in ((["--azimuths", "left"], "--azimuths"),
                        (["--set", "distance_m"], "KEY=VALUE"),
                        (["--set", "no_such_knob=1"], "no_such_knob")):
        bad = subprocess.run(base + args, capture_output=True, text=True, timeout=300)
        assert bad.returncode == 2 and words in bad.stderr, (args, bad.stderr)
        assert "Traceback" not in bad.stderr
    long_key = tmp_path / "k6.json"
    keys.save(keys.generate(seed=5, key_seconds=6.0), str(long_key))
    short = subprocess.run(base + ["--key", str(long_key)], capture_output=True, text=True,
                           timeout=300)
    assert short.returncode == 2, short.stderr
    assert short.stderr.strip().endswith("too short for a 6.0 s mark")
    assert "Traceback" not in short.stderr
    clip = str(tmp_path / "corpus" / "music" / "m0.wav")
    w, h, n, end_s = ota_study.parts(clip, keys.generate(seed=5), "living-room-6m", 0,
                                     str(tmp_path / "cache"), 15.0)
    assert 4.0 + 2.0 < end_s < 8.0  # a 2 s mark from 4 s in, through the room's delay


def test_study_run_key_and_feature_options(tmp_path):
    key = keys.generate(seed=5)
    rk = ota_study.run_key(key, 4)
    keys.validate(rk)
    bits = rk["key_bits"]
    assert len(bits) == len(key["key_bits"])
    assert all(bits[i] == bits[i - i % 4] for i in range(len(bits)))
    assert bits[::4] == key["key_bits"][:len(bits[::4])]
    base = _study_cmd(tmp_path)
    r = subprocess.run(base + ["--run-blocks", "4", "--features", "td-sign3"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {c["detector"] for c in out["cases"]} == {"stft-phat", "td-sign3"}
    assert [c["condition"] for c in out["cases"] if c["detector"] == "td-sign3"] == [
        "default strength, no noise", "default strength, noise", "unmarked, noise"]
    bad = subprocess.run(base + ["--features", "td-signX"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "unknown feature" in bad.stderr


def test_bench_host_reports_all_three(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_host.py"), "--seconds",
                        "5", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for k in ("embed", "detect_cpython", "detect_cpython_line_enhancer", "detect_micropython"):
        assert out[k]["x_realtime"] > 1, out
