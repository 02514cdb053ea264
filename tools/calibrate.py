"""Set the detection threshold from unmarked audio: <= 1 false alarm per 10 hours.

Usage: python tools/calibrate.py --corpus corpus [--presets P1,P2,...]
                                 [--key KEY] [--key-seeds N] [--jobs N]
                                 [--target-per-hour 0.1] [--json] [--write-default]

Runs the firmware detector over every unmarked clip of the corpus (music, speech,
steady drum loops 80-160 BPM), joined into one continuous stream per category and
channel (by default the file itself, the 6.1 m living room, the smart-speaker chain at
6.1 m, and the chain at 1 m with the microphone at five placements; PRESET@DEG places the
microphone at DEG degrees of azimuth, e.g. spatial-speaker-1m@-25), and counts
upcrossings of the score per hour of audio at a ladder of thresholds. Rare events are
extrapolated with a Gaussian tail fitted to the measured upcrossing rates,
rate(t) = A * exp(-t^2 / (2 s^2)) (Rice's formula for a smooth stationary score), and
checked against the distribution-free union bound
rate(t) <= hops_per_hour * hypotheses * exp(-t^2 / 2) (Hoeffding, docs/ALGORITHM.md).
It also counts the detections the detector would report (an upcrossing, then the
hold-off of one key length), pooled over every category and channel.

The recommended threshold is the largest, over categories and channels, of the fitted
threshold for the target rate, and at least the lowest threshold at which the pooled
detections stay within the target; when the pooled hours are too few to hold 5 false
alarms at the target rate, at least the highest unmarked score seen instead.
--write-default stores it in airmark/keys.py.

--key-seeds N pools N keys of one shape (seeds 1..N, the shape of --key or the default):
their upcrossings and hours are added before the fit, so the threshold holds for a key
drawn at random rather than for one key, whose tail can be lighter or heavier than the
next one's. Each key's own threshold is reported too. --jobs N scores N keys at once.
"""

import json
import math
import multiprocessing
import os
import re
import signal
import sys

import numpy as np
import soundfile as sf

import toolcli
from airmark import channel, detect, evaluate, keys
from airmark.progress import progress_bar

LADDER = np.arange(2.0, 8.01, 0.25)  # upcrossing counts for the tail fit
MIN_EXPECTED = 5  # false alarms the pooled hours must hold at the target rate to be read
FINE = np.round(np.arange(4.0, 9.001, 0.05), 2)  # detections counted for the empirical rate
# The near smart speaker carries the heaviest unmarked tail and depends on where the
# microphone sits, so it is calibrated at five placements.
DEFAULT_PRESETS = ("digital,living-room-6m,spatial-speaker-1m,spatial-speaker-1m@-25,"
                   "spatial-speaker-1m@-10,spatial-speaker-1m@15,spatial-speaker-1m@28,"
                   "spatial-speaker-6m")


def upcrossings(scores, t):
    above = scores >= t
    return int(np.count_nonzero(above[1:] & ~above[:-1]) + (1 if len(above) and above[0] else 0))


def episodes(scores, t, holdoff_hops):
    """Detections the detector would report at threshold t: a hop at or above t starts
    one unless it falls within `holdoff_hops` after the previous one's start."""
    count = 0
    nxt = -1
    for i in np.flatnonzero(scores >= t):
        if i >= nxt:
            count += 1
            nxt = i + holdoff_hops
    return count


def fit_tail(rates, hours):
    """Fit log(rate) = a - t^2 / (2 s^2) on ladder points with >= 3 upcrossings."""
    counts = rates * hours
    ok = counts >= 3
    if ok.sum() < 3:
        return None
    t2 = LADDER[ok] ** 2
    y = np.log(rates[ok])
    slope, a = np.polyfit(t2, y, 1)
    if slope >= 0:
        return None
    return float(a), float(slope)


def threshold_for(fit, target):
    a, slope = fit
    return math.sqrt(max(0.0, (math.log(target) - a) / slope))


def channel_for(spec):
    """The ChannelConfig of a --presets entry: a preset name, optionally with the
    microphone's azimuth in degrees after an @ (spatial-speaker-1m@-25)."""
    name, _, az = spec.partition("@")
    if name not in channel.PRESETS:
        raise KeyError("unknown preset %r (one of %s)" % (name, ", ".join(sorted(channel.PRESETS))))
    if not az:
        return channel.ChannelConfig.from_preset(name)
    try:
        azimuth = float(az)
    except ValueError:
        raise ValueError("bad azimuth in %r: degrees after the @" % spec) from None
    return channel.ChannelConfig.from_preset(name, mic_azimuth_deg=azimuth)  # validates


