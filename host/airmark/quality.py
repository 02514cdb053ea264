"""How audible a mark is: ViSQOL (audio mode) of a marked file against its original.

ViSQOL v3 in audio mode (visqol-python) compares two 48 kHz signals and gives a MOS-LQO
from 1 to about 4.75. It costs about 1.2 s of CPU per second of audio, so a file is not
measured whole: it is cut into windows of :data:`WINDOW_S` over its marked segments, each
window is ranked by the power of (marked - original) over the original's (the mark-to-host
ratio, cheap), and the :data:`MAX_WINDOWS` windows with the highest ratio are measured, the
ones where a mark is likeliest to be heard. The verdict is the lowest of their scores.

:func:`embed_to_quality` is the embedder with a quality floor: it lowers the strength in
:data:`STEP_DB` steps until every measured window reaches the floor.
"""

import os
import tempfile

import numpy as np

from .errors import AirmarkError

VISQOL_FS = 48000
WINDOW_S = 4.0  # the window the evaluation measures around a 2 s mark (airmark eval)
MIN_WINDOW_S = 1.0  # ViSQOL's shortest input (its 45-frame patch)
MAX_WINDOWS = 4
STEP_DB = 2.0
MIN_STRENGTH_DB = -8.0  # 12 dB under the default
FRAME_S = 0.1  # energy frames for ranking windows
SILENT_RMS = 1e-5  # a window whose original is quieter than -100 dBFS has no ViSQOL score


class QualityError(AirmarkError):
    """The quality could not be measured, or the floor could not be reached."""


class FloorNotReached(QualityError):
    """No strength down to the lowest allowed reaches the ViSQOL floor."""

    exit_code = 1


def visqol_api():
    """A ViSQOL v3 instance in audio mode (QualityError when visqol-python is missing)."""
    try:
        from visqol import api as vapi
    except ImportError:
        raise QualityError("ViSQOL is not installed (pip install visqol-python, or "
                           "pip install 'airmark[quality]')") from None
    v = vapi.VisqolApi()
    v.create(mode="audio")
    return v


def candidate_windows(duration_s, segments, window_s=None):
    """Windows (start_s, end_s) tiling each marked segment, each `window_s` long where
    the file allows (centred on a segment shorter than that), at least MIN_WINDOW_S."""
    window_s = WINDOW_S if window_s is None else window_s
    out = []
    for a, b in segments:
        a = max(0.0, float(a))
        b = min(float(duration_s), float(b))
        if b <= a:
            continue
        n = max(1, int(np.ceil((b - a) / window_s - 1e-9)))
        for i in range(n):
            mid = a + (b - a) * (i + 0.5) / n
            s = max(0.0, min(mid - window_s / 2, duration_s - window_s))
            e = min(duration_s, s + window_s)
            if e - s >= MIN_WINDOW_S and (s, e) not in out:
                out.append((s, e))
    return out


def _mono(x):
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def _resample_48k(x, fs):
    from . import channel
    return channel.resample(x, fs, VISQOL_FS)


class _Pair:
    """Two files (original, marked) read in lockstep as mono float64 blocks, once or more."""

    def __init__(self, ref_path, deg_path):
        from . import audio
        self.paths = (str(ref_path), str(deg_path))
        for p in self.paths:
            if not os.path.isfile(p):
                raise QualityError("%s: no such file" % (p,))
        infos = [audio.audio_info(p) for p in self.paths]
        self.fs = infos[0]["samplerate"]
        if infos[1]["samplerate"] != self.fs:
            raise QualityError("%s is at %d Hz and %s at %d Hz: compare a marked file with "
                               "its own original" % (self.paths[0], self.fs, self.paths[1],
                                                     infos[1]["samplerate"]))
        self.frames = None  # known after the first pass

    def blocks(self, blocksize=65536):
        from . import audio
        bufs = [np.zeros(0), np.zeros(0)]
        counts = [0, 0]
        with audio.AudioReader(self.paths[0], blocksize) as r0, \
                audio.AudioReader(self.paths[1], blocksize) as r1:
            its = [iter(r0), iter(r1)]
            done = [False, False]
            while not all(done):
                for i in (0, 1):
                    if not done[i] and len(bufs[i]) < blocksize:
                        b = next(its[i], None)
                        if b is None:
                            done[i] = True
                        else:
                            counts[i] += b.shape[0]
                            bufs[i] = np.concatenate([bufs[i], _mono(b)])
                n = min(len(bufs[0]), len(bufs[1]))
                if n and (n >= blocksize or any(done)):
                    yield bufs[0][:n], bufs[1][:n]
                    bufs = [bufs[0][n:], bufs[1][n:]]
        if abs(counts[0] - counts[1]) > self.fs // 10:
            raise QualityError("%s and %s differ in length by more than 0.1 s: compare a "
                               "marked file with its own original" % self.paths)
        self.frames = min(counts)


