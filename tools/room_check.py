#!/usr/bin/env python3
"""The simulated rooms against room-acoustics theory.

    python tools/room_check.py [--distance 1,3,6.1,9] [--rt60 0.5] [--scattering 0,0.2] [--json]

For every distance and RT60, builds the room the channel uses (the preset's placement,
room sized to the distance) and reports the measured T30, the wall absorption the RT60
calibration settled on, and the reverberant level: the response's energy from 5 ms after
the direct path on, in dB re the direct path at 1 m (pyroomacoustics' amplitudes are 1/r).
Next to it, Barron's revised theory for the same room,

    10 log10(31200 T / V * exp(-0.04 r / T) / 100)

(T the RT60 in s, V the volume in m^3, r the distance in m). A diffuse room lies near it;
docs/ALGORITHM.md §6 has the table for the default rooms.
"""

import json
import math
import sys

import numpy as np

import toolcli
from airmark import channel
from airmark.clitypes import finite_floats
from airmark.progress import progress_bar

FS = channel.MIC_SAMPLERATE_HZ
DIRECT_GAP_S = 0.005


def _floats(text, option):
    """The comma-separated finite numbers of `option`'s value (at least one)."""
    try:
        vals = finite_floats(text)
    except ValueError as exc:
        raise ValueError("%s: %s" % (option, exc)) from None
    if not vals:
        raise ValueError("%s needs at least one number" % option)
    return vals


def barron_db(distance_m, rt60_s, volume_m3):
    """Reflected energy re the direct sound at 1 m (Barron & Lee 1988, revised theory)."""
    return 10 * math.log10(31200 * rt60_s / volume_m3 * math.exp(-0.04 * distance_m / rt60_s)
                           / 100)


def measure(distance_m, rt60_s, scattering, cache_dir=None):
    cfg = channel.ChannelConfig.from_preset("living-room-6m", distance_m=distance_m,
                                            rt60_s=rt60_s, scattering=scattering)
    dim, src, mic = channel.room_geometry(cfg)
    rirs, info = channel.room_rirs(dim, src, mic, rt60_s, FS, cache_dir=cache_dir,
                                   scattering=scattering)
    h = rirs[0]
    t0 = int(np.argmax(np.abs(h)))
    level = 10 * math.log10(float(np.sum(h[t0 + int(DIRECT_GAP_S * FS):] ** 2)))
    theory = barron_db(distance_m, rt60_s, float(np.prod(dim)))
    return {"distance_m": distance_m, "rt60_s": rt60_s, "scattering": scattering,
            "room_dim_m": [round(float(v), 2) for v in dim],
            "t30_s": info["rt60_measured_s"], "absorption": info["absorption"],
            "reverberant_db": round(level, 2), "barron_db": round(theory, 2),
            "difference_db": round(level - theory, 2)}


def main(argv=None):
    ap = toolcli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--distance", default="1,3,6.1,9", help="metres, comma-separated")
    ap.add_argument("--rt60", default="0.5", help="seconds, comma-separated")
    ap.add_argument("--scattering", default="0,%g" % channel.DEFAULT_SCATTERING,
                    help="comma-separated; 0 is the image-source model alone")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        distances, rt60s, scats = (_floats(args.distance, "--distance"),
                                   _floats(args.rt60, "--rt60"),
                                   _floats(args.scattering, "--scattering"))
        todo = [(d, t, s) for s in scats for t in rt60s for d in distances]
        rows = []
        with progress_bar("rooms", disable=args.json) as update:
            for d, t, s in todo:
                rows.append(measure(d, t, s, args.cache_dir))
                update(len(rows), len(todo))
    except ValueError as e:
        print("room_check: %s" % e, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows))
        return 0
    print("%-10s %-6s %-6s %-16s %-6s %-6s %-10s %-8s %s" % (
        "scattering", "RT60", "dist", "room (m)", "T30", "abs.", "reverb dB", "Barron", "diff"))
    for r in rows:
        print("%-10g %-6g %-6g %-16s %-6.3f %-6.3f %-10.1f %-8.1f %+.1f" % (
            r["scattering"], r["rt60_s"], r["distance_m"],
            "x".join("%g" % v for v in r["room_dim_m"]), r["t30_s"], r["absorption"],
            r["reverberant_db"], r["barron_db"], r["difference_db"]))
    return 0


if __name__ == "__main__":
    sys.exit(toolcli.run("room_check", main))
