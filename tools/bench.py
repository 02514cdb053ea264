#!/usr/bin/env python3
"""Per-hop cost of the firmware loop by operation, and what it means on an RP2040 / ESP32.

    python tools/bench.py [KEYJSON] [--seconds S] [--json]

1. Measured (CPython + numpy, this machine): the real detector
   (firmware/airmark_detector.py) is fed S seconds of noise; its operations are
   timed by wrapping the methods it calls per hop (`_features`, `_corr`, `_mf`);
   the rest of `feed` is Python-level bookkeeping. Python lines executed per hop
   are counted with sys.settrace (detector `feed` and the shared loop's `step`).
2. Estimated (RP2040 @ 125 MHz, MicroPython + ulab): operation counts x costs
   from the design's RP2040 cost table (an RP2040 cycle model of MicroPython
   1.28 + ulab 6.12):
   - viper kernels: 745 us per 1024-element int16 viper dot -> 0.73 us/element
     (used for the detector's features/corr8/mf16 kernels and the capture's top16
     copy, each one load-compute-store loop per element);
   - ulab path (CircuitPython, no viper): the correlations and matched filters are
     integer row operations, an XOR or multiply then a row sum per element: 0.37
     us/element (0.24 + 0.13, timed on the emulated RP2040 of docs/ALGORITHM.md section
     4); a float element-wise op 2,529 us/1024 -> 2.47 us/element (features = add +
     compare + the float conversion, 3 passes);
   - Python bytecode: an empty `for` iteration costs 3.2 us; one executed line
     is charged 3.2 us (lower bound) to 6 us (assumption: a line with attribute
     and subscript loads is about two empty iterations).
   ESP32 @ 240 MHz: no cycle model was available; assumption: every cost scales
   with the clock, 125/240 of the RP2040 figure (conservative: it ignores the
   ESP32's FPU, which would help the float parts far more).
Budget: share of real time = cost per hop / hop duration (hop/16000 s); the
issue's target is <= 25 % on the RP2040. The viper figure is an upper bound: the
detector's packed-bit correlations and grouped matched filters do far less than one
dot element of work per sample and lag. The hop cycle-counted on an emulated RP2040,
and tools/bench_viper.py's estimate, are in docs/ALGORITHM.md section 4.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

import toolcli
from airmark import keys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
FIRMWARE = os.path.join(ROOT, "firmware")
sys.path.insert(0, FIRMWARE)

RATE_HZ = 16000
VIPER_US_PER_ELEM = 745.0 / 1024
ROWOP_US_PER_ELEM = 0.37
ELEMWISE_US_PER_ELEM = 2529.0 / 1024
LINE_US_LOW = 3.2
LINE_US_TYPICAL = 6.0
ESP32_SCALE = 125.0 / 240.0


def default_key():
    """The product's default key parameters (what `airmark keygen` writes)."""
    return keys.generate(1)


class OpTimer:
    """Wraps a bound method: counts calls, elements and CPython time."""

    def __init__(self, fn, elems):
        self.fn = fn
        self.elems = elems
        self.calls = 0
        self.n = 0
        self.s = 0.0

    def __call__(self, *args):
        t0 = time.perf_counter()
        r = self.fn(*args)
        self.s += time.perf_counter() - t0
        self.calls += 1
        self.n += self.elems(*args)
        return r


def count_lines(fn, files):
    """Lines executed inside `files` while calling fn()."""
    n = [0]

    def tracer(frame, event, arg):
        if frame.f_code.co_filename in files:
            if event == "line":
                n[0] += 1
            return tracer
        return None

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return n[0]


class DotCounter:
    """Stands in for the detector module's `np`: forwards everything, counts the work of
    its row sums (the correlations' XORs and the matched filters' products, one element
    each) and of any np.dot (the matched filters' rare exact fallback)."""

    def __init__(self, np_mod, h):
        self._np = np_mod
        self.h = h
        self.corr_calls = self.corr_n = self.mf_calls = self.mf_n = 0

    def __getattr__(self, name):
        return getattr(self._np, name)

    def dot(self, a, b):
        n = len(a)
        if n == self.h:
            self.corr_calls += 1
            self.corr_n += n
        else:
            self.mf_calls += 1
            self.mf_n += n
        return self._np.dot(a, b)

    def sum(self, a, axis=None):
        if axis == 1 and getattr(a, "ndim", 1) == 2:
            rows, n = a.shape
            if n == self.h:
                self.corr_calls += rows
                self.corr_n += rows * n
            else:
                self.mf_calls += rows
                self.mf_n += rows * n
        return self._np.sum(a, axis=axis)


