#!/usr/bin/env python3
"""Where the over-the-air score goes: the received mark, host and noise taken apart.

    python tools/ota_study.py --corpus corpus [--clips 8] [--preset living-room-6m]
        [--azimuths -20,-6,8.5,22] [--set KEY=VALUE ...] [--json]

The channel is linear apart from the loudspeaker's soft clip, so each clip is sent
through the preset twice without noise (marked and unmarked, same seed) and once
unmarked with noise. That gives, at the microphone, the received mark w, the host h
and the noise n separately, and any mix h + g*w + a*n can be scored without
re-simulating:

1. the product detector (firmware/airmark_detector.py, integer, through
   airmark.detect) at the default strength and at +4 dB more (g = 1.58), without
   noise and with the preset's noise; and on the received mark alone and the mark with
   the noise but without its host, which bound what any front end that takes the host
   out (the line enhancer, or a better one) could reach;
2. a float *study model* of the same statistic (block correlation at the pattern
   lags, D, key matched filter, self-normalised) with other features: the product's
   time-domain sign of x[n]-x[n-2], and per-bin phase (PHAT) and 1-bit Re/Im of a
   256-point STFT. The model is not the product detector (no drift hypotheses, float);
   it answers "would other features help, and where".

Score = the highest statistic within 0.1 s before to 0.3 s after the mark's end.
`--azimuths` gives the microphone placements (degrees, as the channel's
`mic_azimuth_deg`); the clips of each category take them in turn, as `airmark eval`'s
placements do. Without it every clip uses the preset's own placement. `--set` changes
any other field of the preset's ChannelConfig (as `airmark simulate --set` does), e.g.
`--set distance_m=3 --set drift_ppm=0`.
"""

import json
import os
import sys

import numpy as np

import toolcli
from airmark import channel, cmd_simulate, detect, embed, evaluate, fw, keys
from airmark.clitypes import finite_floats
from airmark.progress import progress_bar

FS = 16000
N = 256
H = 128
MARK_START_S = 4.0


def clip_paths(corpus, per_category):
    """(category, index, path) of the first `per_category` clips of each category."""
    by_cat = {}
    for c in evaluate.load_corpus(corpus, clips_per_category=per_category):
        by_cat.setdefault(c["category"], []).append(c["path"])
    return [(cat, i, p) for cat in sorted(by_cat) for i, p in enumerate(by_cat[cat])]


def mark_seconds(key):
    """One pass of the key: the mark every clip gets (2 s for the default key)."""
    return keys.key_seconds(key)


def parts(path, key, preset, seed, cache_dir, mic_azimuth_deg=None, overrides=None):
    import soundfile as sf
    try:
        x, sr = sf.read(path)
    except (RuntimeError, sf.LibsndfileError) as exc:  # missing, unreadable, not audio
        raise ValueError("%s: cannot read (%s)" % (path, exc)) from None
    mark_s = mark_seconds(key)
    # 4 s in, or earlier where a long key would otherwise run past the clip's end
    start_s = min(MARK_START_S, len(x) / sr - mark_s - 0.5)
    if start_s < 1.0:
        raise ValueError("%s is too short for a %.1f s mark" % (os.path.basename(path), mark_s))
    y, _ = embed.embed_array(x, sr, key, start_s=start_s, duration_s=mark_s)
    place = dict(overrides or {})
    if mic_azimuth_deg is not None:
        place["mic_azimuth_deg"] = float(mic_azimuth_deg)
    quiet = channel.ChannelConfig.from_preset(preset, **dict(place, noise=None))
    noisy = channel.ChannelConfig.from_preset(preset, **place)
    a, info = channel.simulate(y, sr, quiet, seed=seed, cache_dir=cache_dir)
    b, _ = channel.simulate(x, sr, quiet, seed=seed, cache_dir=cache_dir)
    c, _ = channel.simulate(x, sr, noisy, seed=seed, cache_dir=cache_dir)
    a, b, c = (v.astype(np.float64) for v in (a, b, c))
    # The channel sets the playback level from each input's RMS, so the marked run plays
    # its host a little softer than the unmarked run; the gain ratio comes from the audio
    # before the mark, where both inputs are the same. The noise is set from the received
    # power above 100 Hz, which the mark (strongest at low frequencies) changes a little.
    pre = slice(int(0.5 * FS), int(start_s * FS))
    s = float(np.dot(a[pre], b[pre]) / max(np.dot(b[pre], b[pre]), 1e-12))
    k = np.sqrt(channel.band_power(a, FS) / max(channel.band_power(b, FS), 1e-12))
    end_s = (start_s + mark_s) * (1 + noisy.drift_ppm * 1e-6) + info["delay_s"]
    return a - s * b, s * b, k * (c - b), end_s


