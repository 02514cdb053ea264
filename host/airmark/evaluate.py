r"""The over-the-air evaluation: marked and unmarked corpus clips through a grid of channels.

For every corpus clip and every grid point (distance x RT60 x SNR x drift x codec x spatial x
noise) the clip is played twice through the same seeded channel:

- marked: a mark of ``mark_s`` seconds embedded at a random start (seeded per clip); it
  counts as detected when the detector reports an event between the start of the mark and
  ``max_latency_s`` after its end (times mapped through the channel's drift and delay);
  latency is event time minus the end of the mark;
- unmarked: every event is a false alarm; false alarms per hour = events / unmarked hours.

The microphone does not sit at one spot: each grid point has ``positions`` seeded placements
at its distance (azimuth within +-30 degrees as the room allows, height 0.9-1.6 m) and the
clips of every category take them in turn. One placement is one draw from a wide spread: the
same clip at the same distance scores from about 3 to 10 across placements (docs/ALGORITHM.md).

The detector's score after every hop gives the curves: for a threshold :math:`\tau`, the
detection rate is the share of marked clips whose peak score inside the window reaches
:math:`\tau`, and the false-alarm rate is the number of upward crossings of :math:`\tau` in
the unmarked score streams per hour.

Channel outputs (and embedded clips) are cached on disk, keyed by everything that makes them,
so a rerun with one changed knob only recomputes what changed.
"""

import hashlib
import itertools
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import channel
from .errors import AirmarkError, AudioError

TARGET = {"distance_m": 6.1, "rt60_s": 0.5, "snr_db": 10.0, "drift_abs_ppm": 100.0,
          "detection": 0.99, "fa_per_hour": 0.1}
SCORE_GRID_POINTS = 401
POINT_KEYS = ("distance_m", "rt60_s", "snr_db", "drift_ppm", "codec", "spatial", "noise")


@dataclass
class Grid:
    """Lists of values; the evaluation runs their cartesian product."""

    distance_m: list = field(default_factory=lambda: [1.0, 3.0, 6.1, 9.0])
    rt60_s: list = field(default_factory=lambda: [0.3, 0.5, 0.8])
    snr_db: list = field(default_factory=lambda: [20.0, 10.0, 5.0])
    drift_ppm: list = field(default_factory=lambda: [100.0])
    codec: list = field(default_factory=lambda: [None])
    spatial: list = field(default_factory=lambda: [False])
    noise: list = field(default_factory=lambda: ["pink"])

    @classmethod
    def quick(cls):
        return cls(distance_m=[1.0, 6.1, 9.0], rt60_s=[0.5], snr_db=[10.0])

    def points(self):
        values = [getattr(self, n) for n in POINT_KEYS]
        return [dict(zip(POINT_KEYS, combo)) for combo in itertools.product(*values)]


@dataclass
class EvalOptions:
    mark_s: float = 2.0
    strength_db: float = 0.0
    max_latency_s: float = 2.0
    clips_per_category: object = None  # None: all clips in the corpus
    categories: object = None  # None: every category; else a list of category names
    visqol_clips: int = 6
    seed: int = 0
    jobs: int = 0  # 0: all cores
    base_preset: str = "living-room-6m"
    positions: int = 4  # mic placements per grid point; 0: the preset's single placement