class _ArrayPair:
    def __init__(self, ref, deg, fs):
        self.ref, self.deg = _mono(ref), _mono(deg)
        if len(self.ref) != len(self.deg):
            raise QualityError("the original and the marked signal differ in length")
        self.fs = int(fs)
        self.frames = len(self.ref)

    def blocks(self, blocksize=65536):
        for a in range(0, self.frames, blocksize):
            yield self.ref[a:a + blocksize], self.deg[a:a + blocksize]


def _frame_energies(pair):
    """Per FRAME_S frame: the original's energy and that of (marked - original)."""
    flen = max(1, int(round(pair.fs * FRAME_S)))
    host, mark = [], []
    acc_h = acc_m = 0.0
    fill = 0
    for r, d in pair.blocks():
        diff = d - r
        i = 0
        while i < len(r):
            take = min(flen - fill, len(r) - i)
            acc_h += float(np.dot(r[i:i + take], r[i:i + take]))
            acc_m += float(np.dot(diff[i:i + take], diff[i:i + take]))
            fill += take
            i += take
            if fill == flen:
                host.append(acc_h)
                mark.append(acc_m)
                acc_h = acc_m = 0.0
                fill = 0
    if fill:
        host.append(acc_h)
        mark.append(acc_m)
    return np.array(host), np.array(mark), flen


def _extract(pair, windows):
    """The samples of each window (start, end in frames) of both signals."""
    out = [([], []) for _ in windows]
    pos = 0
    for r, d in pair.blocks():
        n = len(r)
        for k, (a, b) in enumerate(windows):
            lo, hi = max(a, pos), min(b, pos + n)
            if lo < hi:
                out[k][0].append(r[lo - pos:hi - pos])
                out[k][1].append(d[lo - pos:hi - pos])
        pos += n
        if all(b <= pos for _, b in windows):
            break
    return [(np.concatenate(a), np.concatenate(b)) for a, b in out]


def _rank(pair, segments, max_windows, window_s):
    """The candidate windows' count and the `max_windows` with the highest mark-to-host
    ratio, in time order, as rows {start_s, end_s, mhr_db, rms}."""
    host, mark, flen = _frame_energies(pair)
    fs = pair.fs
    dur = pair.frames / fs
    if dur < MIN_WINDOW_S:
        raise QualityError("ViSQOL needs at least %.0f s of audio, got %.2f s"
                           % (MIN_WINDOW_S, dur))
    cands = candidate_windows(dur, segments if segments else [(0.0, dur)], window_s)
    ranked = []
    for s, e in cands:
        a = int(round(s * fs / flen))
        b = max(a + 1, int(round(e * fs / flen)))
        h, m = float(np.sum(host[a:b])), float(np.sum(mark[a:b]))
        mhr = float(10 * np.log10(m / h)) if h > 0 and m > 0 else None
        ranked.append({"start_s": round(s, 3), "end_s": round(e, 3),
                       "mhr_db": None if mhr is None else round(mhr, 2),
                       "rms": float(np.sqrt(h / max(1.0, (e - s) * fs)))})
    ranked.sort(key=lambda r: float("inf") if r["mhr_db"] is None else -r["mhr_db"])
    return len(cands), sorted(ranked[:max(1, int(max_windows))], key=lambda r: r["start_s"])


