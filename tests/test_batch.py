"""firmware/airmark_batch.py: many hops at once must be the per-hop core, integer for integer."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

import signals as sg
from airmark import cli, detect, fw

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


def core():
    return fw.module("airmark_detector")


def batch():
    return fw.module("airmark_batch")


def state(det):
    """Everything a detector carries from one hop to the next."""
    return (list(det._st), list(det._da), np.asarray(det._feat_buf).tolist(), list(det._xf),
            list(det._nums), list(det._cprev), [list(v) for v in det._cblk],
            [list(v) for v in det._qs], det.hops, det.samples, det._hold, det.score_q8,
            det.best_hyp)


def per_hop(det, x):
    h = det.hop_samples
    scores, events = [], []
    for i in range(len(x) // h):
        ev = det.feed(x[i * h:(i + 1) * h])
        scores.append(det.score_q8)
        if ev:
            events.append(ev)
    return scores, events


def in_chunks(det, x, sizes_hops):
    """Feed x in chunks of the given hop counts, alternating batch and per-hop if asked:
    a negative size goes through det.feed."""
    h = det.hop_samples
    scores, events, pos = [], [], 0
    for n in sizes_hops:
        part = x[pos * h:(pos + abs(n)) * h]
        if n < 0:
            s, e = per_hop(det, part)
        else:
            s, e = batch().feed_hops(det, part)
            s = [int(v) for v in s]
        scores += s
        events += e
        pos += abs(n)
    return scores, events


def golden(name="golden"):
    d = os.path.join(os.path.dirname(GOLDEN), name)
    with open(os.path.join(d, "key.json")) as f:
        key = json.load(f)
    x, fs = sf.read(os.path.join(d, "input.wav"), dtype="int16")
    assert fs == 16000
    return key, x


@pytest.mark.parametrize("name", ["golden", "golden-dw1"])
@pytest.mark.parametrize("sizes", [[625], [1] * 30 + [595], [7, 300, 318], [250, 375]])
def test_batch_is_the_per_hop_core_on_the_golden_vector(sizes, name):
    key, x = golden(name)
    ref = core().Detector(key, use_kernels=False)
    want_scores, want_events = per_hop(ref, x)
    det = core().Detector(key, use_kernels=False)
    got_scores, got_events = in_chunks(det, x, sizes)
    assert len(want_events) == 1 and max(want_scores) > 0
    assert got_scores == want_scores
    assert got_events == want_events
    assert state(det) == state(ref)


def test_batch_and_per_hop_hand_over_state_with_drift_and_two_marks(key):
    """Two marks (two events, hold-off crossing chunk borders), +250 ppm drift, and the two
    paths taking turns: the scores, events and final state match the per-hop core."""
    host = sg.music_like(14.0, seed=3)
    y, _ = sg.embed_reference(host, key, 1.0, -6.0)
    y2, _ = sg.embed_reference(y, key, 8.0, -6.0, seed_offset=0)
    x = sg.to_int16(sg.resample_ppm(y2, 250))
    ref = core().Detector(key, use_kernels=False)
    want_scores, want_events = per_hop(ref, x)
    assert len(want_events) == 2 and ref.best_hyp != 3
    nhops = len(x) // ref.hop_samples
    rng = np.random.default_rng(0)
    sizes, left, flip = [], nhops, False
    while left:
        n = min(left, int(rng.integers(1, 400)))
        sizes.append(-n if flip else n)
        flip = not flip
        left -= n
    det = core().Detector(key, use_kernels=False)
    got_scores, got_events = in_chunks(det, x, sizes)
    assert got_scores == want_scores
    assert got_events == want_events
    assert state(det) == state(ref)


def test_detect_samples_batch_and_per_hop_agree(key):
    host = sg.music_like(9.0, seed=1)
    y, seg = sg.embed_reference(host, key, 3.0, -8.0)
    x = sg.to_int16(y)
    fast = detect.detect_samples(x, key)
    slow = detect.detect_samples(x, key, per_hop=True)
    assert fast.events and fast.events == slow.events
    assert seg[0] < fast.events[0]["t"] <= seg[1] + 0.5
    assert np.array_equal(fast.scores, slow.scores)
    clean = detect.detect_samples(sg.to_int16(host), key)
    assert clean.events == [] and clean.max_score < key["threshold"]


@pytest.mark.parametrize("per_hop", [False, True], ids=["batch", "per-hop"])
def test_a_run_fed_in_odd_chunks_is_the_whole_run(key, per_hop):
    """DetectRun carries the part of a chunk short of a hop into the next one: chunks of
    any length give the scores and events of one call over the whole signal."""
    host = sg.music_like(9.0, seed=3)
    y, _ = sg.embed_reference(host, key, 3.0, -8.0)
    x = sg.to_int16(y)
    whole = detect.detect_samples(x, key, per_hop=per_hop)
    run = detect.DetectRun(key, per_hop=per_hop)
    sizes = [1, 127, 129, 5000, 3, 20000]
    i = k = 0
    while i < len(x):
        run.feed(x[i:i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    got = run.result()
    assert whole.events and got.events == whole.events
    assert np.array_equal(got.scores, whole.scores) and got.duration_s == whole.duration_s


def test_detect_file_streams_what_loading_the_file_gives(tmp_path, key):
    """detect_file (what `airmark detect` runs) == detect_samples over the loaded file, for
    a 44.1 kHz stereo file longer than the stream's 10 s chunks."""
    from airmark import audio

    host = sg.music_like(23.0, seed=4)
    y, _ = sg.embed_reference(host, key, 12.0, -8.0)  # the mark straddles a chunk boundary
    fs = 44100
    from scipy import signal
    y44 = signal.resample_poly(y, 441, 160)
    wav = tmp_path / "m.wav"
    sf.write(str(wav), np.stack([y44, 0.5 * y44], 1), fs, subtype="PCM_16")
    loaded = detect.load_for_detector(str(wav))
    data, rate, _ = audio.read_audio(str(wav))
    assert np.array_equal(loaded, audio.to_detector_int16(data, rate))
    want = detect.detect_samples(loaded, key)
    seen = []
    got = detect.detect_file(str(wav), key, progress=lambda done, total: seen.append((done, total)))
    assert want.events and got.events == want.events
    assert np.array_equal(got.scores, want.scores)
    assert seen[-1][0] == seen[-1][1] == pytest.approx(len(y44) / fs)