def wilson_interval(k, n, z=1.959964):
    r"""Wilson score interval of a binomial proportion k/n (95 % by default).

    .. math:: \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n} +
              \frac{z^2}{4n^2}}}{1 + z^2/n}

    Returns ``(low, high)``; ``(0.0, 1.0)`` when n is 0.
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def poisson_upper(k, conf=0.95):
    """One-sided upper confidence bound of a Poisson count k (chi-square relation)."""
    from scipy.stats import chi2

    return float(chi2.ppf(conf, 2 * (k + 1)) / 2)


# ----------------------------------------------------------------------------- corpus

def load_corpus(corpus_dir, clips_per_category=None, categories=None):
    """Clips listed in ``manifest.json`` (or every WAV/FLAC under the directory), optionally
    only those of the named ``categories`` (each must exist in the corpus)."""
    root = Path(corpus_dir)
    if not root.is_dir():
        raise AudioError("%s: no such corpus directory (make corpus builds one)" % root)
    mf = root / "manifest.json"
    if mf.exists():
        try:
            clips = json.loads(mf.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
            raise AudioError("%s: not a corpus manifest (not valid JSON); `make corpus` "
                             "writes one" % mf) from None
        try:
            clips = [dict(c, path=str(root / c["file"]), category=c["category"])
                     for c in clips["clips"]]
        except (KeyError, TypeError):
            raise AudioError("%s: not a corpus manifest (it wants \"clips\": [{\"category\", "
                             "\"file\"}, ...]); `make corpus` writes one" % mf) from None
    else:
        clips = []
        for p in sorted(list(root.rglob("*.wav")) + list(root.rglob("*.flac"))):
            rel = p.relative_to(root)
            clips.append({"file": str(rel), "path": str(p),
                          "category": rel.parts[0] if len(rel.parts) > 1 else "other"})
    if not clips:
        raise AudioError("%s: the corpus has no clips (make corpus builds one)" % root)
    if categories is not None:
        have = sorted(set(c["category"] for c in clips))
        missing = [c for c in categories if c not in have]
        if missing:
            raise AudioError("%s: no category %s (it has %s)"
                             % (root, ", ".join(repr(m) for m in missing), ", ".join(have)))
        clips = [c for c in clips if c["category"] in categories]
    if clips_per_category is not None:
        seen = {}
        kept = []
        for c in clips:
            seen[c["category"]] = seen.get(c["category"], 0) + 1
            if seen[c["category"]] <= clips_per_category:
                kept.append(c)
        clips = kept
    for c in clips:
        if "sha256" not in c:
            c["sha256"] = _file_hash(c["path"])
    return clips


def _file_hash(path):
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 16), b""):
                h.update(block)
    except OSError as exc:  # a clip the manifest lists but the corpus lacks
        raise AudioError("%s: cannot read (%s)" % (path, exc.strerror or exc)) from None
    return h.hexdigest()


MARK_FIELDS = ("sample_rate_hz", "block_samples", "pattern_blocks", "band_hz", "key_bits",
               "noise_seed")


def mark_identity(key):
    """What the embedded mark depends on: keys that differ only in detector settings
    (threshold, lag_periods, diff_weight, line_enhancer) share cached channel outputs."""
    return _digest([key.get(f) for f in MARK_FIELDS])


def _source_hash(*modules):
    """A digest of the modules' source files: what a cached output was made with."""
    try:
        return _digest([_file_hash(m.__file__) for m in modules])[:16]
    except (AttributeError, OSError, TypeError, AudioError):
        return "none"


def code_versions():
    """(embed_version, channel_version): digests of the code that makes the marked clips
    (the embedder and its masking model) and the channel outputs (the simulator and the
    audio I/O its codecs go through). A change to any of them misses the cache."""
    from . import audio, embed, psycho
    return _source_hash(embed, psycho), _source_hash(channel, audio)


def _digest(obj):
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


# ----------------------------------------------------------------------------- one task

def _default_embed():
    from . import embed

    return embed.embed_array


def _default_detect():
    from . import detect

    return detect.detect_samples


MAX_AZIMUTH_DEG = 30.0
MIC_HEIGHT_M = (0.9, 1.6)
WALL_CLEARANCE_M = 0.3


