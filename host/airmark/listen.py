"""Listen with the computer's microphone: the board's detector, live, on the host.

The microphone's audio becomes what a board's I2S path delivers (16 kHz mono int16) and
goes hop by hop through the same core a board runs (`Detector.feed`), so a laptop can
stand in for a board while trying a key, a strength or a room. Only the microphone
differs: a laptop's has its own filtering and automatic gain.

A source is any object with ``start()``, ``read(timeout_s) -> int16 array or None`` (16 kHz
mono samples, any count), ``stop()`` and an ``overflows`` count; :class:`MicSource` is the
sounddevice (PortAudio) one, imported only when used.
"""

import math
import queue
import time

import numpy as np

from . import detect, play
from .errors import AirmarkError

SAMPLE_RATE_HZ = 16000
STATUS_EVERY_S = 5.0
QUEUE_BLOCKS = 64  # device blocks held while the detector catches up (about 4 s at 64 ms)
STALL_S = 5.0  # no block from the device for this long: it is gone (a USB mic unplugged)


class NoMicrophone(AirmarkError):
    """No usable input device, or sounddevice / PortAudio missing."""


def _sounddevice():
    return play._sounddevice("listen", NoMicrophone)


class MicSource:
    """The default (or named) input device as 16 kHz mono int16.

    It asks PortAudio for 16 kHz mono directly; a device that cannot do that is opened at
    its own rate and resampled here by :class:`audio.DetectorStream`, block by block, to the
    samples `airmark detect` makes of a file at that rate. `read` raises NoMicrophone when
    the device stops (no longer active, or no block for STALL_S)."""

    def __init__(self, device=None, block_s=0.064):
        self.sd = _sounddevice()
        self.device = play.parse_device(device)
        self.block_s = block_s
        self.overflows = 0
        self._q = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._stream = None
        self._resampler = None
        self._last_block = None
        try:
            info = self.sd.query_devices(self.device, "input")
        except (ValueError, self.sd.PortAudioError) as exc:
            raise NoMicrophone("no input device%s (%s); `python -m sounddevice` lists them"
                               % (" %r" % device if device is not None else "", exc)) from None
        self.name = info["name"]
        try:
            self.sd.check_input_settings(self.device, channels=1, dtype="int16",
                                         samplerate=SAMPLE_RATE_HZ)
            self.rate = SAMPLE_RATE_HZ
        except (ValueError, self.sd.PortAudioError):
            from .audio import DetectorStream
            self.rate = int(info["default_samplerate"])
            self._resampler = DetectorStream(self.rate, chunk_s=block_s)

    def _callback(self, indata, frames, t, status):
        if status.input_overflow:
            self.overflows += 1
        try:
            self._q.put_nowait(indata[:, 0].copy())
        except queue.Full:
            self.overflows += 1

    def start(self):
        dtype = "int16" if self._resampler is None else "float32"
        try:
            self._stream = self.sd.InputStream(
                device=self.device, channels=1, samplerate=self.rate, dtype=dtype,
                blocksize=int(self.rate * self.block_s), callback=self._callback)
            self._stream.start()
        except self.sd.PortAudioError as exc:
            raise NoMicrophone("cannot open %s: %s" % (self.name, exc)) from None
        self._last_block = time.monotonic()

    def read(self, timeout_s):
        active = self._stream is not None and self._stream.active
        try:
            x = self._q.get(block=active, timeout=timeout_s)
        except queue.Empty:
            if not active:
                raise NoMicrophone("%s stopped delivering audio (unplugged?)"
                                   % self.name) from None
            if time.monotonic() - self._last_block >= STALL_S:
                raise NoMicrophone("no audio from %s for %g s (unplugged?)"
                                   % (self.name, STALL_S)) from None
            return None
        self._last_block = time.monotonic()
        if self._resampler is None:
            return x
        return self._resampler.feed(x)

    def stop(self):
        s, self._stream = self._stream, None
        if s is not None:
            for step in (s.stop, s.close):
                try:
                    step()
                except self.sd.PortAudioError:
                    pass  # a device that went away: nothing is left to stop


def listen(key, source, *, duration_s=None, on_event=None, on_status=None,
           status_every_s=STATUS_EVERY_S, stop=None):
    """Feed `source` through the key's detector until `duration_s` of audio (or forever,
    or until `stop()` is true: `airmark listen` stops when its reader has gone).

    `on_event({"t", "score"})` at each detection (t: seconds of audio since the start, at
    the end of the triggering hop, as `airmark detect`); `on_status({...})` every
    `status_every_s` of audio with the level (dBFS RMS), the highest score and overflows.
    Returns the summary dict (as `airmark detect`'s, plus ``overflows`` and
    ``interrupted``, True when Ctrl-C ended it). The source is stopped either way.
    """
    det = detect.make_detector(key)
    hop = det.hop_samples
    pending = np.zeros(0, dtype=np.int16)
    events = []
    fed = 0
    max_score = 0.0
    energy = 0.0
    count = 0
    next_status = status_every_s * SAMPLE_RATE_HZ
    limit = None if duration_s is None else int(round(duration_s * SAMPLE_RATE_HZ))
    interrupted = False
    source.start()
    try:
        while limit is None or fed + hop <= limit:
            if stop is not None and stop():
                break
            x = source.read(1.0)
            if x is None:
                if getattr(source, "finished", False):
                    break
                continue
            x = np.asarray(x, dtype=np.int16)
            v = x.astype(np.float64)  # the status level, once per device block
            energy += float(np.dot(v, v))
            count += len(v)
            pending = np.concatenate([pending, x])
            while len(pending) >= hop and (limit is None or fed + hop <= limit):
                chunk = pending[:hop]
                pending = pending[hop:]
                ev = det.feed(chunk)
                fed += hop
                max_score = max(max_score, det.score)
                if ev is not None:
                    t_samples, score = ev
                    rec = {"t": round(t_samples / SAMPLE_RATE_HZ, 4),
                           "score": detect.score3(score)}
                    events.append(rec)
                    if on_event is not None:
                        on_event(rec)
                if on_status is not None and fed >= next_status:
                    on_status({"t": round(fed / SAMPLE_RATE_HZ, 3),
                               "level_dbfs": _dbfs(energy, count),
                               "max_score": detect.score3(max_score),
                               "overflows": int(getattr(source, "overflows", 0))})
                    next_status += status_every_s * SAMPLE_RATE_HZ
                    energy = 0.0
                    count = 0
    except KeyboardInterrupt:
        interrupted = True
    finally:
        source.stop()
    return {"event": "summary", "key": key["key_id"], "detections": len(events),
            "duration_s": round(fed / SAMPLE_RATE_HZ, 3), "max_score": detect.score3(max_score),
            "threshold": key["threshold"], "line_enhancer": bool(key.get("line_enhancer", 0)),
            "overflows": int(getattr(source, "overflows", 0)), "interrupted": interrupted}


def _dbfs(energy, count):
    if count == 0 or energy <= 0:
        return None
    return round(10 * math.log10(energy / count / 32768.0 ** 2), 1)
