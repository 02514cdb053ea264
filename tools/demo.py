"""make demo: key -> embed a 2 s mark -> simulated rooms (1 m, 6.1 m) -> firmware detector
(and the same mark through the detector with its line enhancer).

No hardware. Writes everything under --out (default out/demo) and prints what happened
in each room: detected or missed, and whether the unmarked copy stayed quiet; the
score over time of both copies is drawn into scores-<room>.png.
Exit code 0 when the demo ran (the result is reported, hit or miss), 2 on an error (one
line on stderr), 130 on Ctrl-C; every file appears whole or not at all.
"""

import json
import os
import shutil
import sys

import numpy as np
import soundfile as sf

import toolcli
from airmark import channel, detect, embed, fsutil, keys
from airmark.score_plot import plot_scores

SAMPLERATE_HZ = 44100


def demo_music(seconds, seed):
    """12 s of stereo music-like audio: synthetic chords, bass and drums plus a shaker."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLERATE_HZ)
    left = channel.synth_music(n, SAMPLERATE_HZ, rng)
    shaker = rng.standard_normal(n) * np.abs(np.sin(np.arange(n) / SAMPLERATE_HZ * np.pi * 4)) ** 4
    mix = left + 0.3 * shaker
    right = 0.9 * mix + 0.1 * np.roll(mix, 300)
    y = np.stack([mix, right], axis=1)
    return (0.25 * y / np.max(np.abs(y))).astype(np.float32)


def run_room(args, key, host, marked, seg0, seg1, preset, step):
    cfg = channel.ChannelConfig.from_preset(preset)
    cache = os.path.join(args.out, "cache")
    rx, cinfo = channel.simulate(marked, SAMPLERATE_HZ, cfg, seed=args.seed, cache_dir=cache)
    rx0, _ = channel.simulate(host, SAMPLERATE_HZ, cfg, seed=args.seed, cache_dir=cache)
    channel.write_wav_int16(os.path.join(args.out, "received-%s.wav" % preset), rx)  # atomic
    print("%d. channel %s: %.1f m, RT60 %.2f s, %s noise at %.0f dB SNR, drift %+.0f ppm -> 16 kHz int16" % (
        step, preset, cfg.distance_m if cfg.room else 0.0, cfg.rt60_s if cfg.room else 0.0, cfg.noise,
        cfg.snr_db, cfg.drift_ppm))
    at_mic = [s * (1 + cfg.drift_ppm * 1e-6) + cinfo.get("delay_s", 0.0) for s in (seg0, seg1)]
    expect = at_mic[1]
    res = detect.detect_samples(rx, key)
    res0 = detect.detect_samples(rx0, key)
    hits = [e for e in res.events if expect - 0.6 <= e["t"] <= expect + 0.5]
    print("   firmware detector: %d event(s) %s; max score %.2f, threshold %.2f" % (
        len(res.events), json.dumps(res.events), res.max_score, key["threshold"]))
    print("   unmarked copy through the same room: %d event(s), max score %.2f" % (
        len(res0.events), res0.max_score))
    png = os.path.join(args.out, "scores-%s.png" % preset)
    plot_scores(png, [("unmarked", res0), ("marked", res)], key["threshold"], marks=[at_mic],
                title="%s: score at the microphone" % preset)
    print("   score over time: %s" % png)
    enh = keys.enhancer_twin(key)  # the same mark, the enhancer in front
    eres = detect.detect_samples(rx, enh)
    eres0 = detect.detect_samples(rx0, enh)
    print("   with the line enhancer (keygen --line-enhancer, threshold %.2f): %d event(s), max score "
          "%.2f; unmarked max %.2f" % (enh["threshold"], len(eres.events), eres.max_score,
                                       eres0.max_score))
    if args.micropython:
        mres, _ = detect.detect_file_micropython(rx, key, args.micropython)
        print("   replay under %s: %s" % (args.micropython, json.dumps(mres.events)))
    ok = bool(hits) and not res0.events and len(res.events) == 1
    if ok:
        print("   RESULT: detected %.3f s after the mark's end reached the mic (score %.2f)" % (
            hits[0]["t"] - expect, hits[0]["score"]))
    else:
        print("   RESULT: %s" % ("missed: the mark was not detected" if not hits else "false alarm"))
    return {"preset": preset, "expected_t": expect, "events": res.events,
            "unmarked_events": res0.events, "max_score": res.max_score,
            "unmarked_max_score": res0.max_score, "detected": ok, "channel": cinfo,
            "line_enhancer": {"events": eres.events, "max_score": eres.max_score,
                              "unmarked_max_score": eres0.max_score}}


def main(argv=None):
    ap = toolcli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/demo")
    ap.add_argument("--preset", action="append", choices=sorted(channel.PRESETS),
                    help="channel preset (repeatable; default: near-1m and living-room-6m)")
    ap.add_argument("--strength", type=toolcli.finite_float, default=embed.DEFAULT_STRENGTH_DB,
                    help="mark strength, dB over the masking threshold")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--micropython", default=os.environ.get("AIRMARK_MICROPYTHON"),
                    help="also replay through this MicroPython+ulab binary")
    args = ap.parse_args(argv)
    if args.micropython and shutil.which(args.micropython) is None:
        ap.error("--micropython: no such program %r" % args.micropython)
    toolcli.make_dir(args.out)
    key = keys.generate(args.seed)
    keys.save(key, os.path.join(args.out, "key.json"), force=True)
    host = demo_music(12.0, args.seed)
    with toolcli.atomic_output(os.path.join(args.out, "host.wav")) as tmp:
        sf.write(tmp, host, SAMPLERATE_HZ, subtype="PCM_16")
    start_s = 5.0
    marked, info = embed.embed_array(host, SAMPLERATE_HZ, key, start_s=start_s, duration_s=2.0,
                                     strength_db=args.strength)
    with toolcli.atomic_output(os.path.join(args.out, "marked.wav")) as tmp:
        sf.write(tmp, marked, SAMPLERATE_HZ, subtype="PCM_16")
    seg0, seg1 = info["segments"][0]
    print("1. key %s; embedded a %.2f s mark at %.2f-%.2f s (WHR %.1f dB in band, %.1f dB overall)" % (
        key["key_id"], seg1 - seg0, seg0, seg1, info["whr_band_db"], info["whr_db"]))

    results = []
    for n, preset in enumerate(args.preset or ["near-1m", "living-room-6m"]):
        results.append(run_room(args, key, host, marked, seg0, seg1, preset, n + 2))
    fsutil.write_json_atomic(os.path.join(args.out, "result.json"),
                             {"key": key["key_id"], "segment_s": [seg0, seg1],
                              "whr_band_db": info["whr_band_db"], "rooms": results},
                             indent=1, default=str)
    print("summary: " + "; ".join("%s %s" % (r["preset"], "DETECTED" if r["detected"] else "missed")
                                   for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(toolcli.run("demo", main))