def mic_placement(cfg, q, seed=0):
    """Placement ``q`` (0, 1, ...) of the mic at ``cfg.distance_m``: a dict of
    ``mic_azimuth_deg`` and ``mic_height_m`` for :class:`channel.ChannelConfig`.

    Placement q is point q of the R2 low-discrepancy sequence, shifted by a random offset
    drawn from ``seed``: any first few placements spread evenly over azimuth and height.
    The same two numbers are mapped onto whatever azimuth range keeps the mic
    ``WALL_CLEARANCE_M`` off the side walls of that room, so a placement means the same
    relative spot at every distance.
    """
    shift = np.random.default_rng([int(seed), 7919]).random(2)
    u_az = (shift[0] + q * 0.7548776662466927) % 1.0
    u_h = (shift[1] + q * 0.5698402909980532) % 1.0
    height = MIC_HEIGHT_M[0] + u_h * (MIC_HEIGHT_M[1] - MIC_HEIGHT_M[0])
    dim, srcs, _ = channel.room_geometry(cfg)
    src = srcs[0]
    d = float(cfg.distance_m)
    horizontal = math.sqrt(max(d * d - (height - src[2]) ** 2, 1e-12))
    lo = math.asin(max(-1.0, (WALL_CLEARANCE_M - src[1]) / horizontal))
    hi = math.asin(min(1.0, (dim[1] - WALL_CLEARANCE_M - src[1]) / horizontal))
    lim = math.radians(MAX_AZIMUTH_DEG)
    lo, hi = max(lo, -lim), min(hi, lim)
    return {"mic_azimuth_deg": round(math.degrees(lo + u_az * (hi - lo)), 2),
            "mic_height_m": round(float(height), 3)}


def _point_config(point, base_preset, position=None, seed=0):
    cfg = channel.ChannelConfig.from_preset(base_preset, **point)
    if position is not None and cfg.room and cfg.mic_pos_m is None:
        cfg = cfg.replace(**mic_placement(cfg, position, seed))
    return cfg


def _mark_start(clip, duration_s, opts):
    rng = np.random.default_rng([opts.seed, int(clip["sha256"][:8], 16)])
    hi = max(0.5, duration_s - opts.mark_s - opts.max_latency_s)
    return round(float(rng.uniform(0.5, hi)), 3)


def _cached_array(cache_dir, kind, key, make):
    """np.load a cached (array, info) pair, or make it and store it atomically."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / "eval" / kind / (_digest(key) + ".npz")
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    return z["x"], json.loads(str(z["info"]))
            except (OSError, KeyError, ValueError):
                pass
    x, info = make()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".%d.tmp.npz" % os.getpid())
        np.savez(tmp, x=x, info=json.dumps(info, default=str))
        os.replace(tmp, path)
    return x, info


def _upcrossings(scores, thresholds):
    """For each threshold, how many times the score stream rises to or above it."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) == 0:
        return np.zeros(len(thresholds), dtype=np.int64)
    prev = np.concatenate([[-np.inf], s[:-1]])
    peaks_from = (s[None, :] >= thresholds[:, None]) & (prev[None, :] < thresholds[:, None])
    return peaks_from.sum(axis=1)


def run_task(task):
    """One clip at one grid point: marked and unmarked through the channel, then detected.

    ``task`` is a dict (so it pickles to worker processes); returns a result dict. A
    problem with the clip (unreadable, too short, bad samples) names it.
    """
    try:
        return _run_task(task)
    except (AirmarkError, ValueError) as exc:
        raise AirmarkError("%s: %s" % (task["clip"].get("file", "?"), exc)) from None


