r"""Play marked audio through the sound card while monitoring the board, and score the board.

``airmark embed`` writes a sidecar ``OUT.airmark.json`` next to its output:
``{"key_id", "segments": [[start_s, end_s], ...], "samplerate", ...}``.
:func:`load_sidecar` reads it defensively. While the file plays, a
:class:`airmark.monitor.Monitor` collects the board's detections; each detection
is placed on the file's time axis by its host arrival time,

.. math::

    t_\text{play} = t_\text{arrival} - t_0,

where :math:`t_0` is the time the first sample reached the loudspeaker (from the
audio output). A segment :math:`[s, e]` is a *hit* when a detection falls in
:math:`[e - 0.5\,\text{s},\ e + 1.5\,\text{s}]` (``WINDOW_S``); its latency is
:math:`t_\text{play} - e` (it includes sound travel, the board's hop and USB).
Each detection counts for one segment at most. Detections outside every marked span
:math:`[s, e + 1.5\,\text{s}]` are reported as *unexpected*; extra ones inside a span
are not (a long segment, e.g. a whole marked song, is detected again every few
seconds; the first detection in its end window scores it).

The audio output is pluggable: :class:`SoundDeviceOutput` (sounddevice/PortAudio,
imported only when used) or any object with ``start(data, samplerate) -> t0``,
``active`` and ``stop()`` -- the tests hand the samples through the simulated room
into a virtual board instead.
"""

import json
import math
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field

from .errors import AirmarkError

WINDOW_S = (0.5, 1.5)
"""A detection counts for a segment ending at e when it lands in [e - 0.5 s, e + 1.5 s]."""


class PlayError(AirmarkError):
    """The file, its sidecar or the audio output cannot be used."""


class AudioOutputMissing(PlayError):
    """sounddevice or the PortAudio library is not installed."""


# ---------------------------------------------------------------- sidecar


@dataclass
class Sidecar:
    """The marked segments of a file (seconds) and the key they were made with."""

    path: str
    key_id: object
    segments: list
    samplerate: object = None
    raw: dict = field(default_factory=dict)


def sidecar_path(audio_path):
    """``FILE.airmark.json``, where ``airmark embed`` writes it."""
    return str(audio_path) + ".airmark.json"


def _seconds(v, where, path):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise PlayError("%s: %s must be a non-negative number of seconds, got %r" % (path, where, v))
    return float(v)


def _segment(item, i, path):
    if isinstance(item, dict):
        for a, b in (("start_s", "end_s"), ("start", "end")):
            if a in item and b in item:
                item = (item[a], item[b])
                break
        else:
            raise PlayError("%s: segments[%d] needs start_s and end_s, got %r" % (path, i, item))
    if not isinstance(item, (list, tuple)) or len(item) != 2:
        raise PlayError("%s: segments[%d] must be [start_s, end_s], got %r" % (path, i, item))
    s = _seconds(item[0], "segments[%d] start" % i, path)
    e = _seconds(item[1], "segments[%d] end" % i, path)
    if e <= s:
        raise PlayError("%s: segments[%d] ends (%g s) before it starts (%g s)" % (path, i, e, s))
    return (s, e)


def load_sidecar(path):
    """Read and check a sidecar; PlayError names the file and the problem."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise PlayError("%s: no sidecar (write the file with `airmark embed`, which puts the marked "
                        "segments there)" % path) from None
    except (OSError, ValueError) as exc:
        raise PlayError("%s: unreadable sidecar: %s" % (path, exc)) from None
    if not isinstance(raw, dict):
        raise PlayError("%s: sidecar must be a JSON object" % path)
    segs = raw.get("segments")
    if not isinstance(segs, list):
        raise PlayError("%s: sidecar has no 'segments' list" % path)
    segments = sorted(_segment(item, i, path) for i, item in enumerate(segs))
    key_id = raw.get("key_id")
    if key_id is not None and not isinstance(key_id, str):
        key_id = str(key_id)
    rate = raw.get("samplerate")
    if not (isinstance(rate, int) and not isinstance(rate, bool) and rate > 0):
        rate = None
    return Sidecar(path=path, key_id=key_id, segments=segments, samplerate=rate, raw=raw)


# ---------------------------------------------------------------- scoring


@dataclass
class SegmentResult:
    loop: int
    index: int
    start_s: float
    end_s: float
    hit: bool
    latency_s: object = None
    score: object = None
    t_s: object = None


@dataclass
class Detection:
    """A board detection on the file's time axis (``t_s``), in pass ``loop``."""

    loop: int
    t_s: float
    score: object
    key: object
    record: dict = field(default_factory=dict, repr=False)


