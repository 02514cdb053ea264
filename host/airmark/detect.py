"""Run the firmware's detector core over audio on the host.

The samples the detector sees are exactly what the board would see: 16 kHz mono
int16. `DetectRun` drives the same `airmark_detector.Detector` the board runs (many hops
at a time through its vectorised twin `airmark_batch`, same integers) over a stream;
`detect_samples` runs it over an array, `detect_file` over a file, streaming (memory
independent of the file's length); `detect_file_micropython` runs the board's replay
loop under a MicroPython binary.
"""

import json
import os
import subprocess
import tempfile

import numpy as np

from . import fw
from .errors import AirmarkError, AudioError, ToolMissing

SAMPLE_RATE_HZ = 16000


def score3(score):
    """A score to 3 decimals exactly as the board prints it (airmark_proto.jfloat)."""
    return float(fw.module("airmark_proto").jfloat(score, 3))


class DetectResult:
    """Outcome of a detector run.

    events: list of {"t": seconds from start at the end of the triggering hop, "score"}.
    scores: float32 array, the detector statistic after every hop.
    hop_s: seconds per hop; duration_s: seconds of audio fed.
    """

    def __init__(self, events, scores, hop_s, duration_s, key_id, threshold, line_enhancer=False):
        self.events = events
        self.line_enhancer = bool(line_enhancer)
        self.scores = scores
        self.hop_s = hop_s
        self.duration_s = duration_s
        self.key_id = key_id
        self.threshold = threshold

    @property
    def max_score(self):
        return float(self.scores.max()) if len(self.scores) else 0.0

    def summary(self):
        return {
            "event": "summary",
            "key": self.key_id,
            "detections": len(self.events),
            "duration_s": round(self.duration_s, 3),
            "max_score": score3(self.max_score),
            "threshold": self.threshold,
            "line_enhancer": self.line_enhancer,
        }


def make_detector(key, **kwargs):
    return fw.module("airmark_detector").Detector(key, **kwargs)


BATCH_HOPS = 4096  # hops per vectorised chunk: 33 s of audio, 17.5 MB peak of temporaries (tracemalloc)


class DetectRun:
    """The detector over a stream of 16 kHz mono int16 chunks of any length.

    By default whole hops go through `airmark_batch.feed_hops`, BATCH_HOPS at a time: numpy
    does many hops at once and leaves exactly the integers and state the per-hop core would
    (tests/test_batch.py). `per_hop=True` calls the core's `feed` once per hop instead, as
    the board does. A chunk's trailing part short of a hop waits for the next chunk.
    """

    def __init__(self, key, *, per_hop=False):
        self.key = key
        self.det = make_detector(key)
        batch = None if per_hop else fw.module("airmark_batch")
        self.batch = batch if batch is not None and batch.usable(self.det) else None
        self.hop = self.det.hop_samples
        self._rest = np.zeros(0, dtype=np.int16)
        self._scores = []  # float32 arrays, one per fed chunk
        self._found = []
        self.hops = 0

    def feed(self, samples):
        """Feed int16 samples; returns the number of hops run so far."""
        x = np.asarray(samples)
        if x.dtype != np.int16 or x.ndim != 1:
            raise AudioError("detector input must be 1-D int16 at 16 kHz, got %s %r" % (x.dtype, x.shape))
        if len(self._rest):
            x = np.concatenate((self._rest, x))
        h = self.hop
        nhops = len(x) // h
        self._rest = x[nhops * h:].copy()
        scores = np.zeros(nhops, dtype=np.float32)
        if self.batch is not None:
            for i in range(0, nhops, BATCH_HOPS):
                j = min(nhops, i + BATCH_HOPS)
                q8, evs = self.batch.feed_hops(self.det, x[i * h:j * h])
                scores[i:j] = q8 / 256.0
                self._found.extend(evs)
        else:
            det = self.det
            for i in range(nhops):
                ev = det.feed(x[i * h:(i + 1) * h])
                scores[i] = det.score
                if ev is not None:
                    self._found.append(ev)
        self._scores.append(scores)
        self.hops += nhops
        return self.hops

    def result(self):
        """The DetectResult of everything fed (a trailing part short of a hop is not fed)."""
        key = self.key
        scores = np.concatenate(self._scores) if self._scores else np.zeros(0, dtype=np.float32)
        events = [{"t": round(t / SAMPLE_RATE_HZ, 4), "score": score3(sc)} for t, sc in self._found]
        return DetectResult(events, scores, self.hop / SAMPLE_RATE_HZ,
                            self.hops * self.hop / SAMPLE_RATE_HZ, key["key_id"],
                            key["threshold"], key.get("line_enhancer", 0))