def _run_task(task):
    clip, point, key, opts, cache_dir, thresholds = (
        task["clip"], task["point"], task["key"], task["opts"], task["cache_dir"],
        np.asarray(task["thresholds"]))
    embed_fn = task.get("embed_fn") or _default_embed()
    detect_fn = task.get("detect_fn") or _default_detect()
    cfg = _point_config(point, opts.base_preset, task.get("position"), opts.seed)
    x, fs = channel.read_audio(clip["path"])
    duration = len(x) / fs
    start = _mark_start(clip, duration, opts)
    seed = int(_digest([opts.seed, clip["sha256"], point])[:8], 16)
    embed_src = task.get("embed_version", "none")

    def make_marked():
        y, info = embed_fn(x, fs, key, start_s=start, duration_s=opts.mark_s,
                           strength_db=opts.strength_db)
        info = {k: v for k, v in dict(info).items() if k in ("segments", "whr_db")}
        return np.asarray(y, dtype=np.float32), info

    marked, einfo = _cached_array(cache_dir, "embedded", [
        clip["sha256"], mark_identity(key), start, opts.mark_s,
        opts.strength_db, embed_src], make_marked)
    cfg_key = [cfg.to_dict(), seed, task.get("channel_version", "none")]
    out = {}
    for label, audio, src_key in (("marked", marked, ["m", clip["sha256"], start, opts.mark_s,
                                                      opts.strength_db, embed_src,
                                                      mark_identity(key)]),
                                  ("unmarked", x, ["u", clip["sha256"]])):
        y, info = _cached_array(cache_dir, "channel", [src_key, cfg_key],
                                lambda a=audio: channel.simulate(a, fs, cfg, seed=seed,
                                                                 cache_dir=cache_dir))
        res = detect_fn(np.asarray(y, dtype=np.int16), key)
        out[label] = (res, info)

    res, info = out["marked"]
    ratio = 1 + cfg.drift_ppm * 1e-6
    segs = einfo.get("segments") or [[start, start + opts.mark_s]]
    m0 = segs[0][0] * ratio + info.get("delay_s", 0.0)
    m1 = segs[-1][1] * ratio + info.get("delay_s", 0.0)
    hits = [e for e in res.events if m0 <= e["t"] <= m1 + opts.max_latency_s]
    hop = float(res.hop_s)
    i0 = max(0, int(m0 / hop))
    i1 = min(len(res.scores), int(math.ceil((m1 + opts.max_latency_s) / hop)) + 1)
    window = np.asarray(res.scores[i0:i1], dtype=np.float64)
    ures, uinfo = out["unmarked"]
    return {
        "clip": clip["file"], "category": clip.get("category", "other"), "point": point,
        "mic_azimuth_deg": cfg.mic_azimuth_deg, "mic_height_m": cfg.mic_height_m,
        "mark_start_s": start, "mark_end_out_s": round(m1, 4),
        "detected": bool(hits), "latency_s": round(hits[0]["t"] - m1, 4) if hits else None,
        "hit_score": hits[0]["score"] if hits else None,
        "peak_score_marked": float(window.max()) if len(window) else 0.0,
        "whr_db": einfo.get("whr_db"),
        "unmarked_events": len(ures.events),
        "unmarked_seconds": float(ures.duration_s),
        "unmarked_peak": float(np.max(ures.scores)) if len(ures.scores) else 0.0,
        "upcross": _upcrossings(ures.scores, thresholds).tolist(),
        "content_spl_db": info.get("content_spl_db"),
        "clipped": sum(s.get("clipped_samples", 0) for s in info["stages"]),
    }


RT60_TOLERANCE = 0.2  # a room whose measured RT60 is further off is reported


def rt60_missed(want_s, got_s, tolerance=RT60_TOLERANCE):
    """True if a room measured `got_s` where it was asked for `want_s`, beyond `tolerance`."""
    return bool(want_s and got_s and abs(got_s / want_s - 1) > tolerance)


def _warm_rirs(point, base_preset, cache_dir, position=None, seed=0):
    """Compute (or find cached) the point's room; returns the room's RT60 miss, or None."""
    cfg = _point_config(point, base_preset, position, seed)
    if cfg.room:
        dim, srcs, mic = channel.room_geometry(cfg, n_sources=3 if cfg.spatial else 1)
        _, info = channel.room_rirs(dim, srcs, mic, cfg.rt60_s, channel.MIC_SAMPLERATE_HZ,
                                    cache_dir=cache_dir, scattering=cfg.scattering)
        got = info.get("rt60_measured_s")
        if rt60_missed(cfg.rt60_s, got):
            return {"point": point, "position": position, "room_dim_m": list(dim),
                    "rt60_s": cfg.rt60_s, "rt60_measured_s": got}
    return None


# ----------------------------------------------------------------------------- the run

