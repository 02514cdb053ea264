"""ViSQOL quality checks: windows, ranking, the embedder's quality floor, `airmark quality`."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from airmark import embed, evaluate, keys, quality
from embed_helpers import make_key, music_like

FS = 16000
WIN_S = 2.0  # shorter than the default 4 s windows: ViSQOL costs about 1.2 s per second


@pytest.fixture(scope="module")
def key():
    return make_key(1234)


@pytest.fixture(scope="module")
def api():
    return quality.visqol_api()


def chiptune(seconds, seed=0):
    """Three square-wave voices changing note every 250 ms: lines with deep valleys
    between them, the kind of host where a mark is heard first."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    x = np.zeros(n)
    step = FS // 4
    for voice, amp in ((1, 0.12), (2, 0.08), (3, 0.05)):
        for a in range(0, n, step):
            f = 110 * 2 ** (rng.integers(0, 24) / 12) * voice
            x[a:a + step] += amp * np.sign(np.sin(2 * np.pi * f * t[a:a + step]))
    return x


def test_candidate_windows_tile_the_segments():
    # a segment shorter than a window: one window centred on it
    assert quality.candidate_windows(10.0, [(3.0, 5.0)]) == [(2.0, 6.0)]
    # near the file's edges the window slides inside the file
    assert quality.candidate_windows(10.0, [(0.0, 1.0)]) == [(0.0, 4.0)]
    assert quality.candidate_windows(10.0, [(9.0, 10.0)]) == [(6.0, 10.0)]
    # a long segment: ceil(len / window) windows covering it
    w = quality.candidate_windows(60.0, [(0.0, 60.0)])
    assert len(w) == 15 and w[0][0] == 0.0 and w[-1][1] == 60.0
    assert all(abs((e - s) - 4.0) < 1e-9 for s, e in w)
    # a file shorter than a window: the whole file; under a second: nothing to measure
    assert quality.candidate_windows(2.5, [(0.5, 1.5)]) == [(0.0, 2.5)]
    assert quality.candidate_windows(0.5, [(0.0, 0.5)]) == []


def test_strengths_to_try():
    assert quality.strengths_to_try(4.0) == [4.0, 2.0, 0.0, -2.0, -4.0, -6.0, -8.0]
    assert quality.strengths_to_try(4.0, -7.0) == [4.0, 2.0, 0.0, -2.0, -4.0, -6.0, -7.0]
    assert quality.strengths_to_try(-8.0) == [-8.0]


def test_ranking_measures_where_the_mark_is_loudest(api):
    """Noise added over 6-8 s only: the one window measured is the one holding it, and it
    scores under a clean window."""
    rng = np.random.default_rng(3)
    x = music_like(12.0, FS)
    y = x.copy()
    y[6 * FS:8 * FS] += 0.05 * rng.standard_normal((2 * FS, 1)).astype(np.float32)
    one = quality.measure_arrays(x, y, FS, max_windows=1, api=api, window_s=WIN_S)
    assert one["candidates"] == 6
    assert [(w["start_s"], w["end_s"]) for w in one["windows"]] == [(6.0, 8.0)]
    clean = quality.measure_arrays(x, x, FS, [(0.0, 2.0)], api=api, window_s=WIN_S)
    assert clean["windows"][0]["mhr_db"] is None
    assert one["min_moslqo"] < clean["min_moslqo"] - 0.3


