"""Per-hop cost of the detector's viper path, as a ratio to a reference viper kernel.

Usage: micropython tools/bench_viper.py [KEYJSON]
On a board: copy firmware/airmark_{detector,viper,key}.py (ARM boards: and
airmark_viper_thumb.py; enhancer keys: the airmark_enhancer modules), this file and a
key file to it, then `import bench_viper; bench_viper.main("key.json")`: the output
then also has `board_hop_us` and `board_load_pct`, the hop timed on the board itself,
and each kernel's own time (`board_features_us`, `board_pairs_us`, `board_best_us`,
`board_enhancer_us`).

Runs under MicroPython (viper). It times Detector.feed (the whole hop: features,
every lag pair, matched filters, best hypothesis), each of its kernels alone as feed
runs them (`kernels` names the path: on ARM boards the features and the lag pairs are
the Thumb calls of airmark_viper_thumb; a line-enhancer key adds the enhancer's hop),
and the reference kernel of the design's RP2040 cost table (measured on an RP2040): a viper
int32 dot of two 1024-sample array('h') (745 us at 125 MHz), and the same dot in plain
bytecode (10 447 us). The hop is kernels plus a little bytecode glue in Detector.feed,
and the two do not scale alike between machines: bytecode costs 14x the viper dot on
an RP2040 but 30-46x on a desktop. So the estimate scales each part by its own
reference, both taken in one run on this machine: the kernels by the viper dot, the
rest of the hop by the bytecode dot (`rp2040_125mhz_load_pct`). The older estimate,
the whole hop scaled by the viper dot, is kept as
`rp2040_125mhz_load_pct_viper_scaled`; it overstates the glue. Prints one JSON line.
"""

import sys
import time
import array
import json

USAGE = ("usage: micropython tools/bench_viper.py [KEYJSON]  (on a board: "
         "import bench_viper; bench_viper.main(\"key.json\"))")


def _fail(msg, code=2):
    """One line on stderr, the exit code: the same shape as the CPython tools."""
    print("bench_viper: %s" % msg, file=sys.stderr)
    return code


if __name__ == "__main__" and ("-h" in sys.argv or "--help" in sys.argv):
    print(USAGE)
    sys.exit(0)
try:
    import micropython
except ImportError:
    if __name__ != "__main__":
        raise
    sys.exit(_fail("runs under MicroPython (viper): micropython tools/bench_viper.py [KEYJSON]"))


