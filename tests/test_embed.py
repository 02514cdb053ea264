"""The embedder: mark structure, placement, streaming, stereo, limiter, files, CLI."""

import inspect
import json
import os
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from airmark import audio, embed, keys
from airmark.embed import DEFAULT_STRENGTH_DB, Embedder, EmbedError, embed_array, embed_file
from embed_helpers import make_key, music_like

needs_ffmpeg = pytest.mark.usefixtures("ffmpeg")


@pytest.fixture(scope="module")
def key():
    return make_key(1234)


def _mark16(x, y, fs):
    """The embedded mark as the detector sees it: mono, 16 kHz."""
    d = np.asarray(y, np.float64) - np.asarray(x, np.float64)
    d = d.mean(axis=1) if d.ndim == 2 else d
    if fs != 16000:
        g = np.gcd(16000, fs)
        d = signal.resample_poly(d, 16000 // g, fs // g)
    return d


def test_defaults_in_sync():
    a = inspect.signature(Embedder).parameters
    b = inspect.signature(embed_array).parameters
    c = inspect.signature(embed_file).parameters
    for name in ("strength_db", "start_s", "duration_s"):
        assert a[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert a[name].default == b[name].default == c[name].default


def test_pattern_phases(key):
    ph = embed.pattern_phases(key)
    n, p = key["block_samples"], key["pattern_blocks"]
    assert ph.shape == (p, n // 2 + 1)
    mask = embed.band_mask(key)
    f = np.arange(n // 2 + 1) * 16000 / n
    assert np.array_equal(mask, (f >= key["band_hz"][0]) & (f <= key["band_hz"][1]))
    assert np.all(ph[:, ~mask] == 0)
    ref = 2 * np.pi * np.random.default_rng(key["noise_seed"]).random((p, n // 2 + 1))
    assert np.array_equal(ph[:, mask], ref[:, mask])


@pytest.mark.parametrize("fs", [16000, 44100])
def test_mark_follows_pattern_and_key(key, fs):
    """Blocks b and b+P of the mark correlate with sign s_b * s_(b+P), in the 16 kHz domain."""
    x = music_like(4.0, fs, channels=2, seed=1)
    y, info = embed_array(x, fs, key)
    m = _mark16(x, y, fs)
    n, p = key["block_samples"], key["pattern_blocks"]
    signs = embed.key_signs(key)
    nb = len(m) // n - p - 1
    blocks = m[:(nb + p) * n].reshape(-1, n)
    agree = 0
    for b in range(nb):
        c = np.dot(blocks[b], blocks[b + p])
        want = signs[b % len(signs)] * signs[(b + p) % len(signs)]
        agree += np.sign(c) == want
    assert agree == nb
    # The blocks carry the pattern phases: block b matches pattern b mod P best.
    ph = embed.pattern_phases(key)
    band = embed.band_mask(key)
    spec = np.fft.rfft(blocks[:2 * p] * embed.taper(n), axis=1)[:, band]
    for b in range(2 * p):
        coh = [abs(np.mean(np.exp(1j * (np.angle(spec[b]) - ph[q, band])))) for q in range(p)]
        assert int(np.argmax(coh)) == b % p and max(coh) > 0.8


def test_mark_has_no_jumps_at_block_edges(key):
    """The tapers make the sign flips between blocks continuous: the mark steps across a block
    edge no more than it does inside a block (without tapers the edge steps are the largest)."""
    x = music_like(1.0, 16000, channels=1, seed=2)[:, 0]
    y, _ = embed_array(x, 16000, key)
    step = np.abs(np.diff((y - x)[:62 * 256].astype(np.float64)))
    edges = np.arange(255, len(step), 256)
    assert step[edges].max() < 0.5 * np.percentile(np.delete(step, edges), 99)


@pytest.mark.parametrize("fs,channels", [(16000, 1), (44100, 2), (48000, 2), (22050, 1)])
def test_streaming_equals_one_shot(key, fs, channels):
    x = music_like(2.0, fs, channels=channels, seed=3)
    y, info = embed_array(x, fs, key, start_s=0.3, duration_s=1.0)
    emb = Embedder(key, fs, channels, start_s=0.3, duration_s=1.0)
    rng = np.random.default_rng(0)
    outs, fed, worst = [], 0, 0
    while fed < len(x):
        chunk = x[fed:fed + int(rng.integers(1, 2500))]
        outs.append(emb.process(chunk))
        fed += len(chunk)
        worst = max(worst, fed - sum(len(o) for o in outs))
    outs.append(emb.flush())
    ys = np.concatenate(outs)
    assert ys.dtype == np.float32 and ys.shape == x.shape
    assert np.array_equal(ys, y)
    assert worst <= emb.latency_frames == (256 * fs) // 16000
    assert emb.info == info


def test_mono_1d_and_dtype(key):
    x = music_like(0.5, 16000, channels=1)[:, 0].astype(np.float64)
    y, info = embed_array(x, 16000, key)
    assert y.shape == x.shape and y.dtype == np.float64
    assert info["segments"] == [[0.0, 0.5]] and info["key_id"] == key["key_id"]


@pytest.mark.parametrize("fs", [16000, 44100])
def test_segment_placement(key, fs):
    x = music_like(3.0, fs, channels=2, seed=4)
    y, info = embed_array(x, fs, key, start_s=1.0, duration_s=0.5)
    end = 1.0 + 32 * 256 / 16000          # 0.5 s rounds up to 32 blocks
    assert info["segments"] == [[1.0, pytest.approx(end)]]
    d = np.abs(y - x).max(axis=1)
    t = np.flatnonzero(d > 1e-6) / fs
    block = 256 / 16000
    assert t.min() >= 1.0 - block and t.max() <= end + block
    inside = d[int(1.05 * fs):int(1.45 * fs)]
    assert np.mean(inside > 1e-6) > 0.9
    with pytest.raises(EmbedError, match="after the end"):
        embed_array(x, fs, key, start_s=3.5, duration_s=1.0)


def test_stereo_mark_is_mid_only_and_capped(key):
    fs = 44100
    x = music_like(1.5, fs, channels=2, seed=5)
    y, _ = embed_array(x, fs, key)
    d = y.astype(np.float64) - x
    assert np.allclose(d[:, 0], d[:, 1], atol=1e-6)       # identical in L and R
    side_in = (x[:, 0].astype(np.float64) - x[:, 1]) / 2
    side_out = (y[:, 0].astype(np.float64) - y[:, 1]) / 2
    assert np.max(np.abs(side_out - side_in)) < 1e-6      # side untouched
    # A side-only host has no mid: mono downmix would unmask the mark, so it must vanish.
    mono = x[:, :1]
    side_only = np.concatenate([mono, -mono], axis=1)
    both = np.concatenate([mono, mono], axis=1)
    y_side, info_side = embed_array(side_only, fs, key)
    y_both, info_both = embed_array(both, fs, key)
    p_side = np.mean((y_side - side_only) ** 2)
    p_both = np.mean((y_both - both) ** 2)
    assert p_side < p_both * 1e-4  # more than 40 dB down (it is exactly 0 today)
    # One silent channel: its own threshold caps the mark (far below the mono-left case).
    left_only = np.concatenate([mono, np.zeros_like(mono)], axis=1)
    y_left, _ = embed_array(left_only, fs, key)
    assert np.mean((y_left - left_only) ** 2) < p_both / 1e4


def test_strength_scales_mark_power(key):
    x = music_like(1.5, 16000, channels=1, seed=6)
    y0, i0 = embed_array(x, 16000, key, strength_db=0.0)
    y6, i6 = embed_array(x, 16000, key, strength_db=6.0)
    ratio = np.sum((y6 - x) ** 2) / np.sum((y0 - x) ** 2)
    assert 10 * np.log10(ratio) == pytest.approx(6.0, abs=0.1)
    assert i6["whr_band_db"] - i0["whr_band_db"] == pytest.approx(6.0, abs=0.1)
    assert i0["whr_db"] < i0["whr_band_db"] or i0["whr_db"] < 0


def test_level_cap_follows_strength(key, monkeypatch):
    """On white noise the masking threshold sits ~1.5 dB under the host at +4 dB: the level
    cap holds the mark to WHR_CAP_DB, and moves with the strength."""
    x = 0.1 * np.random.default_rng(0).standard_normal((3 * 16000, 1))
    whr = {}
    for s in (DEFAULT_STRENGTH_DB, DEFAULT_STRENGTH_DB + 6):
        y, info = embed_array(x, 16000, key, strength_db=s)
        whr[s] = 10 * np.log10(np.mean((y - x) ** 2) / np.mean(x ** 2))
        assert info["capped_blocks"] > 0.9 * info["blocks"]
    assert whr[DEFAULT_STRENGTH_DB] == pytest.approx(embed.WHR_CAP_DB, abs=0.6)
    assert whr[DEFAULT_STRENGTH_DB + 6] - whr[DEFAULT_STRENGTH_DB] == pytest.approx(6.0, abs=0.1)
    monkeypatch.setattr(embed, "WHR_CAP_DB", 30.0)
    y, info = embed_array(x, 16000, key)
    assert info["capped_blocks"] == 0
    assert 10 * np.log10(np.mean((y - x) ** 2) / np.mean(x ** 2)) > whr[DEFAULT_STRENGTH_DB] + 1


def test_mark_is_highpassed_below_band(key, monkeypatch):
    """The blocks' edges spread the lowest bins below the band; the high-pass takes that out."""
    x = music_like(4.0, 16000, channels=1, seed=5)

    def low_to_band_db():
        y, _ = embed_array(x, 16000, key)
        f = np.fft.rfftfreq(len(y), 1 / 16000)
        p = np.abs(np.fft.rfft((y - x)[:, 0].astype(np.float64))) ** 2
        return 10 * np.log10(p[(f > 20) & (f < 100)].mean() / p[(f > 300) & (f < 6000)].mean())

    assert low_to_band_db() < -15
    monkeypatch.setattr(Embedder, "_highpass", lambda self, m: m)
    assert low_to_band_db() > -10


def test_default_strength_is_below_host(key):
    """At the default strength the mark stays well below a music-like host in the band."""
    x = music_like(2.0, 44100, channels=2, seed=7)
    _, info = embed_array(x, 44100, key)
    assert -25.0 < info["whr_band_db"] < -3.0
    assert info["whr_db"] < info["whr_band_db"] + 3


def test_limiter_never_exceeds_full_scale(key):
    fs = 16000
    t = np.arange(fs) / fs
    x = (0.9995 * np.sin(2 * np.pi * 700 * t) + 0.0005 * np.sign(np.sin(2 * np.pi * 3 * t)))
    y, info = embed_array(x.astype(np.float32), fs, key, strength_db=10.0)
    assert np.max(np.abs(y)) <= 1.0
    assert info["limited_samples"] > 0
    hot = np.concatenate([x * 1.5, x], axis=0)              # float host beyond full scale
    y2, info2 = embed_array(hot, fs, key)
    assert np.max(np.abs(y2)) <= 1.0 and info2["limited_samples"] > 0
    yl, count = embed.limit(np.array([0.9, -0.2, 0.5]), np.array([1.2, -0.3, 0.6]))
    assert count == 1 and 0.9 < yl[0] < 1.0 and list(yl[1:]) == [-0.3, 0.6]


def test_bad_parameters(key):
    with pytest.raises(EmbedError, match="sample rate"):
        Embedder(key, 8000, 1)
    with pytest.raises(EmbedError, match="duration"):
        Embedder(key, 16000, 1, duration_s=0)
    with pytest.raises(EmbedError, match="start"):
        Embedder(key, 16000, 1, start_s=-1)
    bad = dict(key, key_bits="0101")
    with pytest.raises(EmbedError, match="invalid key"):
        Embedder(bad, 16000, 1)
    emb = Embedder(key, 16000, 2)
    with pytest.raises(ValueError, match="shape"):
        emb.process(np.zeros((10, 1), np.float32))
    with pytest.raises(TypeError):
        emb.process(np.zeros((10, 2), np.int16))


def test_detector_finds_embedded_mark(key):
    """End to end at the default strength: 2 s mark, 44.1 kHz stereo, the board's int16 view."""
    from airmark import detect
    fs = 44100
    rng = np.random.default_rng(8)
    w = rng.standard_normal((4 * fs, 2))
    b, a = signal.butter(1, 1000 / (fs / 2))
    x = (0.05 * w + 0.2 * signal.lfilter(b, a, w, axis=0)).astype(np.float32)
    x += 0.5 * music_like(4.0, fs, channels=2, seed=8)
    y, _ = embed_array(x, fs, key, start_s=1.0, duration_s=2.0)
    res = detect.detect_samples(audio.to_detector_int16(y, fs), key)
    clean = detect.detect_samples(audio.to_detector_int16(x, fs), key)
    assert clean.events == []
    assert len(res.events) >= 1 and 2.5 <= res.events[0]["t"] <= 4.0
    assert np.max(res.scores) > 1.5 * np.max(clean.scores)


# ------------------------------------------------------------------------------------ files


@pytest.mark.parametrize("suffix,subtype,fs,channels", [
    (".wav", "PCM_16", 44100, 2),
    (".flac", "PCM_24", 48000, 1),
    (".ogg", "VORBIS", 16000, 2),
])
def test_embed_file_formats_and_sidecar(tmp_path, key, suffix, subtype, fs, channels):
    src = str(tmp_path / ("in" + suffix))
    dst = str(tmp_path / ("out" + suffix))
    x = music_like(1.5, fs, channels=channels, seed=9)
    sf.write(src, x, fs, subtype=subtype)
    seen = []
    info = embed_file(src, dst, key, start_s=0.25, duration_s=1.0,
                      progress=lambda done, total: seen.append((done, total)))
    out = sf.info(dst)
    assert (out.samplerate, out.channels, out.subtype) == (fs, channels, subtype)
    assert abs(out.frames - sf.info(src).frames) == 0
    assert seen and seen[-1][0] == sf.info(src).frames
    side = json.load(open(embed.sidecar_path(dst)))
    assert side["key_id"] == key["key_id"] and side["samplerate"] == fs
    assert side["segments"] == info["segments"] == [[0.25, 1.258]]
    assert side["strength_db"] == DEFAULT_STRENGTH_DB and side["whr_band_db"] == info["whr_band_db"]
    assert side["capped_blocks"] == info["capped_blocks"] <= side["blocks"] == info["blocks"]
    assert sorted(os.listdir(str(tmp_path))) == sorted(
        ["in" + suffix, "out" + suffix, "out" + suffix + ".airmark.json"])


def test_embed_file_same_as_array(tmp_path, key):
    fs = 44100
    x = music_like(1.2, fs, channels=2, seed=10)
    src, dst = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
    sf.write(src, x, fs, subtype="FLOAT")
    embed_file(src, dst, key, chunk_frames=4096)
    y_file, _ = sf.read(dst, dtype="float32")
    y_arr, _ = embed_array(x, fs, key)
    assert np.max(np.abs(y_file - y_arr)) <= 1e-6


@needs_ffmpeg
def test_embed_file_mp3(tmp_path, key):
    fs = 44100
    x = music_like(1.5, fs, channels=2, seed=11)
    src = str(tmp_path / "in.mp3")
    audio.write_audio(src, x, fs)
    info = embed_file(src, str(tmp_path / "out.wav"), key)
    out = sf.info(str(tmp_path / "out.wav"))
    assert out.samplerate == fs and out.channels == 2
    info2 = embed_file(src, str(tmp_path / "out.mp3"), key)
    assert audio.audio_info(str(tmp_path / "out.mp3"))["channels"] == 2
    assert info["segments"] and info2["segments"]


def test_embed_file_protects_input_and_output(tmp_path, key):
    x = music_like(0.3, 16000, channels=1)
    src = str(tmp_path / "in.wav")
    sf.write(src, x, 16000, subtype="PCM_16")
    before = open(src, "rb").read()
    with pytest.raises(EmbedError, match="input"):
        embed_file(src, src, key, overwrite=True)
    os.symlink(src, str(tmp_path / "link.wav"))
    with pytest.raises(EmbedError, match="input"):
        embed_file(src, str(tmp_path / "link.wav"), key, overwrite=True)
    with pytest.raises(EmbedError, match="input"):
        embed_file(src, str(tmp_path / "." / "in.wav"), key, overwrite=True)
    assert open(src, "rb").read() == before
    dst = str(tmp_path / "out.wav")
    open(dst, "wb").write(b"keep me")
    with pytest.raises(EmbedError, match="exists"):
        embed_file(src, dst, key)
    assert open(dst, "rb").read() == b"keep me"

    def boom(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_file(src, dst, key, overwrite=True, progress=boom)
    assert open(dst, "rb").read() == b"keep me"      # atomic: old OUT intact, no temp left
    assert sorted(os.listdir(str(tmp_path))) == ["in.wav", "link.wav", "out.wav"]


def test_memory_is_bounded(tmp_path, key):
    """Peak traced memory does not grow with the file's length (chunk of 16384 frames)."""
    peaks = []
    for seconds in (20, 80):
        src = str(tmp_path / ("in%d.wav" % seconds))
        n = seconds * 16000
        rng = np.random.default_rng(0)
        with sf.SoundFile(src, "w", 16000, 2, subtype="PCM_16") as f:
            for i in range(0, n, 160000):
                f.write((0.1 * rng.standard_normal((min(160000, n - i), 2))).astype(np.float32))
        tracemalloc.start()
        embed_file(src, str(tmp_path / "out.wav"), key, overwrite=True, chunk_frames=16384)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.2 * peaks[0]
    assert peaks[1] < 16e6


def test_cli_embed(tmp_path, key):
    from airmark.cli import main
    keyfile = str(tmp_path / "k.json")
    keys.save(key, keyfile)
    src, dst = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
    sf.write(src, music_like(1.0, 44100, channels=2), 44100, subtype="PCM_16")
    assert main(["embed", src, dst, "--key", keyfile, "--start", "0.2", "--duration", "0.5",
                 "--strength", "-3", "--json"]) == 0
    assert json.load(open(dst + ".airmark.json"))["strength_db"] == -3.0
    assert main(["embed", src, dst, "--key", keyfile]) == 2          # exists, no --force
    assert main(["embed", src, dst, "--key", keyfile, "--force"]) == 0
    assert main(["embed", src, src, "--key", keyfile, "--force"]) == 2


def test_cli_embed_reports_level_cap(tmp_path, key, capsys):
    from airmark.cli import main
    keyfile = str(tmp_path / "k.json")
    keys.save(key, keyfile)
    src, dst = str(tmp_path / "noise.wav"), str(tmp_path / "out.wav")
    sf.write(src, 0.1 * np.random.default_rng(1).standard_normal(16000), 16000, subtype="PCM_16")
    assert main(["embed", src, dst, "--key", keyfile, "--strength", "6"]) == 0
    side = json.load(open(dst + ".airmark.json"))
    assert side["capped_blocks"] > 0
    assert "level cap: %d of %d blocks turned down to keep the mark 5 dB under the host" % (
        side["capped_blocks"], side["blocks"]) in capsys.readouterr().out
    # past +11 dB the cap itself sits over the host: said, and warned about
    assert main(["embed", src, dst, "--key", keyfile, "--strength", "20", "--force"]) == 0
    cap = capsys.readouterr()
    assert "keep the mark 9 dB over the host" in cap.out
    assert "warning: at --strength +20.0 the level cap lets the mark reach 9.0 dB over" in cap.err


def test_cli_embed_warns_when_a_silent_host_takes_no_mark(tmp_path, key, capsys):
    """Digital silence has nothing to hide a mark under: the copy is written unchanged and
    the command says so on stderr (in --json mode too, leaving stdout to the JSON)."""
    from airmark.cli import main
    keyfile = str(tmp_path / "k.json")
    keys.save(key, keyfile)
    src, dst = str(tmp_path / "silence.wav"), str(tmp_path / "out.wav")
    sf.write(src, np.zeros(3 * 16000), 16000, subtype="PCM_16")
    assert main(["embed", src, dst, "--key", keyfile, "--json"]) == 0
    cap = capsys.readouterr()
    info = json.loads(cap.out)
    assert info["whr_db"] is None and info["segments"]
    assert "no mark went into" in cap.err and "silent" in cap.err
    assert not np.any(sf.read(dst)[0])
    loud = str(tmp_path / "music.wav")
    sf.write(loud, music_like(1.0, 16000), 16000, subtype="PCM_16")
    assert main(["embed", loud, str(tmp_path / "m.wav"), "--key", keyfile]) == 0
    assert "no mark went into" not in capsys.readouterr().err


def test_outputs_get_ordinary_permissions(tmp_path, key):
    """The atomic write goes through a temporary file made private by mkstemp; the marked
    file and its sidecar still get what the umask gives a new file, and an overwritten file
    keeps its own mode."""
    import stat
    keyfile = str(tmp_path / "k.json")
    keys.save(key, keyfile)
    src, dst = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
    sf.write(src, music_like(1.0, 44100), 44100, subtype="PCM_16")
    old = os.umask(0o022)
    try:
        embed_file(src, dst, key)
        mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
        assert mode(dst) == 0o644 and mode(dst + ".airmark.json") == 0o644
        os.chmod(dst, 0o640)
        embed_file(src, dst, key, overwrite=True)
        assert mode(dst) == 0o640
        os.umask(0o077)
        embed_file(src, str(tmp_path / "private.wav"), key)
        assert mode(str(tmp_path / "private.wav")) == 0o600
    finally:
        os.umask(old)