def score_segments(segments, detections, *, window_s=WINDOW_S, loop=0):
    """Match detections (``t_s`` on the file's axis) to segments.

    Returns ``(results, unexpected)``: one SegmentResult per segment, in order, and the
    detections outside every marked span ``[start, end + after]`` (false alarms, or a
    board listening late). Segments are served in order; each takes the earliest unused
    detection inside its window. Further detections inside a long marked span (a whole
    marked song is detected again every few seconds) are neither hits nor unexpected.
    """
    before, after = window_s
    used = [False] * len(detections)
    order = sorted(range(len(detections)), key=lambda i: detections[i].t_s)
    results = []
    for idx, (s, e) in enumerate(segments):
        hit = None
        for i in order:
            if not used[i] and e - before <= detections[i].t_s <= e + after:
                hit = i
                break
        if hit is None:
            results.append(SegmentResult(loop, idx, s, e, False))
        else:
            used[hit] = True
            d = detections[hit]
            results.append(SegmentResult(loop, idx, s, e, True, round(d.t_s - e, 3), d.score,
                                         round(d.t_s, 3)))
    unexpected = [detections[i] for i in order if not used[i]
                  and not any(s <= detections[i].t_s <= e + after for s, e in segments)]
    return results, unexpected


def summarize(results, unexpected, *, loops=1, extra=None):
    """The ``summary`` dict: hits, misses, hit rate, latency statistics, unexpected detections."""
    hits = [r for r in results if r.hit]
    lat = [r.latency_s for r in hits]
    out = {
        "event": "summary",
        "loops": loops,
        "segments": len(results),
        "hits": len(hits),
        "misses": len(results) - len(hits),
        "hit_rate": round(len(hits) / len(results), 4) if results else None,
        "latency_s_min": min(lat) if lat else None,
        "latency_s_median": round(statistics.median(lat), 3) if lat else None,
        "latency_s_mean": round(statistics.fmean(lat), 3) if lat else None,
        "latency_s_max": max(lat) if lat else None,
        "unexpected": len(unexpected),
    }
    if extra:
        out.update(extra)
    return out


# ---------------------------------------------------------------- audio output


def _sounddevice(command="play", error=AudioOutputMissing):
    """The sounddevice module, imported on first use; without it (or without PortAudio)
    `error`, one line naming `airmark <command>`, what to install and why the import failed."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise error(
            "airmark %s needs sounddevice and the PortAudio library (pip install sounddevice; "
            "Debian/Ubuntu: sudo apt install libportaudio2): %s" % (command, exc)) from None
    return sounddevice


def parse_device(device):
    """`--device`: an int index when it is all digits, else a name (substring) for sounddevice."""
    if device is None:
        return None
    text = str(device).strip()
    return int(text) if text.isdigit() else text


class SoundDeviceOutput:
    """Play through PortAudio. ``start`` returns when the first buffer is queued, with its DAC time.

    ``t0`` maps PortAudio's ``outputBufferDacTime`` of the first callback onto
    ``clock`` (monotonic), so the loudspeaker latency is not counted as board latency.
    """

    def __init__(self, device=None, *, clock=time.monotonic):
        self.device = parse_device(device)
        self.clock = clock
        self._stream = None
        self._done = threading.Event()
        self._t0 = None
        self._first = threading.Event()

    def _device_name(self):
        return ("the default audio output" if self.device is None
                else "audio output %r" % (self.device,))

    def check(self, samplerate, channels):
        """PlayError now if the device cannot take this audio (no device, a bad name, a
        rate or channel count it refuses), before the board is connected."""
        sd = _sounddevice()
        try:
            sd.check_output_settings(device=self.device, samplerate=samplerate,
                                     channels=channels, dtype="float32")
        except Exception as exc:  # PortAudioError, ValueError for a bad device
            raise PlayError("cannot open %s: %s" % (self._device_name(), exc)) from None

    def start(self, data, samplerate):
        sd = _sounddevice()
        import numpy as np

        data = np.ascontiguousarray(data, dtype=np.float32)
        if data.ndim == 1:
            data = data[:, None]
        self._done.clear()
        self._first.clear()
        self._t0 = None
        pos = [0]

        def callback(outdata, frames, t, status):
            if self._t0 is None:
                dac = getattr(t, "outputBufferDacTime", 0.0) or 0.0
                now = getattr(t, "currentTime", 0.0) or 0.0
                ahead = dac - now if dac and now and 0 <= dac - now < 2 else 0.0
                self._t0 = self.clock() + ahead
                self._first.set()
            chunk = data[pos[0]:pos[0] + frames]
            outdata[:len(chunk)] = chunk
            if len(chunk) < frames:
                outdata[len(chunk):] = 0
                raise sd.CallbackStop
            pos[0] += frames

        try:
            self._stream = sd.OutputStream(samplerate=samplerate, channels=data.shape[1],
                                           dtype="float32", device=self.device, callback=callback,
                                           finished_callback=self._done.set)
            self._stream.start()
        except Exception as exc:  # PortAudioError, ValueError for a bad device
            raise PlayError("cannot open %s: %s" % (self._device_name(), exc)) from None
        if not self._first.wait(5):
            self.stop()
            raise PlayError("%s did not start within 5 s" % (self._device_name(),))
        return self._t0

    @property
    def active(self):
        return self._stream is not None and not self._done.is_set()

    def stop(self):
        s, self._stream = self._stream, None
        if s is not None:
            try:
                s.stop()
                s.close()
            finally:
                self._done.set()


def read_audio(path):
    """(float32 frames x channels, samplerate) for any file soundfile reads."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise PlayError("%s: cannot read audio: %s" % (path, exc)) from None
    if data.shape[0] == 0:
        raise PlayError("%s: no audio frames" % path)
    return data, rate


