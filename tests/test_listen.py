"""`airmark listen`: the board's core, hop by hop, on a live 16 kHz int16 source."""

import json
import sys

import numpy as np
import pytest

from airmark import audio, cli, detect, embed, keys, listen
from embed_helpers import make_key, music_like

FS = 16000


@pytest.fixture(scope="module")
def key():
    return make_key(1234)


@pytest.fixture(scope="module")
def marked(key):
    """8 s of music, a 2 s mark at 3 s, as the board would hear it (int16 at 16 kHz)."""
    y, _ = embed.embed_array(music_like(8.0, 48000), 48000, key, start_s=3.0, duration_s=2.0)
    return audio.to_detector_int16(y, 48000)


class ArraySource:
    """A microphone stand-in: the samples in uneven chunks, like a device's callbacks."""

    def __init__(self, samples, chunks=(1000, 37, 2048, 511), interrupt_at=None):
        self.samples = samples
        self.chunks = chunks
        self.pos = 0
        self.i = 0
        self.overflows = 0
        self.finished = False
        self.started = self.stopped = False
        self.interrupt_at = interrupt_at

    def start(self):
        self.started = True

    def read(self, timeout_s):
        if self.interrupt_at is not None and self.pos >= self.interrupt_at:
            raise KeyboardInterrupt
        if self.pos >= len(self.samples):
            self.finished = True
            return None
        n = self.chunks[self.i % len(self.chunks)]
        self.i += 1
        x = self.samples[self.pos:self.pos + n]
        self.pos += n
        return x

    def stop(self):
        self.stopped = True


def test_live_events_equal_detect_per_hop(key, marked):
    """Uneven chunks, the same hops: the same events and scores as `airmark detect
    --per-hop` on the same samples, and status lines every 2 s of audio."""
    src = ArraySource(marked)
    events, status = [], []
    summ = listen.listen(key, src, on_event=events.append, on_status=status.append,
                         status_every_s=2.0)
    ref = detect.detect_samples(marked, key, per_hop=True)
    assert events == ref.events and len(events) == 1
    assert abs(events[0]["t"] - 5.0) < 0.3
    assert summ["detections"] == 1 and summ["max_score"] == ref.summary()["max_score"]
    assert summ["duration_s"] == ref.summary()["duration_s"] and not summ["interrupted"]
    assert [s["t"] for s in status] == [2.0, 4.0, 6.0, 8.0]
    level = 10 * np.log10(np.mean((marked[:2 * FS] / 32768.0) ** 2))
    assert abs(status[0]["level_dbfs"] - level) < 0.1
    assert src.started and src.stopped


def test_duration_and_ctrl_c(key, marked):
    summ = listen.listen(key, ArraySource(marked), duration_s=4.0)
    assert summ["duration_s"] == 4.0 and summ["detections"] == 0  # the mark ends at 5 s
    src = ArraySource(marked, interrupt_at=3 * FS)
    summ = listen.listen(key, src)
    assert summ["interrupted"] and src.stopped
    assert 3.0 - 2048 / FS <= summ["duration_s"] <= 3.0 + 2048 / FS  # within a chunk


