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
    return (list(det._st), list(det._da), np.asarray(det._feat_buf).tolist(), list(det._xa),
            det.hops, det.samples, det._hold, det.score_q8, det.best_hyp)


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