BAND_EDGES_HZ = [125, 250, 500, 1000, 2000, 3000, 4000, 6000]


def band_wnr_db(mark, rest, end_s, mark_s=2.0):
    """Power ratio of `mark` to `rest` per band over the mark's last `mark_s` seconds, dB."""
    i1 = int(end_s * FS)
    i0 = i1 - int(mark_s * FS)
    def bands(v):
        seg = v[i0:i1][:(i1 - i0) // N * N].reshape(-1, N) * np.hanning(N)
        p = np.abs(np.fft.rfft(seg, axis=1)) ** 2
        f = np.fft.rfftfreq(N, 1 / FS)
        return np.array([p[:, (f >= a) & (f < b)].sum() for a, b in
                         zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])])
    return 10 * np.log10(bands(mark) / np.maximum(bands(rest), 1e-12))


def product_score(y, key, end_s):
    r = detect.detect_samples(np.clip(np.round(y), -32768, 32767).astype(np.int16), key)
    i0, i1 = int((end_s - 0.1) / r.hop_s), int((end_s + 0.3) / r.hop_s)
    return float(r.scores[i0:i1].max())


# ---------------------------------------------------------------- float study model

def _signs(key):
    return np.array([1 - 2 * int(b) for b in key["key_bits"]], dtype=np.float64)


