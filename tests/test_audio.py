"""Audio I/O: soundfile formats, ffmpeg formats, atomic writes, the detector's int16 view."""

import os

import numpy as np
import pytest
import soundfile as sf

from airmark import audio
from airmark.errors import AudioError

needs_ffmpeg = pytest.mark.usefixtures("ffmpeg")


def _signal(frames, channels, fs=44100, amp=0.5):
    t = np.arange(frames) / fs
    x = np.stack([amp * np.sin(2 * np.pi * (440.0 + 110 * c) * t) for c in range(channels)], 1)
    return x.astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".aiff", ".flac"])
def test_pcm16_writes_what_libsndfile_would(tmp_path, suffix):
    # AudioWriter rounds PCM_16 itself (faster); the file must be the one libsndfile writes
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.02, 1.02, (20000, 2)).astype(np.float32)
    ties = (np.arange(-40, 40) + 0.5) / 32768
    x[:ties.size, 0] = ties
    x[:4, 1] = [1.0, -1.0, 32767.5 / 32768, -32768.5 / 32768]
    ours, ref = str(tmp_path / ("a" + suffix)), str(tmp_path / ("b" + suffix))
    with audio.AudioWriter(ours, 44100, 2, subtype="PCM_16") as w:
        w.write(x[:7000])
        w.write(x[7000:])
    assert w._round16 is not None  # the fast path ran
    sf.write(ref, x, 44100, subtype="PCM_16")
    a, _ = sf.read(ours, dtype="int16")
    b, _ = sf.read(ref, dtype="int16")
    assert np.array_equal(a, b)


@pytest.mark.parametrize("suffix,subtype,channels,tol", [
    (".wav", "PCM_16", 2, 1 / 32768),
    (".wav", "FLOAT", 1, 0.0),
    (".flac", "PCM_24", 2, 1 / 2 ** 23),
    (".ogg", "VORBIS", 2, None),
])
def test_roundtrip_soundfile(tmp_path, suffix, subtype, channels, tol):
    x = _signal(4410, channels)
    path = str(tmp_path / ("a" + suffix))
    audio.write_audio(path, x, 44100, subtype=subtype)
    y, fs, info = audio.read_audio(path)
    assert fs == 44100 and y.dtype == np.float32 and y.shape[1] == channels
    assert info["subtype"] == subtype and info["channels"] == channels
    if tol is None:  # lossy: same length within the codec's padding, similar level
        assert abs(y.shape[0] - x.shape[0]) < 2048
        assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=0.1)
    else:
        assert y.shape == x.shape
        assert np.max(np.abs(y - x)) <= tol + 1e-7
    assert audio.output_subtype(info, str(tmp_path / ("b" + suffix))) == subtype


@needs_ffmpeg
@pytest.mark.parametrize("suffix", [".mp3", ".m4a"])
def test_roundtrip_ffmpeg(tmp_path, suffix):
    x = _signal(44100, 2)
    path = str(tmp_path / ("a" + suffix))
    audio.write_audio(path, x, 44100)
    info = audio.audio_info(path)
    assert info["samplerate"] == 44100 and info["channels"] == 2 and info["subtype"] is None
    y, fs, info = audio.read_audio(path)
    assert fs == 44100 and y.shape[1] == 2 and abs(y.shape[0] - 44100) < 4096
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=0.15)
    with audio.AudioReader(path, blocksize=1000) as r:
        blocks = list(r)
    assert all(b.shape[0] <= 1000 for b in blocks)
    assert np.array_equal(np.concatenate(blocks), y)


def test_reader_blocks_equal_whole(tmp_path):
    x = _signal(10007, 2)
    path = str(tmp_path / "a.flac")
    audio.write_audio(path, x, 44100, subtype="PCM_24")
    with audio.AudioReader(path, blocksize=1024) as r:
        blocks = list(r)
    assert [b.shape[0] for b in blocks[:-1]] == [1024] * (len(blocks) - 1)
    whole, _, _ = audio.read_audio(path)
    assert np.array_equal(np.concatenate(blocks), whole)


def test_errors_are_one_line(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        audio.read_audio(str(tmp_path / "missing.wav"))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError) as exc:
        audio.read_audio(str(bad))
    assert "\n" not in str(exc.value)
    with pytest.raises(AudioError, match="unknown audio format"):
        audio.write_audio(str(tmp_path / "x.xyz"), _signal(10, 1), 44100)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = str(tmp_path / "out.wav")
    audio.write_audio(path, _signal(100, 1), 44100)
    before = open(path, "rb").read()
    with pytest.raises(RuntimeError):
        with audio.AudioWriter(path, 44100, 1) as w:
            w.write(_signal(5000, 1, amp=0.1))
            raise RuntimeError("interrupted")
    assert open(path, "rb").read() == before
    assert os.listdir(str(tmp_path)) == ["out.wav"]


@pytest.mark.parametrize("fs,channels,frames", [(44100, 2, 44100 * 3 + 123), (48000, 1, 48000 * 2 + 7),
                                                 (22050, 1, 22050 * 2 + 1), (96000, 2, 96000 + 11),
                                                 (16000, 2, 16000 * 2 + 5), (32000, 1, 999),
                                                 (44100, 1, 10)])
def test_detector_stream_is_the_whole_file_conversion_bit_for_bit(fs, channels, frames):
    """DetectorStream over blocks of any size == to_detector_int16 over the whole signal,
    with chunks short enough that every block and chunk boundary lands somewhere new."""
    x = (np.random.default_rng(fs + frames).standard_normal((frames, channels)) * 0.3)
    x = x.astype(np.float32)
    want = audio.to_detector_int16(x, fs)
    for chunk_s, block in ((10.0, 65536), (0.05, 1000), (0.3, 4097), (0.02, 777)):
        stream = audio.DetectorStream(fs, chunk_s=chunk_s)
        got = [stream.feed(x[i:i + block]) for i in range(0, frames, block)] + [stream.finish()]
        got = np.concatenate(got)
        assert got.dtype == np.int16 and np.array_equal(got, want), (chunk_s, block)


def test_to_detector_int16():
    fs = 44100
    t = np.arange(fs) / fs
    x = np.stack([0.25 * np.sin(2 * np.pi * 1000 * t), 0.25 * np.sin(2 * np.pi * 1000 * t)], 1)
    y = audio.to_detector_int16(x.astype(np.float32), fs)
    assert y.dtype == np.int16 and y.shape == (16000,)
    spec = np.abs(np.fft.rfft(y[1000:15000] * np.hanning(14000)))
    assert np.argmax(spec) * 16000 / 14000 == pytest.approx(1000, abs=2)
    assert np.max(np.abs(y[1000:15000])) == pytest.approx(0.25 * 32768, rel=0.01)
    # mono downmix: opposite channels cancel; full scale clips to the int16 range, no wrap
    assert np.all(audio.to_detector_int16(np.stack([x[:, 0], -x[:, 0]], 1), fs) == 0)
    loud = audio.to_detector_int16(np.full(16000, 1.5), 16000)
    assert loud.max() == 32767