def run_eval(corpus_dir, key, *, grid=None, opts=None, cache_dir=None, progress=None,
             embed_fn=None, detect_fn=None):
    """Run the whole grid; returns the results dict (see :func:`summarise`)."""
    grid = grid or Grid()
    opts = opts or EvalOptions()
    clips = load_corpus(corpus_dir, opts.clips_per_category, opts.categories)
    points = grid.points()
    for p in points:
        try:
            _point_config(p, opts.base_preset)  # bad knobs fail here, before any work
        except (ValueError, TypeError) as exc:
            raise AirmarkError("grid: %s" % exc) from None
    thresholds = np.linspace(0.0, 3.0 * float(key["threshold"]), SCORE_GRID_POINTS)
    jobs = opts.jobs or os.cpu_count() or 1
    embed_version, channel_version = code_versions()
    # the clips of each category take the placements in turn
    clip_pos = [None] * len(clips)
    if opts.positions:
        seen = {}
        for i, c in enumerate(clips):
            cat = c.get("category", "other")
            clip_pos[i] = seen.get(cat, 0) % int(opts.positions)
            seen[cat] = seen.get(cat, 0) + 1
    places = sorted(set(clip_pos)) if opts.positions else [None]
    warm = [(p, q) for p in points for q in places]
    tasks = [{"clip": c, "point": p, "key": key, "opts": opts, "cache_dir": cache_dir,
              "thresholds": thresholds.tolist(), "embed_fn": embed_fn, "detect_fn": detect_fn,
              "embed_version": embed_version if embed_fn is None else "injected",
              "channel_version": channel_version, "position": clip_pos[i]}
             for p in points for i, c in enumerate(clips)]
    t0 = time.time()
    results = []
    total = len(tasks) + len(warm)
    done = 0
    misses = []
    if jobs == 1:
        for p, q in warm:
            misses.append(_warm_rirs(p, opts.base_preset, cache_dir, q, opts.seed))
            done += 1
            if progress:
                progress(done, total)
        for t in tasks:
            results.append(run_task(t))
            done += 1
            if progress:
                progress(done, total)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            futs = [ex.submit(_warm_rirs, p, opts.base_preset, cache_dir, q, opts.seed)
                    for p, q in warm]
            for f in as_completed(futs):
                misses.append(f.result())
                done += 1
                if progress:
                    progress(done, total)
            futs = [ex.submit(run_task, t) for t in tasks]
            for f in as_completed(futs):
                results.append(f.result())
                done += 1
                if progress:
                    progress(done, total)
    order = {(_point_id(t["point"]), t["clip"]["file"]): i for i, t in enumerate(tasks)}
    results.sort(key=lambda r: order[(_point_id(r["point"]), r["clip"])])
    summary = summarise(results, thresholds, key, opts)
    summary["grid"] = asdict(grid)
    summary["options"] = {k: v for k, v in asdict(opts).items()}
    summary["corpus"] = {"dir": str(corpus_dir), "clips": len(clips),
                         "categories": _count(c.get("category", "other") for c in clips)}
    summary["elapsed_s"] = round(time.time() - t0, 1)
    summary["rt60_misses"] = sorted((m for m in misses if m), key=lambda m: (
        _point_id(m["point"]), m["position"] if m["position"] is not None else -1))
    summary["runs"] = [{k: v for k, v in r.items() if k != "upcross"} for r in results]
    return summary


def _count(items):
    out = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def _agg(rows):
    n = len(rows)
    k = sum(r["detected"] for r in rows)
    lo, hi = wilson_interval(k, n)
    hours = sum(r["unmarked_seconds"] for r in rows) / 3600.0
    fa = sum(r["unmarked_events"] for r in rows)
    lat = [r["latency_s"] for r in rows if r["latency_s"] is not None]
    whr = [r["whr_db"] for r in rows if r["whr_db"] is not None]
    return {"n": n, "detected": k, "rate": k / n if n else None, "wilson95": [lo, hi],
            "false_alarms": fa, "unmarked_hours": hours,
            "fa_per_hour": fa / hours if hours else None,
            "fa_per_hour_upper95": poisson_upper(fa) / hours if hours else None,
            "latency_median_s": float(np.median(lat)) if lat else None,
            "latency_p90_s": float(np.percentile(lat, 90)) if lat else None,
            "whr_db_mean": float(np.mean(whr)) if whr else None}


def _by_category(rows, cats):
    return {c: _agg([r for r in rows if r["category"] == c]) for c in cats}


def _point_id(point):
    return json.dumps({k: point[k] for k in POINT_KEYS}, sort_keys=True)


