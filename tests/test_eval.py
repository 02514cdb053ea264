"""The evaluation machinery: statistics, timing windows, caching, report; end to end on a tiny grid.

A toy embedder (six tones under the host) and a toy detector (tone-to-neighbours ratio per hop)
stand in for the real ones so the bookkeeping is tested on its own; the real embedder and
detector run end to end when they are installed.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from airmark import eval_report, evaluate, keys

TONES_HZ = (1730.0, 2290.0, 2870.0, 3410.0, 3990.0, 4570.0)


class ToyResult:
    def __init__(self, events, scores, hop_s, duration_s):
        self.events, self.scores, self.hop_s, self.duration_s = events, scores, hop_s, duration_s


def toy_embed(x, samplerate, key, *, start_s=None, duration_s=None, strength_db=0.0):
    x = np.asarray(x, dtype=np.float64)
    y = x.copy()
    a, b = int(start_s * samplerate), int((start_s + duration_s) * samplerate)
    t = np.arange(b - a) / samplerate
    host = np.sqrt(np.mean(x[a:b] ** 2))
    amp = host * 10 ** ((-5 + strength_db) / 20) * np.sqrt(2 / len(TONES_HZ))
    for f0 in TONES_HZ:
        y[a:b] += amp * np.sin(2 * np.pi * f0 * t)
    return y, {"segments": [[start_s, start_s + duration_s]], "whr_db": -5.0 + strength_db}


def toy_detect(x, key, hop=2048):
    x = np.asarray(x, dtype=np.float64)
    f, _, z = signal.stft(x, 16000, nperseg=hop, noverlap=0, boundary=None, padded=False)
    p = np.abs(z) ** 2
    smooth = np.ones(4) / 4  # average 4 hops (0.5 s) so the noise estimate settles
    ratios = []
    for f0 in TONES_HZ:  # each tone against its neighbourhood; a room notch hits only some
        tone = np.abs(f - f0) < 20
        near = (np.abs(f - f0) < 200) & ~tone
        tone_p = signal.lfilter(smooth, [1.0], p[tone].max(axis=0))
        near_p = signal.lfilter(smooth, [1.0], p[near].mean(axis=0))
        ratios.append(10 * np.log10(tone_p / (near_p + 1e-20) + 1e-12))
    scores = np.median(ratios, axis=0)
    events, armed = [], True
    for i, s in enumerate(scores):
        if armed and s >= key["threshold"]:
            events.append({"t": (i + 1) * hop / 16000, "score": float(s)})
            armed = False
        elif s < key["threshold"]:
            armed = True
    return ToyResult(events, scores.astype(np.float32), hop / 16000, len(scores) * hop / 16000)


@pytest.fixture(scope="module")
def key():
    return keys.with_threshold(keys.generate(seed=3), 8.0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    fs = 22050
    sos = signal.butter(2, [200, 5000], "bandpass", fs=fs, output="sos")
    for cat, n in (("music", 2), ("drums", 2)):
        for i in range(n):
            x = 0.1 * signal.sosfilt(sos, rng.standard_normal(10 * fs))
            if cat == "drums":  # a steady 120 BPM click train on top
                x[::fs // 2] += 0.8
            (root / cat).mkdir(exist_ok=True)
            sf.write(str(root / cat / ("%s_%d.wav" % (cat, i))), x, fs, subtype="PCM_16")
    return root


def run(corpus, key, cache, grid, jobs=1):
    opts = evaluate.EvalOptions(jobs=jobs, visqol_clips=0)
    return evaluate.run_eval(corpus, key, grid=grid, opts=opts, cache_dir=cache,
                             embed_fn=toy_embed, detect_fn=toy_detect)


def test_wilson_interval_known_values():
    assert evaluate.wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-3)
    assert evaluate.wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-3)
    assert evaluate.wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-3)
    assert evaluate.wilson_interval(0, 0) == (0.0, 1.0)
    assert evaluate.poisson_upper(0) == pytest.approx(2.9957, abs=1e-3)


def test_upcrossings_count_rising_edges():
    got = evaluate._upcrossings([0, 1, 2, 1, 3, 0], np.array([0.5, 1.5, 2.5]))
    assert got.tolist() == [1, 2, 1]


def test_grid_is_the_cartesian_product():
    g = evaluate.Grid(distance_m=[1, 2], rt60_s=[0.3], snr_db=[5, 10, 20], codec=[None, "mp3"])
    pts = g.points()
    assert len(pts) == 12 and len({json.dumps(p, sort_keys=True) for p in pts}) == 12
    assert set(pts[0]) == set(evaluate.POINT_KEYS)


def test_eval_counts_detections_false_alarms_and_latency(corpus, key, tmp_path):
    grid = evaluate.Grid(distance_m=[1.0], rt60_s=[0.3], snr_db=[20.0, -30.0], drift_ppm=[300])
    s = run(corpus, key, tmp_path / "cache", grid)
    by_snr = {p["snr_db"]: p for p in s["points"]}
    assert by_snr[20.0]["rate"] == 1.0 and by_snr[20.0]["n"] == 4
    assert by_snr[-30.0]["rate"] == 0.0  # the tones drown 35 dB under the noise
    assert s["overall"]["false_alarms"] == 0  # no tone in unmarked audio
    assert s["overall"]["unmarked_hours"] == pytest.approx(8 * 10 / 3600, rel=0.01)
    for r in s["runs"]:
        if r["detected"]:
            # the event lies inside the mark (drift and delay mapped) or just after it
            assert -2.0 - 0.2 <= r["latency_s"] <= 2.0
            assert 0.5 <= r["mark_start_s"] <= 10 - 2 - 2
            assert r["mark_end_out_s"] > (r["mark_start_s"] + 2.0) * (1 + 300e-6)
    # threshold sweep: at the key's threshold the curve agrees with the counted detections
    c = s["curve"]
    i = int(np.argmin(np.abs(np.array(c["threshold"]) - key["threshold"])))
    assert c["detection"][i] == pytest.approx(0.5, abs=0.01)
    assert c["detection"][0] == 1.0 and c["fa_per_hour"][0] >= c["fa_per_hour"][-1]
    assert s["by_category"]["drums"]["n"] == 4


def test_channel_cache_reuses_unchanged_points(corpus, key, tmp_path):
    cache = tmp_path / "cache"
    g1 = evaluate.Grid(distance_m=[1.0, 2.0], rt60_s=[0.3], snr_db=[20.0])
    s1 = run(corpus, key, cache, g1)
    files = set((cache / "eval" / "channel").iterdir())
    assert len(files) == 2 * 4 * 2  # points x clips x (marked, unmarked)
    g2 = evaluate.Grid(distance_m=[1.0, 3.0], rt60_s=[0.3], snr_db=[20.0])
    s2 = run(corpus, key, cache, g2)
    new = set((cache / "eval" / "channel").iterdir()) - files
    assert len(new) == 4 * 2  # only the 3 m point was simulated
    same = [p for p in s2["points"] if p["distance_m"] == 1.0][0]
    old = [p for p in s1["points"] if p["distance_m"] == 1.0][0]
    assert same["detected"] == old["detected"] and same["false_alarms"] == old["false_alarms"]


def test_mic_placements_fit_every_grid_room_and_spread():
    from airmark import channel

    for d in evaluate.Grid().distance_m:
        cfg = channel.ChannelConfig.from_preset("living-room-6m", distance_m=d)
        places = [evaluate.mic_placement(cfg, q) for q in range(8)]
        assert places == [evaluate.mic_placement(cfg, q) for q in range(8)]  # reproducible
        assert places != [evaluate.mic_placement(cfg, q, seed=1) for q in range(8)]
        az = [p["mic_azimuth_deg"] for p in places]
        h = [p["mic_height_m"] for p in places]
        assert all(abs(a) <= evaluate.MAX_AZIMUTH_DEG for a in az)
        assert all(evaluate.MIC_HEIGHT_M[0] <= v <= evaluate.MIC_HEIGHT_M[1] for v in h)
        # low-discrepancy: the first four already cover both halves of each range
        assert max(az[:4]) - min(az[:4]) > 20 and max(h[:4]) - min(h[:4]) > 0.35
        for p in places:  # inside the room, off the walls, at the distance
            dim, src, mic = channel.room_geometry(cfg.replace(**p))
            assert np.linalg.norm(mic - src[0]) == pytest.approx(d, abs=1e-6)


def test_clips_of_a_category_take_the_placements_in_turn(corpus, key, tmp_path):
    grid = evaluate.Grid(distance_m=[2.0], rt60_s=[0.3], snr_db=[20.0])
    s = run(corpus, key, tmp_path / "cache", grid)
    for cat in ("music", "drums"):
        places = [(r["mic_azimuth_deg"], r["mic_height_m"]) for r in s["runs"]
                  if r["category"] == cat]
        assert len(places) == 2 and len(set(places)) == 2 and None not in places[0]
    opts = evaluate.EvalOptions(jobs=1, visqol_clips=0, positions=0)
    fixed = evaluate.run_eval(corpus, key, grid=grid, opts=opts, cache_dir=tmp_path / "cache",
                              embed_fn=toy_embed, detect_fn=toy_detect)
    assert {r["mic_azimuth_deg"] for r in fixed["runs"]} == {None}


def test_parallel_run_matches_serial(corpus, key, tmp_path):
    grid = evaluate.Grid(distance_m=[2.0], rt60_s=[0.4], snr_db=[10.0], drift_ppm=[-100])
    a = run(corpus, key, tmp_path / "a", grid, jobs=1)
    b = run(corpus, key, tmp_path / "b", grid, jobs=2)
    strip = lambda runs: [{k: v for k, v in r.items()} for r in runs]  # noqa: E731
    assert strip(a["runs"]) == strip(b["runs"])


def test_report_files(corpus, key, tmp_path):
    grid = evaluate.Grid(distance_m=[1.0, 6.1], rt60_s=[0.5], snr_db=[10.0], drift_ppm=[100])
    s = run(corpus, key, tmp_path / "cache", grid)
    assert s["target_result"] is not None and s["target_result"]["n"] == 4
    path = eval_report.write_report(s, tmp_path / "out", command="airmark eval --quick")
    text = path.read_text()
    assert "Wilson" in text and "6.1 m" in text and "airmark eval --quick" in text
    assert "## Target: 6.1 m, RT60 0.5 s, SNR 10 dB, +100 ppm" in text  # the drift run
    assert "4 seeded placements per point" in text
    for fn in eval_report.PLOTS.values():
        png = tmp_path / "out" / fn
        assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
        assert fn in text
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["overall"]["n"] == 8 and len(res["runs"]) == 8


def test_real_embedder_and_detector_end_to_end(corpus, tmp_path):
    from airmark.cli import main

    key = keys.generate(seed=5)
    kf = tmp_path / "key.json"
    keys.save(key, str(kf))
    rc = main(["eval", "--corpus", str(corpus), "--key", str(kf), "--out", str(tmp_path / "o"),
               "--distance", "1", "--rt60", "0.3", "--snr", "20", "--drift", "0",
               "--clips-per-category", "1", "--visqol-clips", "0", "--jobs", "1",
               "--cache-dir", str(tmp_path / "c")])
    assert rc == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["overall"]["n"] == 2
    assert all(r["whr_db"] is not None for r in res["runs"])
    # 1 m, RT60 0.3 s, 20 dB SNR: both marks found, neither unmarked copy fires
    assert res["overall"]["detected"] == 2 and res["overall"]["false_alarms"] == 0
    assert Path(tmp_path / "o" / "report.md").exists()


def test_categories_select_clips_and_keep_their_runs(corpus, key, tmp_path):
    grid = evaluate.Grid(distance_m=[2.0], rt60_s=[0.3], snr_db=[20.0])
    both = run(corpus, key, tmp_path / "cache", grid)
    opts = evaluate.EvalOptions(jobs=1, visqol_clips=0, categories=["drums"])
    drums = evaluate.run_eval(corpus, key, grid=grid, opts=opts, cache_dir=tmp_path / "cache",
                              embed_fn=toy_embed, detect_fn=toy_detect)
    assert {r["category"] for r in drums["runs"]} == {"drums"}
    # A drum clip meets the same placement and channel whether music is in the run or not.
    assert drums["runs"] == [r for r in both["runs"] if r["category"] == "drums"]
    with pytest.raises(evaluate.AudioError, match="no category 'talk' \\(it has drums, music\\)"):
        evaluate.load_corpus(corpus, categories=["drums", "talk"])


def test_categories_cli_error_is_one_line(corpus, tmp_path, capsys):
    from airmark.cli import main

    kf = tmp_path / "key.json"
    keys.save(keys.generate(seed=5), str(kf))
    rc = main(["eval", "--corpus", str(corpus), "--key", str(kf), "--out", str(tmp_path / "o"),
               "--categories", "speech", "--jobs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no category 'speech'" in err[0]
    assert not (tmp_path / "o").exists()


def test_by_rt60_pools_the_other_axes_and_reaches_the_report(corpus, key, tmp_path):
    grid = evaluate.Grid(distance_m=[2.0, 4.0], rt60_s=[0.3, 0.6], snr_db=[20.0])
    s = run(corpus, key, tmp_path / "cache", grid)
    rows = s["by_rt60"]
    assert [r["rt60_s"] for r in rows] == [0.3, 0.6]
    for r in rows:
        mine = [x for x in s["runs"] if x["point"]["rt60_s"] == r["rt60_s"]]
        assert r["n"] == len(mine) == 8
        assert r["detected"] == sum(x["detected"] for x in mine)
        for cat, a in r["by_category"].items():
            assert a["detected"] == sum(x["detected"] for x in mine if x["category"] == cat)
    assert sum(r["detected"] for r in rows) == s["overall"]["detected"]
    text = eval_report.write_report(s, tmp_path / "out").read_text()
    assert "## By RT60" in text and "| 0.6 s |" in text


def test_rooms_that_miss_their_rt60_are_reported(corpus, key, tmp_path):
    """In a 32 x 22 x 2.7 m room the model's decay strays from an RT60 of 0.3 s (shorter or
    longer by placement): the run lists such rooms and the report says so; rooms that meet
    their RT60 are not listed."""
    grid = evaluate.Grid(distance_m=[1.0, 30.0], rt60_s=[0.3], snr_db=[20.0])
    s = run(corpus, key, tmp_path / "cache", grid)
    misses = s["rt60_misses"]
    assert misses and all(m["point"]["distance_m"] == 30.0 for m in misses)
    assert all(abs(m["rt60_measured_s"] / m["rt60_s"] - 1) > 0.2 for m in misses)
    text = eval_report.write_report(s, tmp_path / "rep").read_text()
    assert "of the rooms missed their RT60 by more than 20 %" in text
    assert "30 m, RT60 0.30 s measured" in text
    ok = run(corpus, key, tmp_path / "cache", evaluate.Grid(distance_m=[1.0], rt60_s=[0.3],
                                                           snr_db=[20.0]))
    assert ok["rt60_misses"] == []


def test_cache_versions_cover_the_masking_model_and_the_audio_io(monkeypatch):
    """Marked clips are cached by the code that makes them: embed.py and its masking model
    psycho.py; channel outputs by channel.py and audio.py (codecs)."""
    real = evaluate._file_hash
    base = evaluate.code_versions()
    for name, which in (("psycho.py", 0), ("embed.py", 0), ("channel.py", 1), ("audio.py", 1)):
        monkeypatch.setattr(evaluate, "_file_hash", lambda p, name=name: (
            "changed" if os.path.basename(p) == name else real(p)))
        changed = evaluate.code_versions()
        assert changed[which] != base[which], name
        assert changed[1 - which] == base[1 - which], name
