"""The corpus builder is deterministic, idempotent and makes what its manifest says."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_corpus", ROOT / "tools" / "build_corpus.py")
bc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bc)

HAVE_ESPEAK = shutil.which("espeak-ng") is not None
KIT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>TestKit</name>
 <instrumentList>
  <instrument><id>0</id><name>Kick</name>
   <instrumentComponent><layer><filename>kick.wav</filename></layer></instrumentComponent>
  </instrument>
  <instrument><id>1</id><name>Snare Rock</name><filename>snare.wav</filename></instrument>
  <instrument><id>2</id><name>Closed HH</name><filename>hat.wav</filename></instrument>
  <instrument><id>3</id><name>Crash</name><filename>missing.wav</filename></instrument>
 </instrumentList>
</drumkit_info>
"""


@pytest.fixture(scope="module")
def fake_roots(tmp_path_factory):
    """A tiny /usr/share/games and drumkits tree made of generated audio."""
    base = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(0)
    games = base / "games"
    for game, rel, f0 in (("supertux2", "music/a.ogg", 220.0), ("xmoto", "Musics/b.ogg", 330.0),
                          ("supertux2", "sounds/short.ogg", 440.0)):
        path = games / game / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        seconds = 3.0 if "short" in rel else 32.0
        t = np.arange(int(seconds * 22050)) / 22050
        x = 0.2 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
        x += 0.01 * rng.standard_normal(len(t))
        sf.write(str(path), np.stack([x, x], axis=1), 22050, format="OGG", subtype="VORBIS")
    kits = base / "drumkits"
    kit = kits / "TestKit"
    kit.mkdir(parents=True)
    (kit / "drumkit.xml").write_text(KIT_XML)
    t = np.arange(4410) / 44100
    sf.write(str(kit / "kick.wav"), np.exp(-t / 0.05) * np.sin(2 * np.pi * 60 * t), 44100)
    sf.write(str(kit / "snare.wav"), np.exp(-t / 0.03) * rng.standard_normal(len(t)), 44100)
    sf.write(str(kit / "hat.wav"), np.exp(-t / 0.01) * rng.standard_normal(len(t)), 44100)
    (kits / "NoXml").mkdir()
    return games, kits


def build(out, roots, seed=0, n=2):
    cats = bc.CATEGORIES if HAVE_ESPEAK else ("music", "drums")
    return bc.build_corpus(out, clips_per_category=n, seed=seed, games_root=roots[0],
                           drumkits_root=roots[1], categories=cats)


def test_kit_instruments_found_from_drumkit_xml(fake_roots):
    kits = bc.find_kits(fake_roots[1])
    assert [k.name for k, _ in kits] == ["TestKit"]
    inst = kits[0][1]
    assert {r: p.name for r, p in inst.items()} == {"kick": "kick.wav", "snare": "snare.wav",
                                                   "hat": "hat.wav"}


def test_short_tracks_and_sound_effects_are_not_music(fake_roots):
    names = [p.name for _, p, _ in bc.find_tracks(fake_roots[0])]
    assert names == ["a.ogg", "b.ogg"]


def test_same_seed_same_files_and_idempotent(tmp_path, fake_roots):
    m1 = build(tmp_path / "a", fake_roots)
    m2 = build(tmp_path / "b", fake_roots)
    assert m1["written"] == len(m1["clips"]) > 0
    assert [c["sha256"] for c in m1["clips"]] == [c["sha256"] for c in m2["clips"]]
    on_disk = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert on_disk["clips"] == m1["clips"]
    # a second run into the same directory keeps every clip and rewrites the same manifest
    mtimes = {c["file"]: (tmp_path / "a" / c["file"]).stat().st_mtime_ns for c in m1["clips"]}
    m3 = build(tmp_path / "a", fake_roots)
    assert m3["written"] == 0
    assert m3["clips"] == m1["clips"]
    assert all((tmp_path / "a" / f).stat().st_mtime_ns == t for f, t in mtimes.items())
    # a deleted clip comes back identical
    victim = tmp_path / "a" / m1["clips"][0]["file"]
    victim.unlink()
    m4 = build(tmp_path / "a", fake_roots)
    assert m4["written"] == 1 and m4["clips"] == m1["clips"]