def test_cli_without_a_microphone_is_one_line(tmp_path, key, capsys, monkeypatch):
    kf = str(tmp_path / "k.json")
    keys.save(key, kf)

    class NoDevices:
        PortAudioError = RuntimeError

        @staticmethod
        def query_devices(device, kind):
            raise ValueError("No input device matching %r" % (device,))

    monkeypatch.setattr(listen, "_sounddevice", lambda: NoDevices)
    assert cli.main(["listen", "--key", kf, "--device", "usb mic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("airmark: no input device 'usb mic'")


def test_cli_json_lines_and_exit_codes(tmp_path, key, marked, capsys, monkeypatch):
    kf = str(tmp_path / "k.json")
    keys.save(key, kf)

    class Mic(ArraySource):
        def __init__(self, device=None):
            ArraySource.__init__(self, marked)
            self.name, self.rate = "test mic", FS

    monkeypatch.setattr(listen, "MicSource", Mic)
    assert cli.main(["listen", "--key", kf, "--json", "--status-every", "4"]) == 0
    lines = [json.loads(t) for t in capsys.readouterr().out.splitlines()]
    assert [ln["event"] for ln in lines] == ["status", "detection", "status", "summary"]
    assert lines[-1]["detections"] == 1
    assert cli.main(["listen", "--key", kf, "--duration", "4"]) == 1
    cap = capsys.readouterr()
    assert "0 detection(s) in 4.0 s" in cap.out and "listening on test mic" in cap.err


def test_status_level_is_summed_once_per_device_block(key, marked, monkeypatch):
    """The level for the status line costs one pass per device block, not a float copy of
    every 8 ms hop."""

    class CountingNumpy:
        dots = 0

        def __getattr__(self, name):
            return getattr(np, name)

        def dot(self, a, b):
            CountingNumpy.dots += 1
            return np.dot(a, b)

    monkeypatch.setattr(listen, "np", CountingNumpy())
    src = ArraySource(marked)
    status = []
    listen.listen(key, src, on_status=status.append, status_every_s=2.0)
    assert CountingNumpy.dots == src.i  # one per block read (a hop is 128 samples)
    assert src.i < len(marked) // 128
    level = 10 * np.log10(np.mean((marked[:2 * FS] / 32768.0) ** 2))
    assert abs(status[0]["level_dbfs"] - level) < 0.1


class Status:
    input_overflow = False


def fake_sounddevice(blocks, rate, *, active_after=True):
    """A stand-in sounddevice with one input device whose only rate is `rate`: the stream
    hands all `blocks` to the callback when it starts, then delivers nothing more; its
    `active` is then `active_after` (False: the device stopped, True: it went silent)."""

    class FakeStream:
        def __init__(self, samplerate, dtype, callback, **kw):
            assert samplerate == rate and dtype == ("int16" if rate == FS else "float32")
            self.callback = callback
            self.active = False

        def start(self):
            self.active = True
            for b in blocks:  # the device delivers everything at once
                self.callback(b, len(b), None, Status())
            self.active = active_after

        def stop(self):
            self.active = False

        def close(self):
            pass

    class FakeSD:
        PortAudioError = RuntimeError
        InputStream = FakeStream

        @staticmethod
        def query_devices(device, kind):
            return {"name": "%dk only" % (rate // 1000), "default_samplerate": float(rate)}

        @staticmethod
        def check_input_settings(device, channels, dtype, samplerate):
            if samplerate != rate:
                raise RuntimeError("Invalid sample rate")

    return FakeSD


def test_mic_source_resamples_a_device_that_cannot_do_16k(key, monkeypatch):
    """MicSource with a stand-in sounddevice whose only rate is 48 kHz: the callback's
    float blocks go through the queue and the streaming resampler to the very samples
    `airmark detect` makes of the file, so the events and scores are the same."""
    y, _ = embed.embed_array(music_like(8.0, 48000, channels=1)[:, 0], 48000, key,
                             start_s=3.0, duration_s=2.0)
    y = y.astype(np.float32)  # what the device delivers
    blocks = [y[i:i + 3072, None] for i in range(0, len(y), 3072)]
    monkeypatch.setattr(listen, "_sounddevice", lambda: fake_sounddevice(blocks, 48000))
    monkeypatch.setattr(listen, "QUEUE_BLOCKS", len(blocks) + 1)
    src = listen.MicSource()
    assert src.rate == 48000 and src.name == "48k only"
    heard, read = [], src.read

    def recording_read(timeout_s):
        heard.append(read(timeout_s))
        return heard[-1]

    src.read = recording_read
    events = []
    summ = listen.listen(key, src, duration_s=7.5, on_event=events.append)
    assert summ["duration_s"] == (int(7.5 * FS) // 128) * 128 / FS  # whole hops
    whole = audio.to_detector_int16(y, 48000)
    heard = np.concatenate(heard)
    assert len(heard) >= 7.5 * FS and np.array_equal(heard, whole[:len(heard)])
    ref = detect.detect_samples(whole, key)
    assert events == ref.events and len(events) == 1 and src.overflows == 0
    fed = detect.detect_samples(whole[:int(summ["duration_s"] * FS)], key)
    assert summ["max_score"] == fed.summary()["max_score"]


def test_cli_without_sounddevice_names_the_cause(tmp_path, key, capsys, monkeypatch):
    kf = str(tmp_path / "k.json")
    keys.save(key, kf)
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    assert cli.main(["listen", "--key", kf]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("airmark: airmark listen needs sounddevice")
    assert "pip install sounddevice" in err[0] and "libportaudio2" in err[0]
    assert err[0].endswith("import of sounddevice halted; None in sys.modules")


@pytest.mark.parametrize("active_after", [False, True], ids=["stopped", "silent"])
def test_a_microphone_that_stops_is_one_line_not_a_hang(tmp_path, key, capsys, monkeypatch,
                                                        active_after):
    """A USB microphone unplugged mid-run: its stream stops (or just goes quiet); listen
    ends with one line and exit 2 instead of waiting forever, --duration or not."""
    kf = str(tmp_path / "k.json")
    keys.save(key, kf)
    blocks = [np.zeros((1024, 1), dtype=np.int16)] * 4
    monkeypatch.setattr(listen, "_sounddevice",
                        lambda: fake_sounddevice(blocks, FS, active_after=active_after))
    monkeypatch.setattr(listen, "STALL_S", 0.2)
    for extra in ([], ["--duration", "60"]):
        assert cli.main(["listen", "--key", kf] + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and err[0].startswith("listening on 16k only")
        assert err[1] == ("airmark: 16k only stopped delivering audio (unplugged?)"
                          if not active_after else
                          "airmark: no audio from 16k only for 0.2 s (unplugged?)")