def detect_samples(samples, key, *, progress=None, per_hop=False):
    """Run 16 kHz mono int16 `samples` through the detector core (see DetectRun)."""
    x = np.asarray(samples)
    run = DetectRun(key, per_hop=per_hop)
    if x.dtype != np.int16 or x.ndim != 1:
        run.feed(x)  # raises the one-line AudioError
    nhops = len(x) // run.hop
    # progress every BATCH_HOPS hops (batch) or about every 200th of the run (per hop)
    step = BATCH_HOPS if run.batch is not None else max(1, nhops // 200)
    for i in range(0, max(nhops, 1), step):
        j = min(nhops, i + step)
        run.feed(x[i * run.hop:j * run.hop])
        if progress is not None:
            progress(j, nhops)
    return run.result()


def _file_chunks(path):
    """(int16 chunk, seconds read, seconds expected or None) of a file as the board hears
    it, block by block; one-line errors for unreadable files and NaN/inf samples (naming
    the first one's time)."""
    from . import audio

    with audio.AudioReader(path) as reader:
        rate = reader.info["samplerate"]
        total_s = reader.info.get("duration_s")
        stream = audio.DetectorStream(rate)
        read = 0
        for block in reader:
            finite = np.isfinite(block).all(axis=1)
            if not finite.all():
                raise AudioError("%s: the audio has a NaN or infinite sample at %.3f s"
                                 % (path, (read + int(np.flatnonzero(~finite)[0])) / rate))
            read += block.shape[0]
            yield stream.feed(block), read / rate, total_s
        yield stream.finish(), read / rate, total_s


def detect_file(path, key, *, progress=None, per_hop=False):
    """Detect in any audio file as the board hears it (16 kHz mono int16), streaming: the
    memory does not grow with the file's length. Same result as
    ``detect_samples(load_for_detector(path), key)``; `progress(seconds, of_seconds)`."""
    run = DetectRun(key, per_hop=per_hop)
    for chunk, read_s, total_s in _file_chunks(path):
        run.feed(chunk)
        if progress is not None:
            total = max(total_s or 0.0, read_s)  # ffmpeg's duration is an estimate
            progress(read_s, total)
    return run.result()


def load_for_detector(path):
    """Any audio file as the board hears it: 16 kHz mono int16 (the whole file)."""
    parts = [chunk for chunk, _, _ in _file_chunks(path)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def write_wav16k(path, samples):
    import soundfile as sf

    sf.write(path, samples, SAMPLE_RATE_HZ, subtype="PCM_16")


def _last_line(proc):
    """The last non-empty line a process printed (stderr first), for an error message."""
    for text in (proc.stderr, proc.stdout):
        rows = [r.strip() for r in (text or "").splitlines() if r.strip()]
        if rows:
            return rows[-1][:200]
    return "no output"


def replay_script():
    return os.path.join(fw.FIRMWARE_DIR, "airmark_replay.py")


def _stream_wav16k(wav, path):
    """Write the file at `path` as the board hears it into `wav`, block by block; returns
    the number of samples written."""
    import soundfile as sf

    n = 0
    with sf.SoundFile(wav, "w", SAMPLE_RATE_HZ, 1, subtype="PCM_16", format="WAV") as out:
        for chunk, _, _ in _file_chunks(path):
            out.write(chunk)
            n += len(chunk)
    return n


def detect_file_micropython(samples, key, micropython, *, timeout_s=3600):
    """Run the board's replay loop under `micropython` (viper kernels, or ulab where viper is absent).

    `samples`: 16 kHz mono int16, or the path of any audio file (converted block by block,
    so its length costs no memory). Returns (DetectResult without per-hop scores, list of
    the board's JSON lines).
    """
    with tempfile.TemporaryDirectory(prefix="airmark-") as tmp:
        wav = os.path.join(tmp, "in16k.wav")
        keyfile = os.path.join(tmp, "key.json")
        if isinstance(samples, (str, os.PathLike)):
            nsamples = _stream_wav16k(wav, samples)
        else:
            write_wav16k(wav, samples)
            nsamples = len(samples)
        with open(keyfile, "w") as f:
            json.dump(key, f)
        try:
            proc = subprocess.run([micropython, replay_script(), wav, keyfile],
                                  capture_output=True, text=True, timeout=timeout_s)
        except FileNotFoundError:
            raise ToolMissing("MicroPython binary not found: %s" % micropython) from None
        except OSError as exc:
            raise ToolMissing("cannot run %s as MicroPython: %s" % (micropython, exc.strerror))
        except subprocess.TimeoutExpired:
            raise AirmarkError("MicroPython replay timed out after %d s" % timeout_s) from None
    lines = []
    for raw in proc.stdout.splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            lines.append(obj)
    errors = [ln for ln in lines if ln.get("event") == "error"]
    if proc.returncode == 2 or proc.returncode != 0 and not lines:
        raise AirmarkError("MicroPython replay failed: %s" % (
            errors[0].get("msg") if errors else _last_line(proc)))
    if not any(ln.get("event") == "hello" for ln in lines):
        raise AirmarkError("%s printed no replay output (exit %d; %s): is it a MicroPython "
                           "interpreter?" % (micropython, proc.returncode, _last_line(proc)))
    events = [{"t": round(ln["t_ms"] / 1000.0, 4), "score": ln["score"]}
              for ln in lines if ln.get("event") == "detection" and "t_ms" in ln
              and "score" in ln]
    hop = key["block_samples"] // 2
    res = DetectResult(events, np.zeros(0, dtype=np.float32), hop / SAMPLE_RATE_HZ,
                       (nsamples // hop) * hop / SAMPLE_RATE_HZ,  # whole hops, as fed
                       key["key_id"], key["threshold"],
                       key.get("line_enhancer", 0))
    for ln in lines:
        if ln.get("event") == "detection" and "score" in ln:
            res.scores = np.append(res.scores, np.float32(ln["score"]))
    return res, lines