def test_other_seed_other_corpus(tmp_path, fake_roots):
    m1 = build(tmp_path / "a", fake_roots, seed=0)
    m2 = build(tmp_path / "b", fake_roots, seed=1)
    assert [c["sha256"] for c in m1["clips"]] != [c["sha256"] for c in m2["clips"]]


def test_manifest_describes_the_clips(tmp_path, fake_roots):
    m = build(tmp_path / "c", fake_roots, n=2)
    cats = {c["category"] for c in m["clips"]}
    assert {"music", "drums"} <= cats
    for c in m["clips"]:
        info = sf.info(str(tmp_path / "c" / c["file"]))
        assert info.channels == 1 and info.subtype == "PCM_16"
        assert c["duration_s"] == pytest.approx(10.0, abs=1e-3) == info.duration
        assert c["samplerate"] == info.samplerate
        assert not Path(c["source_path"]).is_absolute()
        if c["category"] == "drums":
            assert 80 <= c["tempo_bpm"] <= 160 and c["pattern"] in bc.PATTERNS
            assert c["source_package"] == "hydrogen-drumkits"
        if c["category"] == "music":
            assert c["source_package"] in ("supertux-data", "xmoto-data")
            assert 0 <= c["offset_s"] <= 32 - 10
    assert m["categories"]["drums"] == 2


def test_drum_loop_is_steady_at_its_tempo(tmp_path, fake_roots):
    kit = bc.find_kits(fake_roots[1])[0]
    for bpm in (83, 127, 158):
        plan = {"category": "drums", "instruments": kit[1], "tempo_bpm": bpm, "pattern": "rock"}
        x, fs, _ = bc.render_drums(plan)
        assert len(x) == 10 * fs and np.max(np.abs(x)) <= 0.9
        # the loudness envelope repeats every beat: autocorrelation peaks at 60 / bpm
        env = signal.resample_poly(np.abs(x), 1, 441)  # 100 Hz envelope
        env = env - env.mean()
        ac = np.correlate(env, env, mode="full")[len(env) - 1:]
        lag = np.argmax(ac[30:200]) + 30  # 0.3..2 s
        beat = 100 * 60.0 / bpm
        assert min(abs(lag - k * beat) for k in (1, 2, 4)) <= 1.5, (bpm, lag, beat)


@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng not installed")
def test_speech_clip_is_speech_length_and_voice(tmp_path):
    plans = bc.plan_speech(2, seed=0)
    assert plans[0]["voice"] != plans[1]["voice"]
    x, fs, _ = bc.render_speech(plans[0])
    assert len(x) == int(10 * fs)
    frames = x[:len(x) // 400 * 400].reshape(-1, 400)
    active = np.mean(np.sqrt(np.mean(frames ** 2, axis=1)) > 0.02)
    assert 0.4 < active < 0.98  # talking, with pauses


def test_missing_sources_say_what_to_install(tmp_path, capsys):
    with pytest.raises(bc.CorpusError, match="apt-get install hydrogen-drumkits"):
        bc.build_corpus(tmp_path / "x", clips_per_category=1, drumkits_root=tmp_path / "none",
                        categories=("drums",))
    rc = bc.main([str(tmp_path / "x"), "--quick", "--categories", "music",
                  "--games-root", str(tmp_path / "none")])
    assert rc == 2
    assert "supertux-data" in capsys.readouterr().err


@pytest.mark.skipif(not (Path(bc.GAMES_ROOT) / "supertux2").is_dir()
                    or not Path(bc.DRUMKITS_ROOT).is_dir(),
                    reason="Debian game soundtracks / hydrogen-drumkits not installed")
def test_real_packages_one_clip_each(tmp_path):
    cats = bc.CATEGORIES if HAVE_ESPEAK else ("music", "drums")
    m = bc.build_corpus(tmp_path, clips_per_category=1, categories=cats)
    assert m["written"] == len(cats)
    for c in m["clips"]:
        x, fs = sf.read(str(tmp_path / c["file"]))
        assert 20 * np.log10(np.sqrt(np.mean(x ** 2))) > -45  # audible, real audio