def _score(pair, windows, api, progress):
    """ViSQOL of each window (rows from _rank): new rows with ``moslqo`` (None if silent)."""
    fs = pair.fs
    spans = [(int(w["start_s"] * fs), int(w["end_s"] * fs)) for w in windows]
    rows = []
    for i, (w, (ref, deg)) in enumerate(zip(windows, _extract(pair, spans))):
        mos = None
        if w["rms"] >= SILENT_RMS:
            r = api.measure_from_arrays(_resample_48k(ref, fs), _resample_48k(deg, fs),
                                        VISQOL_FS)
            mos = float(r.moslqo) if np.isfinite(r.moslqo) else None
        rows.append({"start_s": w["start_s"], "end_s": w["end_s"], "mhr_db": w["mhr_db"],
                     "moslqo": None if mos is None else round(mos, 3)})
        if progress is not None:
            progress(i + 1, len(windows))
    return rows


def _summary(rows, candidates, window_s):
    scores = [r["moslqo"] for r in rows if r["moslqo"] is not None]
    return {"windows": rows, "candidates": candidates, "window_s": window_s,
            "min_moslqo": min(scores) if scores else None,
            "mean_moslqo": round(float(np.mean(scores)), 3) if scores else None}


def _measure(pair, segments, max_windows, api, progress, window_s=None):
    window_s = WINDOW_S if window_s is None else window_s
    n, windows = _rank(pair, segments, max_windows, window_s)
    return _summary(_score(pair, windows, api or visqol_api(), progress), n, window_s)


def measure_arrays(ref, deg, fs, segments=None, *, max_windows=MAX_WINDOWS, api=None,
                   progress=None, window_s=None):
    """ViSQOL of `deg` (marked) against `ref` (original), arrays at `fs` (mono, or
    (frames, channels): the channels' mean is measured).

    Parameters
    ----------
    segments : list of (start_s, end_s), optional
        Where the mark is (default: the whole signal).
    max_windows : int
        How many of the windows with the highest mark-to-host ratio to measure.
    api : optional
        A :func:`visqol_api` instance to reuse.
    window_s : float, optional
        Window length (default WINDOW_S; the last window of a file may be shorter, down
        to MIN_WINDOW_S).
    progress : callable, optional
        ``progress(done, total)`` after each window.

    Returns
    -------
    dict
        ``windows`` (each ``start_s``, ``end_s``, ``mhr_db`` and ``moslqo``, in time order;
        ``moslqo`` is None for a silent window), ``candidates`` (how many windows the
        segments hold), ``window_s``, ``min_moslqo`` and ``mean_moslqo`` (None when every
        measured window was silent).
    """
    return _measure(_ArrayPair(ref, deg, fs), segments, max_windows, api, progress, window_s)


def measure_files(ref_path, deg_path, segments=None, *, max_windows=MAX_WINDOWS, progress=None):
    """:func:`measure_arrays` on two files, streamed (memory does not grow with their
    length). When `segments` is None they come from the marked file's sidecar if it has
    one (an invalid sidecar is an error), else the whole file is a candidate."""
    from . import embed
    pair = _Pair(ref_path, deg_path)
    if segments is None:
        segments = _sidecar_segments(embed.sidecar_path(deg_path))
    out = _measure(pair, segments, max_windows, None, progress)
    out["segments"] = segments
    return out


def _sidecar_segments(path):
    """The sidecar's segments, checked as `airmark play` checks them (a broken sidecar is
    a PlayError); None when there is no sidecar or it lists none."""
    from . import play
    if not os.path.lexists(path):
        return None
    return play.load_sidecar(path).segments or None


def strengths_to_try(strength_db, min_strength_db=MIN_STRENGTH_DB, step_db=STEP_DB):
    """The requested strength, then STEP_DB lower each time, down to min_strength_db."""
    out = [float(strength_db)]
    while out[-1] - step_db >= min_strength_db - 1e-9:
        out.append(round(out[-1] - step_db, 6))
    if out[-1] > min_strength_db and strength_db > min_strength_db:
        out.append(float(min_strength_db))
    return out