def run(record, seconds):
    import airmark_detector
    import airmark_loop

    det = airmark_detector.Detector(record, use_kernels=False)
    h = det.hop_samples
    hops = int(seconds * RATE_HZ) // h
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(hops * h) * 3000).astype(np.int16)
    phases = [name for name in ("_features", "_pairs", "_best") if hasattr(det, name)]
    timers = {}
    for name in phases:
        timers[name] = OpTimer(getattr(det, name), lambda *a: 0)
        setattr(det, name, timers[name])
    counter = DotCounter(airmark_detector.np, h)
    airmark_detector.np = counter
    try:
        t0 = time.perf_counter()
        for k in range(hops):
            det.feed(x[k * h:(k + 1) * h])
        total = time.perf_counter() - t0
    finally:
        airmark_detector.np = counter._np

    # Python lines per hop on the no-viper path (detector feed + the loop's step).
    det2 = airmark_detector.Detector(record, use_kernels=False)
    files = {airmark_detector.__file__, airmark_loop.__file__}

    class Src:
        hop_samples = h
        overruns = 0
        dropped_samples = 0
        at_end = False

        def next_hop(self):
            return x[:h]

        def done(self):
            pass

    loop = airmark_loop.Loop(Src(), det2, airmark_loop.SystemClock(), lambda s: None,
                             "k", RATE_HZ, status_ms=0)
    for _ in range(64):
        loop.step()
    n_steps = 64
    lines = count_lines(lambda: [loop.step() for _ in range(n_steps)], files) / n_steps
    loop_lines = count_lines(lambda: [loop.step() for _ in range(n_steps)], {airmark_loop.__file__}) / n_steps

    res = {
        "key_id": record["key_id"], "hop_samples": h, "hop_us": h * 1e6 / RATE_HZ,
        "npairs": det.npairs, "hops": hops,
        "state_bytes": det.state_bytes(),
        "cpython_us_per_hop": dict([(n.strip("_"), timers[n].s / hops * 1e6) for n in phases]
                                   + [("total", total / hops * 1e6)]),
        "ops_per_hop": {
            "features_elems": h,
            "corr_calls": counter.corr_calls / hops, "corr_elems": counter.corr_n / hops,
            "mf_calls": counter.mf_calls / hops, "mf_elems": counter.mf_n / hops,
            "top16_elems": h, "python_lines": lines, "loop_lines": loop_lines},
    }
    o = res["ops_per_hop"]
    viper = {
        "features": o["features_elems"] * VIPER_US_PER_ELEM,
        "corr8": o["corr_elems"] * VIPER_US_PER_ELEM,
        "mf16": o["mf_elems"] * VIPER_US_PER_ELEM,
        "capture_top16": o["top16_elems"] * VIPER_US_PER_ELEM,
        "python_low": (o["loop_lines"] + 10) * LINE_US_LOW,
        "python_typical": (o["loop_lines"] + 10) * LINE_US_TYPICAL,
    }
    ulab = {
        "features": 3 * o["features_elems"] * ELEMWISE_US_PER_ELEM,
        "corr_rows": o["corr_elems"] * ROWOP_US_PER_ELEM,
        "mf_rows": o["mf_elems"] * ROWOP_US_PER_ELEM,
        "python_low": o["python_lines"] * LINE_US_LOW,
        "python_typical": o["python_lines"] * LINE_US_TYPICAL,
    }
    for est in (viper, ulab):
        base = sum(v for k, v in est.items() if not k.startswith("python"))
        est["total_low"] = base + est["python_low"]
        est["total_typical"] = base + est["python_typical"]
        est["share_low_pct"] = 100 * est["total_low"] / res["hop_us"]
        est["share_typical_pct"] = 100 * est["total_typical"] / res["hop_us"]
    res["rp2040_125mhz_viper_us"] = viper
    res["rp2040_125mhz_ulab_only_us"] = ulab
    res["esp32_240mhz_viper_share_typical_pct"] = viper["share_typical_pct"] * ESP32_SCALE
    res["esp32_240mhz_ulab_only_share_typical_pct"] = ulab["share_typical_pct"] * ESP32_SCALE
    # Arrays on the board: detector state + capture (4 raw buffers of int32 words + dense hop).
    res["capture_bytes_rp2"] = 4 * 256 * 4 + 2 * h
    res["arrays_bytes"] = res["state_bytes"] + res["capture_bytes_rp2"]
    res["line_enhancer"] = int(record.get("line_enhancer", 0))
    return res


