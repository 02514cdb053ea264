"""Run the firmware's detector core over audio on the host.

The samples the detector sees are exactly what the board would see: 16 kHz mono
int16. `detect_samples` drives the same `airmark_detector.Detector` the board runs
(many hops at a time through its vectorised twin `airmark_batch`, same integers);
`detect_file_micropython` runs the board's replay loop under a MicroPython binary.
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


def detect_samples(samples, key, *, progress=None, per_hop=False):
    """Run 16 kHz mono int16 `samples` through the detector core.

    By default the hops go through `airmark_batch.feed_hops` in chunks: numpy does many
    hops at once and leaves exactly the integers and state the per-hop core would
    (tests/test_batch.py). `per_hop=True` calls the core's `feed` once per hop instead,
    as the board does.
    """
    x = np.asarray(samples)
    if x.dtype != np.int16 or x.ndim != 1:
        raise AudioError("detector input must be 1-D int16 at 16 kHz, got %s %r" % (x.dtype, x.shape))
    det = make_detector(key)
    batch = None if per_hop else fw.module("airmark_batch")
    if batch is not None and not batch.usable(det):
        batch = None
    hop = det.hop_samples
    nhops = len(x) // hop
    scores = np.zeros(nhops, dtype=np.float32)
    found = []
    if batch is not None:
        for i in range(0, nhops, BATCH_HOPS):
            j = min(nhops, i + BATCH_HOPS)
            q8, evs = batch.feed_hops(det, x[i * hop:j * hop])
            scores[i:j] = q8 / 256.0
            found.extend(evs)
            if progress is not None:
                progress(j, nhops)
    else:
        step = max(1, nhops // 200)
        for i in range(nhops):
            ev = det.feed(x[i * hop:(i + 1) * hop])
            scores[i] = det.score
            if ev is not None:
                found.append(ev)
            if progress is not None and (i % step == 0 or i == nhops - 1):
                progress(i + 1, nhops)
    events = [{"t": round(t / SAMPLE_RATE_HZ, 4), "score": score3(sc)} for t, sc in found]
    return DetectResult(events, scores, hop / SAMPLE_RATE_HZ, nhops * hop / SAMPLE_RATE_HZ,
                        key["key_id"], key["threshold"], key.get("line_enhancer", 0))


def load_for_detector(path):
    """Any audio file as the board hears it: 16 kHz mono int16."""
    from . import audio

    data, samplerate, _info = audio.read_audio(path)
    if not np.isfinite(data).all():
        raise audio.AudioError("%s: the audio has NaN or infinite samples" % (path,))
    return audio.to_detector_int16(data, samplerate)


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


def detect_file_micropython(samples, key, micropython, *, timeout_s=3600):
    """Run the board's replay loop under `micropython` (viper kernels, or ulab where viper is absent).

    Returns (DetectResult without per-hop scores, list of the board's JSON lines).
    """
    with tempfile.TemporaryDirectory(prefix="airmark-") as tmp:
        wav = os.path.join(tmp, "in16k.wav")
        keyfile = os.path.join(tmp, "key.json")
        write_wav16k(wav, samples)
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
                       (len(samples) // hop) * hop / SAMPLE_RATE_HZ,  # whole hops, as fed
                       key["key_id"], key["threshold"],
                       key.get("line_enhancer", 0))
    for ln in lines:
        if ln.get("event") == "detection" and "score" in ln:
            res.scores = np.append(res.scores, np.float32(ln["score"]))
    return res, lines