def embed_to_quality(in_path, out_path, key, min_moslqo, *, start_s=None, duration_s=None,
                     strength_db=None, min_strength_db=MIN_STRENGTH_DB, overwrite=False,
                     max_windows=MAX_WINDOWS, on_try=None, progress=None,
                     visqol_progress=None):
    """Embed like :func:`airmark.embed.embed_file`, at the highest strength (from
    `strength_db` down in STEP_DB steps to `min_strength_db`) whose ViSQOL reaches
    `min_moslqo` on every measured window. OUT and its sidecar appear only when one does;
    otherwise :class:`FloorNotReached` is raised and nothing is written.

    `on_try(strength_db, result)` is called after each measured strength; `progress` is
    passed to embed_file, `visqol_progress(done, total)` is called after each window.
    The windows are ranked once, on the first try; later tries measure again only those
    still under the floor (ViSQOL falls as the mark grows, so a window that met the floor
    at a higher strength meets it at a lower one), and each window row says at which
    ``strength_db`` its score was measured.

    Returns the embed info plus ``visqol`` (the passing measurement) and ``tries``.
    """
    from . import embed, fsutil
    in_path, out_path = str(in_path), str(out_path)
    if strength_db is None:
        strength_db = embed.DEFAULT_STRENGTH_DB
    if not 1.0 <= float(min_moslqo) <= 5.0:
        raise QualityError("the ViSQOL floor must be within 1..5, got %g" % (min_moslqo,))
    if strength_db < min_strength_db:
        raise QualityError("--strength %+.1f dB is under the lowest strength tried (%+.1f dB)"
                           % (strength_db, min_strength_db))
    embed.check_paths(in_path, out_path, overwrite)
    api = visqol_api()
    tries = []
    d = os.path.dirname(os.path.abspath(out_path))
    ext = os.path.splitext(out_path)[1]
    windows = None  # ranked on the first try; their latest scores in `rows`
    rows = None
    with tempfile.TemporaryDirectory(prefix=".airmark-q-", dir=d) as tmpdir:
        for s in strengths_to_try(strength_db, min_strength_db):
            tmp_out = os.path.join(tmpdir, "try" + ext)
            info = embed.embed_file(in_path, tmp_out, key, start_s=start_s,
                                    duration_s=duration_s, strength_db=s, overwrite=True,
                                    progress=progress)
            pair = _Pair(in_path, tmp_out)
            if windows is None:
                candidates, windows = _rank(pair, info["segments"], max_windows, WINDOW_S)
                rows = _score(pair, windows, api, visqol_progress)
                for r in rows:
                    r["strength_db"] = s
            else:  # a window that met the floor at a higher strength is not measured again
                redo = [i for i, r in enumerate(rows) if r["moslqo"] is not None
                        and r["moslqo"] < min_moslqo]
                for i, r in zip(redo, _score(pair, [windows[i] for i in redo], api,
                                             visqol_progress)):
                    rows[i] = dict(r, strength_db=s)
            res = _summary(rows, candidates, WINDOW_S)
            tries.append({"strength_db": s, "min_moslqo": res["min_moslqo"]})
            if on_try is not None:
                on_try(s, res)
            if res["min_moslqo"] is None or res["min_moslqo"] >= min_moslqo:
                embed.add_to_sidecar(info["sidecar"], {"visqol": {
                    "min_moslqo": res["min_moslqo"], "floor": float(min_moslqo),
                    "windows": res["windows"], "tries": tries}})
                old = embed.keep_old(out_path)  # OUT first, then its sidecar, as embed_file
                try:
                    try:
                        fsutil.publish(tmp_out, out_path)
                    except OSError as exc:
                        raise QualityError("%s: cannot write (%s)"
                                           % (out_path, exc.strerror or exc)) from None
                    embed.publish_sidecar(info["sidecar"], out_path, old)
                finally:
                    if old is not None and os.path.lexists(old):
                        os.unlink(old)
                info["sidecar"] = embed.sidecar_path(out_path)
                info["visqol"] = res
                info["tries"] = tries
                return info
    best = max(tries, key=lambda t: t["min_moslqo"])
    raise FloorNotReached("ViSQOL stays under %.2f down to %+.1f dB (best %.3f at %+.1f dB); "
                          "nothing written" % (min_moslqo, min_strength_db, best["min_moslqo"],
                                               best["strength_db"]))