def empirical_threshold(found, hours, target):
    """The lowest FINE threshold whose detections per hour (`found` per FINE step, over
    `hours`) are at most `target`, or None when the hours are too few to show that rate
    (fewer than MIN_EXPECTED false alarms at the target) or no step gets there."""
    if hours * target < MIN_EXPECTED:
        return None
    ok = np.asarray(found) / hours <= target
    return float(FINE[np.argmax(ok)]) if ok.any() else None


_STREAM = None  # the stream the worker processes score (inherited when they fork)


def score_key(k):
    """(hours, upcrossings over LADDER, detections over FINE, max score) of one key over
    _STREAM."""
    res = detect.detect_samples(_STREAM, k)
    c = [upcrossings(res.scores, t) for t in LADDER]
    hold = 2 * len(k["key_bits"])  # the detector's hold-off: one key length in hops
    found = [episodes(res.scores, t, hold) for t in FINE]
    return res.duration_s / 3600.0, c, found, float(res.max_score)


def load_stream(paths):
    parts = []
    fs0 = None
    for p in paths:
        try:
            x, fs = sf.read(p, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:  # missing, unreadable, not audio
            raise toolcli.ToolError("%s: cannot read (%s)" % (p, exc)) from None
        fs0 = fs0 or fs
        if fs != fs0:
            continue
        parts.append(x.mean(axis=1))
    return np.concatenate(parts), fs0


def _worker_init():
    """Pool workers leave Ctrl-C to the parent, which stops them (no traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv=None):
    global _STREAM
    ap = toolcli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--presets", default=DEFAULT_PRESETS)
    ap.add_argument("--key", default=None, help="key file (default: a fresh key, seed 1)")
    ap.add_argument("--key-seeds", type=toolcli.nonnegative_int, default=0,
                    help="pool this many keys of the key's shape (seeds 1..N) instead of one key")
    ap.add_argument("--target-per-hour", type=toolcli.positive_float, default=0.1)
    ap.add_argument("--max-minutes", type=toolcli.positive_float, default=20.0,
                    help="per category")
    ap.add_argument("--jobs", type=toolcli.positive_int, default=1,
                    help="score this many keys at once")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--write-default", action="store_true")
    args = ap.parse_args(argv)
    key = keys.load(args.key) if args.key else keys.generate(1)
    key_s = keys.key_seconds(key)
    if args.write_default:  # checked before the long run, not after it
        if key.get("diff_weight", 1) != keys.DEFAULTS["diff_weight"]:
            raise toolcli.ToolError("--write-default needs a key with the default diff_weight %d"
                                    % keys.DEFAULTS["diff_weight"])
        const = keys.threshold_constant(key_s, key["lag_periods"], key.get("line_enhancer", 0))
        if const is None:
            raise toolcli.ToolError("no default constant for a %.1f s key with lag_periods %d; "
                                    "put the threshold in the key instead"
                                    % (key_s, key["lag_periods"]))
        keys_py = os.path.join(os.path.dirname(keys.__file__), "keys.py")
        with open(keys_py) as f:
            keys_text = f.read()
    pool = [key]
    if args.key_seeds:
        pool = [keys.generate(s, block_samples=key["block_samples"],
                              pattern_blocks=key["pattern_blocks"], lag_periods=key["lag_periods"],
                              key_seconds=key_s, band_hz=key["band_hz"],
                              diff_weight=key.get("diff_weight", 1), threshold=key["threshold"],
                              line_enhancer=bool(key.get("line_enhancer", 0)))
                for s in range(1, args.key_seeds + 1)]
    bycat = {}
    for c in evaluate.load_corpus(args.corpus):  # one-line errors: no corpus, a bad manifest
        bycat.setdefault(c["category"], []).append(c["path"])
    results = []
    all_found = np.zeros(len(FINE))  # detections of unmarked audio, over every row
    all_hours = 0.0
    union_k = 3600 * 16000 / (key["block_samples"] // 2) * 7
    try:
        configs = [(preset, channel_for(preset)) for preset in args.presets.split(",")]
    except (KeyError, ValueError) as e:
        print("calibrate: %s" % (e.args[0] if e.args else e), file=sys.stderr)
        return 2
    steps = len(configs) * len(bycat) * len(pool)
    done = 0
    with progress_bar("calibrate", disable=args.json) as update:
        for preset, cfg in configs:
            for cat in sorted(bycat):
                n_max = max(1, int(args.max_minutes * 6))
                x, fs = load_stream(sorted(bycat[cat])[:n_max])
                y, _ = channel.simulate(x, fs, cfg, seed=11, cache_dir=os.path.join("cache", "calibrate"))
                counts = np.zeros(len(LADDER))
                found = np.zeros(len(FINE))
                hours = 0.0
                top = 0.0
                per_key = []
                _STREAM = y
                scored = []
                workers = (multiprocessing.get_context("fork").Pool(args.jobs, _worker_init)
                           if args.jobs > 1 else None)
                try:
                    for r in workers.imap(score_key, pool) if workers else map(score_key, pool):
                        scored.append(r)
                        done += 1
                        update(done, steps)
                finally:
                    if workers is not None:
                        workers.terminate()
                for k, (h, c, kfound, kmax) in zip(pool, scored):
                    c = np.array(c, dtype=float)
                    found += kfound
                    kfit = fit_tail(c / h, h)
                    per_key.append({"key_id": k["key_id"], "max_score": round(kmax, 3),
                                    "threshold": round(threshold_for(kfit, args.target_per_hour), 3)
                                    if kfit else None})
                    counts += c
                    hours += h
                    top = max(top, kmax)
                rates = counts / hours
                fit = fit_tail(rates, hours)
                thr = threshold_for(fit, args.target_per_hour) if fit else float("nan")
                row = {"preset": preset, "category": cat, "hours": round(hours, 3),
                       "max_score": round(top, 3),
                       "upcrossings_per_hour": {"%.2f" % t: round(r, 2) for t, r in zip(LADDER, rates) if r > 0},
                       "fit": fit, "threshold": round(thr, 3),
                       "detections": {"%.2f" % t: int(n) for t, n in zip(FINE, found) if n > 0}}
                if len(pool) > 1:
                    row["keys"] = per_key
                results.append(row)
                all_found += found
                all_hours += hours
                if not args.json:
                    print("%-15s %-7s %5.2f h  max %.2f  fitted threshold for %.2g/h: %.2f" % (
                        preset, cat, hours, top, args.target_per_hour, thr))
    fitted = [r["threshold"] for r in results if not math.isnan(r["threshold"])]
    # The tail fit extrapolates each row; the detections counted over every row check it
    # where the data reach: the lowest threshold whose pooled rate is at most the target.
    # A pooled rate means something once the hours hold several false alarms at the
    # target; below that the highest unmarked score seen is the floor instead.
    rates = all_found / max(all_hours, 1e-9)
    empirical = empirical_threshold(all_found, all_hours, args.target_per_hour)
    floor = empirical if empirical is not None else max(r["max_score"] for r in results)
    recommended = max(fitted + [floor])
    recommended = math.ceil(recommended * 20 - 1e-9) / 20.0
    union = math.sqrt(2 * math.log(union_k / args.target_per_hour))
    out = {"target_per_hour": args.target_per_hour, "recommended_threshold": recommended,
           "union_bound_threshold": round(union, 3), "hours": round(all_hours, 3),
           "empirical_threshold": empirical,
           "false_alarms_per_hour": {"%.2f" % t: round(r, 4) for t, r in zip(FINE, rates) if r > 0},
           "results": results}
    if args.json:
        print(json.dumps(out))
    else:
        for t in (5.5, 5.75, 5.95, 6.15, 6.35, 6.55):
            i = int(np.argmin(np.abs(FINE - t)))
            print("unmarked detections at %.2f: %d in %.1f h (%.3f/h)" % (t, all_found[i], all_hours, rates[i]))
        if empirical is not None:
            print("lowest threshold with at most %.2g false alarms/h over every row: %.2f"
                  % (args.target_per_hour, empirical))
        print("recommended threshold %.2f (distribution-free union bound: %.2f)" % (recommended, union))
    if args.write_default:
        text = re.sub(r"\n%s = [0-9.]+" % const, "\n%s = %.2f" % (const, recommended), keys_text)
        with toolcli.atomic_output(keys_py) as tmp:
            with open(tmp, "w") as f:
                f.write(text)
        # after --json's object, on stderr: stdout stays one JSON document
        print("wrote %s = %.2f to %s (a %.1f s key)" % (const, recommended, os.path.relpath(keys_py),
                                                       key_s), file=sys.stderr if args.json else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(toolcli.run("calibrate", main))