def test_detect_file_memory_does_not_grow_with_the_file(tmp_path, key):
    """Peak traced memory of detect_file on 40 s and on 160 s of 48 kHz audio: the same,
    within a chunk's worth (loading the file whole took 40x the samples' bytes)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    peaks = []
    for seconds in (10, 40, 160):  # the first run only warms up (imports, module loading)
        wav = tmp_path / ("n%d.wav" % seconds)
        with sf.SoundFile(str(wav), "w", 48000, 1, subtype="PCM_16") as f:
            for _ in range(seconds // 10):
                f.write((rng.standard_normal(480000) * 0.1).astype(np.float32))
        tracemalloc.start()
        try:
            detect.detect_file(str(wav), key)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    # scores (4 bytes a hop) are all that grows: 120 s more is 60 KB (measured: 10.37 and
    # 10.51 MB, one 10 s chunk of work)
    assert peaks[2] < peaks[1] + 500_000, peaks
    assert peaks[2] < 160 * 48000 * 4 / 2  # under half the file's float32 samples (30.7 MB)


def test_batch_refuses_the_ulab_path(core_ulab, key):
    det = core_ulab.Detector(key, use_kernels=False)
    assert not batch().usable(det)
    with pytest.raises(ValueError):
        batch().feed_hops(det, np.zeros(det.hop_samples * 4, dtype=np.int16))


def test_cli_detect_per_hop_flag_gives_the_same_lines(tmp_path, key, capsys):
    from airmark import keys

    keyfile = tmp_path / "k.json"
    keys.save(key, str(keyfile))
    host = sg.music_like(7.0, seed=2)
    y, _ = sg.embed_reference(host, key, 2.0, -8.0)
    wav = tmp_path / "m.wav"
    sf.write(str(wav), sg.to_int16(y), 16000, subtype="PCM_16")
    outs = []
    for extra in ([], ["--per-hop"]):
        rc = cli.main(["detect", str(wav), "--key", str(keyfile), "--json"] + extra)
        assert rc == 0
        lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
        outs.append(lines)
    assert outs[0][:-1] == outs[1][:-1] and outs[0][0]["event"] == "detection"
    assert outs[0][-1]["path"] == "batch" and outs[1][-1]["path"] == "per-hop"


def test_batch_module_is_not_shipped_to_boards():
    from airmark import flashing

    for runtime in ("micropython", "circuitpython"):
        _entry, modules = flashing.firmware_modules(runtime)
        assert "airmark_detector" in modules and "airmark_batch" not in modules