def test_silent_window_has_no_score(api):
    x = np.zeros(3 * FS)
    r = quality.measure_arrays(x, x, FS, api=api, window_s=WIN_S)
    assert r["min_moslqo"] is None and r["windows"][0]["moslqo"] is None
    with pytest.raises(quality.QualityError, match="at least 1 s"):
        quality.measure_arrays(x[:FS // 2], x[:FS // 2], FS, api=api)


def test_floor_lowers_the_strength_to_the_first_that_passes(tmp_path, key, api, monkeypatch):
    """The floor is put between the scores at +2 and 0 dB (measured here): the embedder
    must give up +4 and +2 and write the 0 dB mark, with that score in its sidecar."""
    monkeypatch.setattr(quality, "WINDOW_S", WIN_S)
    x = chiptune(6.0)
    scores = {}
    for s in (4.0, 2.0, 0.0):
        y, info = embed.embed_array(x, FS, key, start_s=2.0, duration_s=2.0, strength_db=s)
        scores[s] = quality.measure_arrays(x, y, FS, info["segments"], api=api,
                                           window_s=WIN_S)["min_moslqo"]
    assert scores[4.0] < scores[2.0] < scores[0.0]
    floor = (scores[2.0] + scores[0.0]) / 2
    src, dst = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
    sf.write(src, x, FS, subtype="FLOAT")
    seen = []
    info = quality.embed_to_quality(src, dst, key, floor, start_s=2.0, duration_s=2.0,
                                    on_try=lambda s, r: seen.append((s, r["min_moslqo"])))
    assert [s for s, _ in seen] == [4.0, 2.0, 0.0]
    assert [m for _, m in seen] == [scores[4.0], scores[2.0], scores[0.0]]
    assert info["strength_db"] == 0.0 and info["visqol"]["min_moslqo"] == scores[0.0]
    side = json.load(open(dst + ".airmark.json"))
    assert side["strength_db"] == 0.0 and side["visqol"]["floor"] == floor
    assert [t["strength_db"] for t in side["visqol"]["tries"]] == [4.0, 2.0, 0.0]
    y, _ = embed.embed_array(x, FS, key, start_s=2.0, duration_s=2.0, strength_db=0.0)
    assert np.allclose(sf.read(dst)[0], y, atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == ["in.wav", "out.wav", "out.wav.airmark.json"]


def test_floor_not_reached_writes_nothing(tmp_path, key, monkeypatch):
    monkeypatch.setattr(quality, "WINDOW_S", WIN_S)
    src, dst = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
    sf.write(src, chiptune(5.0), FS, subtype="PCM_16")
    with pytest.raises(quality.FloorNotReached, match="nothing written") as exc:
        quality.embed_to_quality(src, dst, key, 4.9, start_s=1.0, duration_s=2.0,
                                 min_strength_db=2.0)
    assert exc.value.exit_code == 1
    assert sorted(os.listdir(tmp_path)) == ["in.wav"]
    # an existing OUT is refused before any work, as embed_file does
    open(dst, "w").close()
    with pytest.raises(embed.EmbedError, match="--force"):
        quality.embed_to_quality(src, dst, key, 4.0)


def test_cli_quality_and_embed_floor(tmp_path, key, capsys, monkeypatch):
    from airmark.cli import main
    monkeypatch.setattr(quality, "WINDOW_S", WIN_S)
    keyfile = str(tmp_path / "k.json")
    keys.save(key, keyfile)
    src, dst = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
    sf.write(src, chiptune(5.0), FS, subtype="PCM_16")
    assert main(["embed", src, dst, "--key", keyfile, "--start", "1", "--duration", "2",
                 "--min-visqol", "4.9", "--min-strength", "2"]) == 1
    assert "nothing written" in capsys.readouterr().err and not os.path.exists(dst)
    assert main(["embed", src, dst, "--key", keyfile, "--start", "1", "--duration", "2",
                 "--min-visqol", "2.0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    got = info["visqol"]["min_moslqo"]
    assert info["strength_db"] == embed.DEFAULT_STRENGTH_DB and 2.0 <= got <= 5.0
    # `airmark quality` finds the sidecar's segment and gives the same score
    assert main(["quality", src, dst, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["segments"] == [[1.0, 3.0]]
    assert res["min_moslqo"] == got and res["pass"] is True
    assert main(["quality", src, dst, "--min-visqol", str(got + 0.001)]) == 1
    assert "NOT met" in capsys.readouterr().out
    assert main(["quality", src, str(tmp_path / "none.wav")]) == 2
    assert "no such file" in capsys.readouterr().err
    other = str(tmp_path / "other.wav")
    sf.write(other, music_like(5.0, 22050), 22050, subtype="PCM_16")
    assert main(["quality", src, other]) == 2
    assert "own original" in capsys.readouterr().err


def test_eval_visqol_subset_measures_around_the_mark(tmp_path, key):
    """The eval grid's quality column: one clip per category in turn, 4 s around the mark."""
    clips = []
    for i, (cat, x) in enumerate((("music", music_like(8.0, FS)), ("drums", chiptune(8.0)))):
        p = str(tmp_path / ("%s.wav" % cat))
        sf.write(p, x, FS, subtype="PCM_16")
        clips.append({"path": p, "file": os.path.basename(p), "category": cat,
                      "sha256": "%064x" % (i + 1)})
    opts = evaluate.EvalOptions(visqol_clips=2)
    r = evaluate.visqol_subset(clips, key, opts, n_clips=2)
    assert [c["clip"] for c in r["clips"]] == ["drums.wav", "music.wav"]
    assert r["segment_s"] == 4.0
    scores = [c["moslqo"] for c in r["clips"]]
    assert 1.0 < r["min_moslqo"] == min(scores) <= r["mean_moslqo"] < 5.0
    assert evaluate.visqol_subset(clips, key, opts, n_clips=0) is None


def test_cli_floors_must_be_finite(tmp_path, capsys):
    from airmark.cli import main
    for argv in (["quality", "a.wav", "b.wav", "--min-visqol", "nan"],
                 ["embed", "a.wav", "b.wav", "--key", "k.json", "--min-visqol", "nan"],
                 ["embed", "a.wav", "b.wav", "--key", "k.json", "--min-visqol", "4",
                  "--min-strength", "nan"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not a finite number" in err[0], err
    # a --min-strength the embedder would refuse only after many slow tries
    assert main(["embed", "a.wav", "b.wav", "--key", "k.json", "--min-visqol", "4",
                 "--min-strength", "-50"]) == 2
    assert "--min-strength" in capsys.readouterr().err


def test_quality_refuses_a_broken_sidecar(tmp_path, capsys):
    """A sidecar `airmark play` would refuse is an error, not a silent whole-file measure."""
    from airmark.cli import main
    src, dst = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
    sf.write(src, music_like(3.0, FS), FS, subtype="PCM_16")
    sf.write(dst, music_like(3.0, FS), FS, subtype="PCM_16")
    for segs, says in (([[2.0, 1.0]], "ends (1 s) before it starts (2 s)"),
                       ([["x", 1.0]], "non-negative number of seconds"),
                       ("all", "no 'segments' list")):
        with open(dst + ".airmark.json", "w") as f:
            json.dump({"key_id": "k", "segments": segs}, f)
        assert main(["quality", src, dst]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "out.wav.airmark.json" in err[0] and says in err[0], err
    assert quality._sidecar_segments(str(tmp_path / "none.json")) is None


def _fake_visqol(monkeypatch, score=4.5):
    """quality without ViSQOL: every window scores `score`."""
    monkeypatch.setattr(quality, "visqol_api", lambda: None)
    monkeypatch.setattr(quality, "_score", lambda pair, windows, api, progress: [
        dict(w, moslqo=score) for w in windows])


def test_floor_publishes_out_only_with_its_sidecar(tmp_path, key, monkeypatch):
    """As embed_file: OUT first, then its sidecar; if the sidecar fails OUT is put back."""
    from airmark import fsutil
    _fake_visqol(monkeypatch)
    src, dst = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
    sf.write(src, music_like(3.0, FS), FS, subtype="PCM_16")
    real_publish = fsutil.publish

    def publish(tmp, path):
        if path == dst + ".airmark.json":  # OUT's own, not the tries'
            raise OSError(28, "No space left on device")
        return real_publish(tmp, path)

    monkeypatch.setattr(fsutil, "publish", publish)
    with pytest.raises(embed.EmbedError, match="out.wav not written"):
        quality.embed_to_quality(src, dst, key, 4.0)
    assert sorted(os.listdir(tmp_path)) == ["in.wav"]
    monkeypatch.setattr(fsutil, "publish", real_publish)
    quality.embed_to_quality(src, dst, key, 4.0, strength_db=0.0)
    old = [open(p, "rb").read() for p in (dst, dst + ".airmark.json")]
    monkeypatch.setattr(fsutil, "publish", publish)
    with pytest.raises(embed.EmbedError, match="out.wav left as it was"):
        quality.embed_to_quality(src, dst, key, 4.0, overwrite=True)
    assert [open(p, "rb").read() for p in (dst, dst + ".airmark.json")] == old
    assert sorted(os.listdir(tmp_path)) == ["in.wav", "out.wav", "out.wav.airmark.json"]


def test_embed_floor_shows_its_two_bars_in_one_live_display(tmp_path, key, monkeypatch):
    """rich before 14.1 refuses a second live display while one is active (LiveError), and
    pyproject allows rich 12: the embedding and ViSQOL bars share one Progress."""
    import io
    import sys

    import rich.errors
    import rich.live
    from airmark.cli import main
    active = []
    real_start, real_stop = rich.live.Live.start, rich.live.Live.stop

    def start(self, *args, **kwargs):
        if active:
            raise rich.errors.LiveError("Only one live display may be active at once")
        active.append(self)
        return real_start(self, *args, **kwargs)

    def stop(self, *args, **kwargs):
        if self in active:
            active.remove(self)
        return real_stop(self, *args, **kwargs)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(rich.live.Live, "start", start)
    monkeypatch.setattr(rich.live.Live, "stop", stop)
    _fake_visqol(monkeypatch)
    keyfile = str(tmp_path / "k.json")
    keys.save(key, keyfile)
    src, dst = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
    sf.write(src, music_like(3.0, FS), FS, subtype="PCM_16")
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert main(["embed", src, dst, "--key", keyfile, "--min-visqol", "4"]) == 0
    assert not active and os.path.exists(dst + ".airmark.json")