def summarise(results, thresholds, key, opts):
    """Per grid point, per category, curves and the target verdict."""
    threshold = float(key["threshold"])
    by_point = {}
    for r in results:
        by_point.setdefault(_point_id(r["point"]), []).append(r)
    points = []
    for pk, rows in by_point.items():
        entry = dict(json.loads(pk))
        entry.update(_agg(rows))
        entry["by_category"] = _by_category(rows, sorted({r["category"] for r in rows}))
        points.append(entry)
    # curves pooled over all grid points
    peaks = np.array([r["peak_score_marked"] for r in results])
    hours = sum(r["unmarked_seconds"] for r in results) / 3600.0
    up = np.sum([r["upcross"] for r in results], axis=0) if results else np.zeros(len(thresholds))
    curve = {"threshold": [round(float(t), 4) for t in thresholds],
             "detection": [float(np.mean(peaks >= t)) if len(peaks) else 0.0 for t in thresholds],
             "fa_per_hour": [float(u / hours) if hours else 0.0 for u in up]}
    target = [p for p in points
              if p["distance_m"] == TARGET["distance_m"] and p["rt60_s"] == TARGET["rt60_s"]
              and p["snr_db"] == TARGET["snr_db"]
              and abs(p["drift_ppm"]) == TARGET["drift_abs_ppm"]]
    verdict = None
    if target:
        wanted = {_point_id(p) for p in target}
        agg = _agg([r for r in results if _point_id(r["point"]) in wanted])
        verdict = dict(agg, points=len(target),
                       drifts_ppm=sorted({float(p["drift_ppm"]) for p in target}),
                       meets_detection=agg["rate"] is not None
                       and agg["rate"] >= TARGET["detection"],
                       meets_false_alarms=agg["fa_per_hour"] is not None
                       and agg["fa_per_hour"] <= TARGET["fa_per_hour"])
    lat = [r["latency_s"] for r in results if r["latency_s"] is not None]
    cats = sorted({r["category"] for r in results})
    # The room's reverberation time decides more than its distance or noise: detections per
    # RT60, pooled over every other grid axis, per category.
    by_rt60 = []
    for t in sorted({r["point"]["rt60_s"] for r in results}):
        rows = [r for r in results if r["point"]["rt60_s"] == t]
        by_rt60.append(dict(_agg(rows), rt60_s=t, by_category=_by_category(rows, cats)))
    return {"key_id": key.get("key_id"), "threshold": threshold,
            "line_enhancer": int(key.get("line_enhancer", 0)), "points": points,
            "overall": _agg(results),
            "by_category": _by_category(results, cats),
            "by_rt60": by_rt60,
            "curve": curve, "latencies_s": lat, "target": TARGET, "target_result": verdict}


# ----------------------------------------------------------------------------- ViSQOL

def visqol_subset(clips, key, opts, *, n_clips, embed_fn=None, segment_s=4.0):
    """ViSQOL (audio mode, 48 kHz) MOS-LQO of embedded vs original, on ``segment_s`` around
    each mark, for the first ``n_clips`` clips (one per category in turn)."""
    if n_clips <= 0:
        return None
    from . import quality
    try:
        api = quality.visqol_api()
    except quality.QualityError as exc:
        return {"error": str(exc)}
    embed_fn = embed_fn or _default_embed()
    rank = {}
    keyed = []
    for i, c in enumerate(clips):  # round robin over categories
        rank[c["category"]] = rank.get(c["category"], -1) + 1
        keyed.append((rank[c["category"]], c["category"], i))
    order = [clips[i] for _, _, i in sorted(keyed)][:n_clips]
    rows = []
    for c in order:
        x, fs = channel.read_audio(c["path"])
        start = _mark_start(c, len(x) / fs, opts)
        y, _ = embed_fn(x, fs, key, start_s=start, duration_s=opts.mark_s,
                        strength_db=opts.strength_db)
        r = quality.measure_arrays(x, y, fs, [(start, start + opts.mark_s)], max_windows=1,
                                   api=api, window_s=segment_s)
        rows.append({"clip": c["file"], "category": c["category"],
                     "moslqo": r["min_moslqo"]})
    scores = [r["moslqo"] for r in rows if r["moslqo"] is not None]
    return {"segment_s": segment_s, "clips": rows,
            "mean_moslqo": round(float(np.mean(scores)), 3) if scores else None,
            "min_moslqo": round(float(np.min(scores)), 3) if scores else None}