# ---------------------------------------------------------------- the run


@dataclass
class PlayReport:
    results: list
    unexpected: list
    detections: list
    summary: dict
    hello: object = None
    warnings: list = field(default_factory=list)

    def to_records(self):
        out = [dict(asdict(r), event="segment") for r in self.results]
        out += [{"event": "unexpected", "loop": d.loop, "t_s": round(d.t_s, 3), "score": d.score,
                 "key": d.key} for d in self.unexpected]
        out.append(self.summary)
        return out


def play_and_score(data, samplerate, sidecar, monitor, output, *, loops=1, gap_s=2.0,
                   window_s=WINDOW_S, on_record=None, settle_s=1.0, wait_board_s=6.0):
    """Play `data` `loops` times through `output` while `monitor` reads the board; score it.

    ``monitor.clock`` is the time base of both the arrival times and ``output.start``'s t0.
    ``on_record(record, t_play_s_or_None)`` sees every monitor record as it arrives.
    Before the first pass the board gets up to ``wait_board_s`` to say something (a
    running board prints ``status`` every 5 s, a booting one ``hello``), then ``settle_s``.
    """
    if loops < 1:
        raise ValueError("loops must be >= 1, got %r" % (loops,))
    clock = monitor.clock
    duration_s = data.shape[0] / samplerate
    state = {"t0": None, "loop": 0}
    detections = []

    def sink(rec, t_mono):
        t_play = None
        if state["t0"] is not None:
            t_play = t_mono - state["t0"]
        if rec.get("event") == "detection" and t_play is not None:
            detections.append(Detection(state["loop"], t_play, rec.get("score"), rec.get("key"), rec))
        if on_record is not None:
            on_record(rec, t_play)

    monitor.sinks.append(sink)
    results, unexpected = [], []
    heard = monitor.stats.events
    try:
        t_wait = clock() + wait_board_s
        monitor.run(until=t_wait, stop=lambda: sum(heard[k] for k in heard) > 0)
        silent = sum(heard[k] for k in heard) == 0
        monitor.run(until=clock() + settle_s)
        for n in range(loops):
            state["t0"] = None
            state["loop"] = n
            state["t0"] = output.start(data, samplerate)
            end = state["t0"] + duration_s + window_s[1] + 0.25
            monitor.run(stop=lambda: not output.active and clock() >= end)
            mine = [d for d in detections if d.loop == n]
            res, unexp = score_segments(sidecar.segments, mine, window_s=window_s, loop=n)
            results += res
            unexpected += unexp
            if n + 1 < loops and gap_s > 0:
                monitor.run(until=clock() + gap_s)
    finally:
        output.stop()
        monitor.sinks.remove(sink)
    hello = monitor.stats.hello
    warnings = []
    if silent:
        warnings.append("the board said nothing for %.0f s before playback (is it running? "
                        "is --port right?)" % wait_board_s)
    if hello is None:
        warnings.append("no hello from the board during the run (its key was not checked)")
    elif sidecar.key_id and hello.get("key") != sidecar.key_id:
        warnings.append("the board listens for key %s but the file is marked with key %s"
                        % (hello.get("key"), sidecar.key_id))
    extra = {"file_key": sidecar.key_id, "board_key": hello.get("key") if hello else None,
             "duration_s": round(duration_s, 3), "disconnects": monitor.stats.disconnects,
             "garbage": monitor.stats.garbage, "warnings": warnings}
    summary = summarize(results, unexpected, loops=loops, extra=extra)
    return PlayReport(results, unexpected, detections, summary, hello, warnings)


def default_sidecar(audio_path, sidecar=None):
    path = sidecar or sidecar_path(audio_path)
    if not os.path.exists(path):
        raise PlayError("%s: no sidecar next to %s (write the file with `airmark embed`, or pass "
                        "--sidecar)" % (path, audio_path))
    return load_sidecar(path)