def report(r):
    c = r["cpython_us_per_hop"]
    o = r["ops_per_hop"]
    v = r["rp2040_125mhz_viper_us"]
    u = r["rp2040_125mhz_ulab_only_us"]
    out = []
    out.append("key %s: hop %d samples (%.0f us), %d lag pairs, %d hops measured"
               % (r["key_id"], r["hop_samples"], r["hop_us"], r["npairs"], r["hops"]))
    out.append("operations per hop: features %d samples; corr %d row sums x %d; mf %d rows, %d elements;"
               " Python lines: %.0f (no-viper detector feed + loop step), %.0f (loop step alone)"
               % (o["features_elems"], o["corr_calls"], o["corr_elems"] / max(o["corr_calls"], 1),
                  o["mf_calls"], o["mf_elems"], o["python_lines"], o["loop_lines"]))
    out.append("CPython+numpy here, us/hop: " + "  ".join("%s %.1f" % kv for kv in sorted(c.items())))
    out.append("RP2040 @125 MHz, MicroPython viper kernels, op-count upper bound (every sample priced"
               " as a viper dot element; the packed-bit kernels take 32 a word), us/hop: features %.0f"
               "  corr8 %.0f  mf16 %.0f  top16 %.0f  python %.0f..%.0f  => %.0f..%.0f us = %.1f..%.1f %%"
               " of real time (cycle-counted hops: docs/ALGORITHM.md section 4)"
               % (v["features"], v["corr8"], v["mf16"], v["capture_top16"], v["python_low"],
                  v["python_typical"], v["total_low"], v["total_typical"], v["share_low_pct"],
                  v["share_typical_pct"]))
    out.append("RP2040 @125 MHz, ulab only (CircuitPython), us/hop: features %.0f  corr %.0f  mf %.0f"
               "  python %.0f..%.0f  => %.1f..%.1f %% of real time (an op-count model without"
               " ulab's call overheads and garbage collection; cycle-counted on an emulated RP2040:"
               " docs/ALGORITHM.md section 4)"
               % (u["features"], u["corr_rows"], u["mf_rows"], u["python_low"], u["python_typical"],
                  u["share_low_pct"], u["share_typical_pct"]))
    out.append("ESP32 @240 MHz (clock-scaled assumption): viper %.1f %%, ulab only %.1f %% of real time"
               % (r["esp32_240mhz_viper_share_typical_pct"], r["esp32_240mhz_ulab_only_share_typical_pct"]))
    if r.get("line_enhancer"):
        out.append("this key runs the line enhancer first: the estimates above cover the detector"
                   " only; the enhancer adds about 0.8 ms per hop on an RP2040 at 125 MHz with"
                   " its Thumb kernels, 4.6 ms in viper alone (cycle-counted, docs/ALGORITHM.md"
                   " section 8)")
    out.append("arrays here (CPython keeps the history in float64): detector %d B + capture %d B = %d B"
               " (the board's figure: micropython tools/bench_viper.py KEY, state_bytes)"
               % (r["state_bytes"], r["capture_bytes_rp2"], r["arrays_bytes"]))
    return "\n".join(out)


def main(argv=None):
    ap = toolcli.ArgumentParser(description=__doc__.strip(), usage="%(prog)s [KEYJSON] "
                                "[--seconds S] [--json]",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("key", nargs="?", metavar="KEYJSON",
                    help="key file (default: the product's default key)")
    ap.add_argument("--seconds", type=toolcli.positive_float, default=5.0,
                    help="seconds of noise to feed (default 5)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    record = keys.load(args.key) if args.key else default_key()
    if int(args.seconds * RATE_HZ) < int(record["block_samples"]):
        ap.error("--seconds %g is shorter than one block of the key (%d samples)"
                 % (args.seconds, int(record["block_samples"])))
    r = run(record, args.seconds)
    print(json.dumps(r, indent=1) if args.json else report(r))
    return 0


if __name__ == "__main__":
    sys.exit(toolcli.run("bench", main))
