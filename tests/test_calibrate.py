"""tools/calibrate.py on a small generated corpus: one key, and several keys pooled."""

import json
import os
import subprocess
import sys

import numpy as np
import soundfile as sf

import fw_helpers as h


def make_corpus(root):
    """Two categories, two 10 s clips each: pink-ish noise and a steady 120 BPM click."""
    rng = np.random.default_rng(3)
    clips = []
    for cat in ("noise", "clicks"):
        os.makedirs(os.path.join(root, cat))
        for i in range(2):
            n = 16000 * 10
            if cat == "noise":
                x = np.cumsum(rng.standard_normal(n)) * 0.002
                x -= np.convolve(x, np.ones(64) / 64, "same")
            else:
                x = np.zeros(n)
                for start in range(0, n, 8000):
                    x[start:start + 400] = rng.standard_normal(400) * np.hanning(400)
            x = 0.3 * x / np.max(np.abs(x))
            name = "%s/%s_%d.wav" % (cat, cat, i)
            sf.write(os.path.join(root, name), x.astype(np.float32), 16000)
            clips.append({"category": cat, "file": name})
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump({"clips": clips}, f)


def run(tmp_path, *args):
    corpus = tmp_path / "corpus"
    if not corpus.exists():
        make_corpus(str(corpus))
    r = subprocess.run([sys.executable, os.path.join(h.TOOLS, "calibrate.py"), "--corpus", str(corpus),
                        "--presets", "digital", "--json"] + list(args),
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    return r


def test_pooled_keys_add_their_hours_and_report_each_key(tmp_path):
    one = run(tmp_path)
    assert one.returncode == 0, one.stderr
    d1 = json.loads(one.stdout)
    pooled = run(tmp_path, "--key-seeds", "3")
    assert pooled.returncode == 0, pooled.stderr
    d3 = json.loads(pooled.stdout)
    for r1, r3 in zip(d1["results"], d3["results"]):
        assert r3["category"] == r1["category"]
        assert abs(r3["hours"] - 3 * r1["hours"]) < 0.002
        assert len(r3["keys"]) == 3 and "keys" not in r1
        # seed 1 is the default key of the single run: same scores
        assert r3["keys"][0]["max_score"] == r1["max_score"]
        assert r3["max_score"] == max(k["max_score"] for k in r3["keys"])
    # the recommendation never sits below a score actually seen
    assert d3["recommended_threshold"] >= max(r["max_score"] for r in d3["results"])


def test_bad_key_seeds_is_one_line_and_exit_2(tmp_path):
    r = run(tmp_path, "--key-seeds", "-1")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "calibrate: argument --key-seeds: must be >= 0, not -1 (see calibrate.py --help)"]


def test_detections_are_counted_as_the_detector_holds_off():
    sys.path.insert(0, h.TOOLS)
    import calibrate

    s = np.zeros(1000)
    s[[10, 11, 12, 100, 300, 301, 700]] = 6.0  # upcrossings at 10, 100, 300, 700
    s[500] = 5.0
    assert calibrate.upcrossings(s, 5.5) == 4
    assert calibrate.episodes(s, 5.5, 250) == 3  # 100 falls within 10's hold-off
    assert calibrate.episodes(s, 5.5, 50) == 4
    assert calibrate.episodes(s, 4.5, 250) == 3  # 500 within 300's
    assert calibrate.episodes(s, 7.0, 250) == 0


def test_parallel_keys_give_the_same_counts_and_the_pooled_rate(tmp_path):
    one = run(tmp_path, "--key-seeds", "2")
    two = run(tmp_path, "--key-seeds", "2", "--jobs", "2")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    d1, d2 = json.loads(one.stdout), json.loads(two.stdout)
    assert d1["results"] == d2["results"]
    # the pooled rate is the rows' detections over their hours
    hours = sum(r["hours"] for r in d1["results"])
    assert abs(d1["hours"] - hours) < 0.002
    for t, rate in d1["false_alarms_per_hour"].items():
        n = sum(r["detections"].get(t, 0) for r in d1["results"])
        assert abs(rate - n / d1["hours"]) < 0.03 * rate  # hours are rounded to 3 places
    # too few hours for an empirical threshold: the highest score seen is the floor
    assert d1["empirical_threshold"] is None
    assert d1["recommended_threshold"] >= max(r["max_score"] for r in d1["results"])


def test_empirical_threshold_needs_the_hours_and_a_step_that_meets_the_target():
    sys.path.insert(0, h.TOOLS)
    import calibrate

    fine = calibrate.FINE
    found = np.where(fine < 6.0, 20, 3).astype(float)  # 3 detections from 6.0 up
    assert calibrate.empirical_threshold(found, 96.0, 0.1) == 6.0  # 3 / 96 h <= 0.1
    assert calibrate.empirical_threshold(found, 20.0, 0.1) is None  # 20 h cannot show 0.1/h
    assert calibrate.empirical_threshold(np.full(len(fine), 50.0), 96.0, 0.1) is None


def test_presets_take_a_microphone_azimuth_and_bad_ones_are_one_line(tmp_path):
    sys.path.insert(0, h.TOOLS)
    import calibrate

    assert calibrate.channel_for("spatial-speaker-1m@-25").mic_azimuth_deg == -25.0
    assert calibrate.channel_for("spatial-speaker-1m").mic_azimuth_deg is None
    for bad, says in (("nope", "unknown preset 'nope'"), ("digital@x", "bad azimuth"),
                      ("spatial-speaker-1m@120", "mic_azimuth_deg must be within")):
        r = run(tmp_path, "--presets", bad)
        assert r.returncode == 2
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("calibrate: ") and says in err[0], err


def test_default_channels_hold_the_near_smart_speaker_at_several_distinct_placements():
    sys.path.insert(0, h.TOOLS)
    import calibrate

    specs = calibrate.DEFAULT_PRESETS.split(",")
    cfgs = [calibrate.channel_for(spec) for spec in specs]  # every entry parses
    near = [c for spec, c in zip(specs, cfgs) if spec.partition("@")[0] == "spatial-speaker-1m"]
    assert len(near) == 5
    azimuths = {c.mic_azimuth_deg for c in near}
    assert len(azimuths) == 5 and None in azimuths  # the preset's own spot and four others
    assert {"digital", "living-room-6m", "spatial-speaker-6m"} <= set(specs)
