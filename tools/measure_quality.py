#!/usr/bin/env python3
"""Measure the embedder at a given strength: WHR, ViSQOL and speed.

For each clip (default: a few game-soundtrack OGGs, 10 s from 30 s in), embed the whole clip
with a fixed key and report the watermark-to-host power ratio (full band and in the key's band,
from the embedder's info) and ViSQOL MOS-LQO (as airmark.quality measures it: visqol-python,
audio mode, 48 kHz mono mid of reference and marked, one window over the whole excerpt). Then
time embed_file on a 60 s stereo 44.1 kHz file (x real time).

    python tools/measure_quality.py [--json] [--strength DB] [--clips N] [CLIP ...]
"""

import glob
import json
import os
import sys
import tempfile
import time

import numpy as np

import toolcli

# Debian/Ubuntu install paths of the supertux and neverball-data packages (game soundtracks).
DEFAULT_GLOBS = ("/usr/share/games/supertux2/music/*/*.ogg", "/usr/share/games/neverball/bgm/*.ogg")


def default_clips(n):
    """Up to n clips, alternating between the default directories, evenly spread in each."""
    groups = [sorted(glob.glob(pattern)) for pattern in DEFAULT_GLOBS]
    groups = [g for g in groups if g]
    out = []
    for i in range(n):
        if not groups:
            break
        g = groups[i % len(groups)]
        per = -(-n // len(groups))
        j = (i // len(groups)) * len(g) // per
        if j < len(g) and g[j] not in out:
            out.append(g[j])
    return out


def load_excerpt(path, seconds, offset_s):
    from airmark import audio
    x, fs, _ = audio.read_audio(path)
    a = int(min(offset_s, max(0.0, x.shape[0] / fs - seconds)) * fs)
    return x[a:a + int(seconds * fs)], fs


def visqol_mos(api, ref, deg, fs):
    """ViSQOL of the whole excerpt as airmark.quality measures it: one window (None when the
    reference is silent)."""
    from airmark import quality
    return quality.measure_arrays(ref, deg, fs, max_windows=1, api=api,
                                  window_s=len(ref) / fs)["min_moslqo"]


def measure_speed(key, strength_db, seconds=60.0, samplerate=44100):
    import soundfile as sf
    from airmark import embed
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="airmark-speed-") as tmp:
        src = os.path.join(tmp, "in.wav")
        n = int(seconds * samplerate)
        t = np.arange(n) / samplerate
        x = 0.2 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.05 * rng.standard_normal((n, 2))
        sf.write(src, x.astype(np.float32), samplerate, subtype="PCM_16")
        walls, cpus = [], []
        for _ in range(3):  # best of 3: other processes on the machine only slow it down
            t0, c0 = time.perf_counter(), time.process_time()
            embed.embed_file(src, os.path.join(tmp, "out.wav"), key, strength_db=strength_db,
                             overwrite=True)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return {"seconds": seconds, "samplerate": samplerate, "channels": 2,
            "wall_s": round(min(walls), 3), "cpu_s": round(min(cpus), 3),
            "x_realtime": round(seconds / min(walls), 1),
            "x_realtime_cpu": round(seconds / min(cpus), 1)}


def main(argv=None):
    ap = toolcli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", help="audio files (default: game soundtrack OGGs)")
    ap.add_argument("--clips", dest="n", type=toolcli.positive_int, default=6,
                    help="number of default clips")
    ap.add_argument("--seconds", type=toolcli.positive_float, default=10.0)
    ap.add_argument("--offset", type=toolcli.finite_float, default=30.0,
                    help="excerpt start, seconds")
    ap.add_argument("--strength", type=toolcli.finite_float, default=4.0,
                    help="strength, dB (default: the embedder default)")
    ap.add_argument("--key", help="key file (default: a fixed generated key)")
    ap.add_argument("--no-visqol", action="store_true")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.offset < 0:
        ap.error("--offset must be >= 0")

    from airmark import embed, keys
    key = keys.load(args.key) if args.key else keys.generate(1)
    clips = args.clips or default_clips(args.n)
    if not clips:
        ap.error("no clips: name audio files, or apt-get install supertux-data neverball-data "
                 "for the default ones")
    api = None
    if not args.no_visqol:
        from airmark import quality
        try:
            api = quality.visqol_api()
        except quality.QualityError as exc:
            ap.error("%s; --no-visqol skips it" % exc)
    rows = []
    for path in clips:
        x, fs = load_excerpt(path, args.seconds, args.offset)
        y, info = embed.embed_array(x, fs, key, strength_db=args.strength)
        row = {"clip": os.path.basename(os.path.dirname(path)) + "/" + os.path.basename(path),
               "samplerate": fs, "channels": x.shape[1],
               "whr_db": info["whr_db"], "whr_band_db": info["whr_band_db"],
               "limited_samples": info["limited_samples"]}
        if api is not None:
            row["visqol"] = visqol_mos(api, x, y, fs)
        rows.append(row)
        if not args.json:
            print("%-32s WHR %6.2f dB  in-band %6.2f dB  ViSQOL %s" % (
                row["clip"], row["whr_db"], row["whr_band_db"],
                "-" if row.get("visqol") is None else row["visqol"]),
                flush=True)
    summary = {"strength_db": args.strength, "clips": rows}
    for name in ("whr_db", "whr_band_db", "visqol"):
        vals = [r[name] for r in rows if r.get(name) is not None]
        if vals:
            summary["mean_" + name] = round(float(np.mean(vals)), 3)
            summary["min_" + name] = round(float(np.min(vals)), 3)
    if not args.no_speed:
        summary["speed"] = measure_speed(key, args.strength)
    if args.json:
        print(json.dumps(summary))
    else:
        for name in ("whr_db", "whr_band_db", "visqol"):
            if "mean_" + name in summary:
                print("%-12s mean %7.3f  min %7.3f" % (name, summary["mean_" + name],
                                                       summary["min_" + name]))
        if "speed" in summary:
            s = summary["speed"]
            print("speed        %.1f x real time wall, %.1f x CPU (%.0f s stereo %d Hz WAV "
                  "in %.2f s wall, %.2f s CPU, best of 3)" % (
                      s["x_realtime"], s["x_realtime_cpu"], s["seconds"], s["samplerate"],
                      s["wall_s"], s["cpu_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(toolcli.run("measure_quality", main))