def run_key(key, run_blocks):
    """Copy of `key` whose inversion bits come in runs of `run_blocks` blocks (the study's
    slower key modulation; the product keys have runs of 1)."""
    bits = key["key_bits"]
    out = dict(key, key_bits="".join(bits[(i // run_blocks) % len(bits)] for i in range(len(bits))))
    out["checksum"] = fw.module("airmark_key").checksum(out)
    return out


def model_score(x, key, feature, end_s, lag_periods=3, run_blocks=1):
    """Study statistic at the mark's end. feature: "td-sign" (sign of x[n] - x[n-2]),
    "td-signK" (x[n] - x[n-K]), "stft-phat" or "stft-1bit". The block difference D is taken
    `run_blocks` blocks apart, to match a run key (run_key)."""
    s = _signs(key)
    pb = int(key["pattern_blocks"])
    best = -np.inf
    for shift in (0, H // 2):
        v = x[shift:]
        corr = {}
        if feature.startswith("td-sign"):
            k = int(feature[7:] or 2)
            f = np.zeros(len(v))
            f[k:] = np.where(v[k:] >= v[:-k], 1.0, -1.0)
            nh = len(v) // H
            for j in range(1, lag_periods + 1):
                lag = j * pb * N
                p = np.zeros(len(f))
                p[lag:] = f[lag:] * f[:-lag]
                corr[j] = p[:nh * H].reshape(nh, H).sum(1)
        else:
            n = (len(v) - N) // H + 1
            idx = np.arange(N)[None, :] + H * np.arange(n)[:, None]
            spec = np.fft.rfft(v[idx] * np.hanning(N), axis=1)
            f_hz = np.fft.rfftfreq(N, 1 / FS)
            lo, hi = key["band_hz"]
            spec = spec[:, (f_hz >= lo) & (f_hz <= hi)]
            if feature == "stft-phat":
                spec = spec / (np.abs(spec) + 1e-9)
            else:  # stft-1bit
                spec = np.sign(spec.real) + 1j * np.sign(spec.imag)
            for j in range(1, lag_periods + 1):
                lag = j * pb * N // H
                c = np.zeros(n)
                c[lag:] = (spec[lag:] * np.conj(spec[:-lag])).real.sum(1)
                corr[j] = c
        num = den = 0.0
        for j in range(1, lag_periods + 1):
            c = corr[j]
            blk = c.copy()
            blk[1:] += c[:-1]
            d = np.zeros_like(blk)
            r2 = 2 * run_blocks
            d[r2:] = blk[r2:] - blk[:-r2]
            m = s[j * pb:] * s[:-j * pb]
            nm = np.zeros(len(d))
            dn = np.zeros(len(d))
            for i in range(len(m)):
                off = (len(m) - 1 - i) * 2
                nm[off:] += m[i] * d[:len(d) - off]
                dn[off:] += d[:len(d) - off] ** 2
            num, den = num + nm, den + dn
        score = num / np.sqrt(den + 1e-12)
        t = (np.arange(len(score)) + 1) * H / FS + shift / FS
        sel = (t >= end_s - 0.1) & (t <= end_s + 0.3)
        best = max(best, float(score[sel].max()))
    return best


def main(argv=None):
    ap = toolcli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--clips", type=toolcli.positive_int, default=8, help="clips per category")
    ap.add_argument("--preset", default="living-room-6m")
    ap.add_argument("--key", help="key file (default: keys.generate(seed=5))")
    ap.add_argument("--no-model", action="store_true", help="skip the float study model")
    ap.add_argument("--cache-dir", default=os.environ.get("AIRMARK_CACHE_DIR", "cache"))
    ap.add_argument("--features", default="td-sign,stft-phat,stft-1bit",
                    help="study-model features, comma-separated (td-sign, td-signK, stft-phat, "
                         "stft-1bit)")
    ap.add_argument("--run-blocks", type=int, default=1,
                    help="embed with the key's bits in runs of this many blocks (study model "
                         "only: the product detector expects runs of 1)")
    ap.add_argument("--azimuths", default="",
                    help="microphone azimuths in degrees, comma-separated; the clips of each "
                         "category take them in turn (default: the preset's placement)")
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                    help="another ChannelConfig field for the preset (repeatable), e.g. "
                         "distance_m=3; values are JSON where they parse")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.settings:
        try:
            name, value = cmd_simulate.parse_setting(item)  # as `airmark simulate --set`
        except ValueError as exc:
            ap.error(str(exc))
        overrides[name] = value
    try:
        channel.ChannelConfig.from_preset(args.preset, **overrides)
    except (ValueError, KeyError) as exc:
        ap.error("--preset/--set: %s" % exc)
    except TypeError as exc:
        ap.error("--set: a value of the wrong type (%s)" % exc)
    try:
        azimuths = finite_floats(args.azimuths)
    except ValueError as exc:
        ap.error("--azimuths: %s" % exc)
    key = keys.load(args.key) if args.key else keys.generate(seed=5)
    if args.run_blocks < 1:
        ap.error("--run-blocks must be >= 1")
    if args.run_blocks > 1:
        key = run_key(key, args.run_blocks)
    features = [f for f in args.features.split(",") if f]
    for f in features:
        lag = f[len("td-sign"):] if f.startswith("td-sign") else None
        if f not in ("stft-phat", "stft-1bit") and not (lag == "" or lag and lag.isdigit() and int(lag) > 0):
            ap.error("unknown feature %r" % f)
    thr = float(key["threshold"])
    g8 = 10 ** (4 / 20)
    # (detector, condition, host gain, mark gain, noise gain)
    cases = []
    if args.run_blocks == 1:
        cases += [("product", "default strength, no noise", 1.0, 1.0, 0.0),
                  ("product", "default strength, noise", 1.0, 1.0, 1.0),
                  ("product", "+4 dB strength, noise", 1.0, g8, 1.0),
                  ("product", "received mark alone", 0.0, 1.0, 0.0),
                  ("product", "mark and noise, no host", 0.0, 1.0, 1.0)]
    if not args.no_model:
        cases.append(("stft-phat", "received mark alone", 0.0, 1.0, 0.0))
        for feat in features:
            cases.append((feat, "default strength, no noise", 1.0, 1.0, 0.0))
            cases.append((feat, "default strength, noise", 1.0, 1.0, 1.0))
            cases.append((feat, "unmarked, noise", 1.0, 0.0, 1.0))
    if not cases:
        ap.error("nothing to score: --run-blocks > 1 needs the study model")
    clips = clip_paths(args.corpus, args.clips)
    rows = {i: [] for i in range(len(cases))}
    nulls = []
    wnr = []
    hnr = []
    with progress_bar("ota study", disable=args.json) as update:
        for k, (cat, i, path) in enumerate(clips):
            az = azimuths[i % len(azimuths)] if azimuths else None
            try:
                w, h, n, end_s = parts(path, key, args.preset, i, args.cache_dir, az, overrides)
            except ValueError as e:
                raise toolcli.ToolError(e) from None
            wnr.append(band_wnr_db(w, h + n, end_s, mark_seconds(key)))
            hnr.append(band_wnr_db(h, n, end_s, mark_seconds(key)))
            for ci, (feat, _, e, g, a) in enumerate(cases):
                y = e * h + g * w + a * n
                v = product_score(y, key, end_s) if feat == "product" else \
                    model_score(y, key, feat, end_s, int(key.get("lag_periods", 3)),
                                args.run_blocks)
                rows[ci].append({"category": cat, "clip": i, "score": round(v, 3)})
            r0 = detect.detect_samples(np.clip(np.round(h + n), -32768, 32767).astype(np.int16), key)
            nulls.append(float(r0.scores.max()))
            update(k + 1, len(clips))
    summary = []
    for ci, (feat, cond, _, g, a) in enumerate(cases):
        v = np.array([r["score"] for r in rows[ci]])
        cats = sorted({r["category"] for r in rows[ci]})
        by_cat = {c: int(sum(r["score"] >= thr for r in rows[ci] if r["category"] == c))
                  for c in cats}
        med_cat = {c: round(float(np.median([r["score"] for r in rows[ci] if r["category"] == c])), 2)
                   for c in cats}
        summary.append({"detector": feat, "condition": cond, "median": round(float(np.median(v)), 2),
                        "detected": int((v >= thr).sum()),
                        "clips": len(v), "detected_by_category": by_cat,
                        "median_by_category": med_cat})
    wnr_median = [round(float(v), 1) for v in np.median(np.array(wnr), axis=0)]
    hnr_median = [round(float(v), 1) for v in np.median(np.array(hnr), axis=0)]
    out = {"preset": args.preset, "set": overrides, "azimuths_deg": azimuths, "threshold": thr,
           "cases": summary,
           "band_edges_hz": BAND_EDGES_HZ, "mark_to_rest_db": wnr_median,
           "host_to_noise_db": hnr_median,
           "unmarked_max": round(max(nulls), 2), "per_clip": {str(k): v for k, v in rows.items()}}
    if args.json:
        print(json.dumps(out))
        return 0
    print("preset %s, %d clips, threshold %.2f; unmarked (with noise) max %.2f"
          % (args.preset, len(clips), thr, out["unmarked_max"]))
    print("received mark / (host + noise) during the mark, median dB per band: "
          + ", ".join("%d-%d Hz %.1f" % (a, b, v) for a, b, v in
                      zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], wnr_median)))
    print("received host / noise, median dB per band: "
          + ", ".join("%d-%d Hz %.1f" % (a, b, v) for a, b, v in
                      zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], hnr_median)))
    print("%-10s %-28s %7s %9s  %s" % ("detector", "condition", "median", "detected",
                                         "by category: detected (median)"))
    for s in summary:
        det = "%d/%d" % (s["detected"], s["clips"])
        cats = " ".join("%s %d (%.2f)" % (c, n, s["median_by_category"][c])
                        for c, n in sorted(s["detected_by_category"].items()))
        print("%-10s %-28s %7.2f %9s  %s" % (s["detector"], s["condition"], s["median"], det,
                                             cats))
    return 0


if __name__ == "__main__":
    sys.exit(toolcli.run("ota_study", main))
