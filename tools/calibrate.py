"""Set the detection threshold from unmarked audio: <= 1 false alarm per 10 hours.

Usage: python tools/calibrate.py --corpus corpus [--presets digital,living-room-6m]
                                 [--key KEY] [--key-seeds N]
                                 [--target-per-hour 0.1] [--json] [--write-default]

Runs the firmware detector over every unmarked clip of the corpus (music, speech,
steady drum loops 80-160 BPM), joined into one continuous stream per category and
channel, and counts upcrossings of the score per hour of audio at a ladder of
thresholds. Rare events are extrapolated with a Gaussian tail fitted to the measured
upcrossing rates, rate(t) = A * exp(-t^2 / (2 s^2)) (Rice's formula for a smooth
stationary score), and checked against the distribution-free union bound
rate(t) <= hops_per_hour * hypotheses * exp(-t^2 / 2) (Hoeffding, docs/ALGORITHM.md).
The recommended threshold is the largest, over categories and channels, of the
fitted threshold for the target rate. --write-default stores it in airmark/keys.py.

--key-seeds N pools N keys of one shape (seeds 1..N, the shape of --key or the default):
their upcrossings and hours are added before the fit, so the threshold holds for a key
drawn at random rather than for one key, whose tail can be lighter or heavier than the
next one's. Each key's own threshold is reported too.
"""

import argparse
import json
import math
import os
import re
import sys

import numpy as np
import soundfile as sf

from airmark import channel, detect, keys

LADDER = np.arange(2.0, 8.01, 0.25)


def upcrossings(scores, t):
    above = scores >= t
    return int(np.count_nonzero(above[1:] & ~above[:-1]) + (1 if len(above) and above[0] else 0))


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


def load_stream(paths):
    parts = []
    fs0 = None
    for p in paths:
        x, fs = sf.read(p, dtype="float32", always_2d=True)
        fs0 = fs0 or fs
        if fs != fs0:
            continue
        parts.append(x.mean(axis=1))
    return np.concatenate(parts), fs0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--presets", default="digital,living-room-6m")
    ap.add_argument("--key", default=None, help="key file (default: a fresh key, seed 1)")
    ap.add_argument("--key-seeds", type=int, default=0,
                    help="pool this many keys of the key's shape (seeds 1..N) instead of one key")
    ap.add_argument("--target-per-hour", type=float, default=0.1)
    ap.add_argument("--max-minutes", type=float, default=20.0, help="per category")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--write-default", action="store_true")
    args = ap.parse_args(argv)
    man_path = os.path.join(args.corpus, "manifest.json")
    if not os.path.exists(man_path):
        print("calibrate: no corpus at %s (make corpus)" % args.corpus, file=sys.stderr)
        return 2
    with open(man_path) as f:
        manifest = json.load(f)
    key = keys.load(args.key) if args.key else keys.generate(1)
    if args.key_seeds < 0:
        print("calibrate: --key-seeds must be >= 0", file=sys.stderr)
        return 2
    pool = [key]
    if args.key_seeds:
        secs = len(key["key_bits"]) * key["block_samples"] / float(key["sample_rate_hz"])
        pool = [keys.generate(s, block_samples=key["block_samples"],
                              pattern_blocks=key["pattern_blocks"], lag_periods=key["lag_periods"],
                              key_seconds=secs, band_hz=key["band_hz"],
                              diff_weight=key.get("diff_weight", 1), threshold=key["threshold"],
                              line_enhancer=bool(key.get("line_enhancer", 0)))
                for s in range(1, args.key_seeds + 1)]
    clips = manifest["clips"] if isinstance(manifest, dict) and "clips" in manifest else manifest
    bycat = {}
    for c in clips:
        bycat.setdefault(c["category"], []).append(os.path.join(args.corpus, c["file"]))
    results = []
    union_k = 3600 * 16000 / (key["block_samples"] // 2) * 7
    for preset in args.presets.split(","):
        cfg = channel.ChannelConfig.from_preset(preset)
        for cat in sorted(bycat):
            n_max = int(args.max_minutes * 6)
            x, fs = load_stream(sorted(bycat[cat])[:n_max])
            y, _ = channel.simulate(x, fs, cfg, seed=11, cache_dir=os.path.join("cache", "calibrate"))
            counts = np.zeros(len(LADDER))
            hours = 0.0
            top = 0.0
            per_key = []
            for k in pool:
                res = detect.detect_samples(y, k)
                h = res.duration_s / 3600.0
                c = np.array([upcrossings(res.scores, t) for t in LADDER], dtype=float)
                kfit = fit_tail(c / h, h)
                per_key.append({"key_id": k["key_id"], "max_score": round(res.max_score, 3),
                                "threshold": round(threshold_for(kfit, args.target_per_hour), 3)
                                if kfit else None})
                counts += c
                hours += h
                top = max(top, res.max_score)
            rates = counts / hours
            fit = fit_tail(rates, hours)
            thr = threshold_for(fit, args.target_per_hour) if fit else float("nan")
            row = {"preset": preset, "category": cat, "hours": round(hours, 3),
                   "max_score": round(top, 3),
                   "upcrossings_per_hour": {"%.2f" % t: round(r, 2) for t, r in zip(LADDER, rates) if r > 0},
                   "fit": fit, "threshold": round(thr, 3)}
            if len(pool) > 1:
                row["keys"] = per_key
            results.append(row)
            if not args.json:
                print("%-15s %-7s %5.2f h  max %.2f  fitted threshold for %.2g/h: %.2f" % (
                    preset, cat, hours, top, args.target_per_hour, thr))
    fitted = [r["threshold"] for r in results if not math.isnan(r["threshold"])]
    recommended = max(fitted + [r["max_score"] for r in results])
    recommended = math.ceil(recommended * 20) / 20.0
    union = math.sqrt(2 * math.log(union_k / args.target_per_hour))
    out = {"target_per_hour": args.target_per_hour, "recommended_threshold": recommended,
           "union_bound_threshold": round(union, 3), "results": results}
    if args.json:
        print(json.dumps(out))
    else:
        print("recommended threshold %.2f (distribution-free union bound: %.2f)" % (recommended, union))
    if args.write_default:
        if key.get("diff_weight", 1) != keys.DEFAULTS["diff_weight"]:
            print("calibrate: --write-default needs a key with the default diff_weight %d"
                  % keys.DEFAULTS["diff_weight"], file=sys.stderr)
            return 2
        path = os.path.join(os.path.dirname(keys.__file__), "keys.py")
        with open(path) as f:
            text = f.read()
        seconds = len(key["key_bits"]) * key["block_samples"] / float(key["sample_rate_hz"])
        name = keys.threshold_constant(seconds, key["lag_periods"], key.get("line_enhancer", 0))
        if name is None:
            print("calibrate: no default constant for a %.1f s key with lag_periods %d; "
                  "put the threshold in the key instead" % (seconds, key["lag_periods"]), file=sys.stderr)
            return 2
        text = re.sub(r"\n%s = [0-9.]+" % name, "\n%s = %.2f" % (name, recommended), text)
        with open(path, "w") as f:
            f.write(text)
        print("wrote %s = %.2f to %s (a %.1f s key)" % (name, recommended, os.path.relpath(path), seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