def _dir_of(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else "."


_TOOLS = _dir_of(globals().get("__file__", "tools/bench_viper.py"))
_ROOT = _dir_of(_TOOLS) if _TOOLS != "." else ".."
sys.path.insert(0, _ROOT + "/firmware")

import airmark_detector as core  # noqa: E402
import airmark_key  # noqa: E402

RP2040_DOT1024_US = 745  # rp2040-costs.md: viper int32 dot of two array('h'), N=1024
RP2040_BYTECODE_DOT1024_US = 10447  # rp2040-costs.md: the same dot in plain bytecode
RP2040_HZ = 125000000
ESP32_HZ = 240000000


@micropython.viper
def dot1024(a: ptr16, b: ptr16, n: int) -> int:
    acc = 0
    i = 0
    while i < n:
        acc += int(a[i]) * int(b[i])
        i += 1
    return acc


def bytecode_dot(a, b, n):
    acc = 0
    for i in range(n):
        acc += a[i] * b[i]
    return acc


def best_of(fn, reps, rounds=5):
    best = None
    for _ in range(rounds):
        t0 = time.ticks_us()
        for _ in range(reps):
            fn()
        dt = time.ticks_diff(time.ticks_us(), t0) / reps
        best = dt if best is None or dt < best else best
    return best


def main(path=None):
    """Bench the key file at `path` (default: argv[1], else the golden key). Ports
    without sys.argv, such as the rp2 port, call main(path) from the REPL."""
    if path is None:
        argv = getattr(sys, "argv", None) or []
        if "-h" in argv or "--help" in argv:
            print(USAGE)
            return 0
        for a in argv[1:]:
            if a.startswith("-"):
                return _fail("unknown option %s (%s)" % (a, USAGE))
        if len(argv) > 2:
            return _fail("one key file at most (%s)" % USAGE)
        path = argv[1] if len(argv) > 1 else _ROOT + "/tests/golden/key.json"
    try:
        with open(path) as f:
            key = airmark_key.validate(json.load(f))
    except OSError as exc:
        return _fail("%s: cannot read (%s)" % (path, exc))
    except ValueError as exc:  # not JSON, or airmark_key.KeyInvalid
        return _fail("%s: not a valid key (%s)" % (path, exc))
    try:
        return _bench(key)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _bench(key):
    det = core.Detector(key)
    if det.kernels is None:
        print(json.dumps({"error": "no viper kernels on this port"}))
        return 1
    h = det.hop_samples
    buf = bytearray(2 * h)
    seed = 7
    for i in range(len(buf)):
        seed = (seed * 1103515245 + 12345) & 0x3FFFFFFF
        buf[i] = (seed >> 16) & 0xFF
    x = core.np.frombuffer(buf, dtype=core.np.int16) if core.np is not None else buf
    for _ in range(300):
        det.feed(x)
    a = array.array("h", range(1024))
    b = array.array("h", range(1024))
    t_dot = best_of(lambda: dot1024(a, b, 1024), 50)
    t_bc = best_of(lambda: bytecode_dot(a, b, 1024), 10)
    t_hop = best_of(lambda: det.feed(x), 200)
    ratio = t_hop / t_dot
    # The hop's parts, each kernel alone (after the hop timing: they disturb the state).
    k = det.kernels
    if det._ft is not None:  # ARM boards: the features in Thumb assembly too
        fctl = det._fctl
        fctl[0] = 0
        t_feat = best_of(lambda: det._ft(x, det._xa, det._feat_buf, fctl), 200)
    else:
        t_feat = best_of(lambda: k.features(x, det._xa, det._feat_buf, 0, det._ring, h), 200)
    if det._ps is not None:  # ARM boards: hop_pairs' work in Thumb assembly, as feed runs it
        ctl = det._ctl
        ctl[0] = ctl[1] = ctl[2] = 0

        def pairs():
            det._ps(det._st, det._feat_buf, det._da, ctl)
            det._mf(det._st, det._da, det._pos, ctl)
    else:
        def pairs():
            k.hop_pairs(det._feat_buf, det._st, det._da, det._pos, 0, 0, det._grp)
    t_pairs = best_of(pairs, 200)
    t_enh = 0.0
    if det.enhancer is not None:
        t_enh = best_of(lambda: det.enhancer.process(x, det._enh_out), 200)
    t_best = best_of(lambda: k.best_score(det._st, det._hyps8, len(det._hyps8),
                                          det.lag_periods, 0), 200)
    t_kernels = t_feat + t_pairs + t_best + t_enh
    t_glue = t_hop - t_kernels
    if t_glue < 0:
        t_glue = 0.0
    hop_us_rp2040 = t_kernels / t_dot * RP2040_DOT1024_US + t_glue / t_bc * RP2040_BYTECODE_DOT1024_US
    viper_scaled_us = ratio * RP2040_DOT1024_US
    hop_period_us = 1e6 * h / key["sample_rate_hz"]
    out = {
        "kernels": det.kernel_path(),
        "hop_samples": h,
        "lag_pairs": det.npairs,
        "state_bytes": det.state_bytes(),
        "host_hop_us": round(t_hop, 2),
        "host_dot1024_us": round(t_dot, 2),
        "hop_over_dot1024": round(ratio, 3),
        "features_over_dot1024": round(t_feat / t_dot, 3),
        "pairs_over_dot1024": round(t_pairs / t_dot, 3),
        "best_over_dot1024": round(t_best / t_dot, 3),
        "enhancer_over_dot1024": round(t_enh / t_dot, 3),
        "bytecode_dot1024_over_dot1024": round(t_bc / t_dot, 2),
        "glue_over_bytecode_dot1024": round(t_glue / t_bc, 4),
        "rp2040_125mhz_hop_us": round(hop_us_rp2040),
        "rp2040_125mhz_load_pct": round(100 * hop_us_rp2040 / hop_period_us, 1),
        "rp2040_125mhz_load_pct_viper_scaled": round(100 * viper_scaled_us / hop_period_us, 1),
        "esp32_240mhz_load_pct_clock_scaled": round(100 * hop_us_rp2040 * RP2040_HZ / ESP32_HZ / hop_period_us, 1),
    }
    if sys.platform in ("rp2", "esp32"):
        # On a board the hop's own time is the answer; the estimates above still print.
        out["board"] = sys.platform
        out["board_hop_us"] = round(t_hop, 1)
        out["board_load_pct"] = round(100 * t_hop / hop_period_us, 1)
        out["board_features_us"] = round(t_feat, 1)
        out["board_pairs_us"] = round(t_pairs, 1)
        out["board_best_us"] = round(t_best, 1)
        out["board_enhancer_us"] = round(t_enh, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
