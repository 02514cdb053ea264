"""Replay the golden vector through the detector core and compare every integer.

Usage: <python|micropython> tools/golden_check.py [GOLDEN_DIR] [--print] [--no-kernels]

Runs unchanged under CPython (numpy) and MicroPython with ulab (viper kernels when
the port has them). For each hop it checks the correlations c of every lag pair and
the matched-filter sums; then the events and scores. Prints PASS/FAIL lines and
exits 0 only if everything matches exactly (scores are fixed-point integers), 1 on a
mismatch, 2 (one line on stderr) when the golden folder cannot be read.
"""

import sys

USAGE = "usage: <python|micropython> tools/golden_check.py [GOLDEN_DIR] [--print] [--no-kernels]"


def _dir_of(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else "."


_TOOLS = _dir_of(globals().get("__file__", "tools/golden_check.py"))
_ROOT = _dir_of(_TOOLS) if _TOOLS != "." else ".."
sys.path.insert(0, _ROOT + "/firmware")

import json  # noqa: E402

import airmark_detector as core  # noqa: E402
import airmark_key  # noqa: E402
import airmark_wav  # noqa: E402

np = core.np


def _fail(msg, code=2):
    """One line on stderr and the exit code (2: a wrong command line or golden folder)."""
    print("golden_check: %s" % msg, file=sys.stderr)
    return code


def main(argv):
    gdir = _ROOT + "/tests/golden"
    show = False
    kernels = True
    dirs = 0
    for a in argv[1:]:
        if a in ("-h", "--help"):
            print(USAGE)
            return 0
        if a == "--print":
            show = True
        elif a == "--no-kernels":
            kernels = False
        elif a.startswith("-"):
            return _fail("unknown option %s (%s)" % (a, USAGE))
        else:
            gdir = a
            dirs += 1
    if dirs > 1:
        return _fail("one GOLDEN_DIR at most (%s)" % USAGE)
    name = gdir + "/key.json"
    try:
        with open(name) as f:
            key = airmark_key.validate(json.load(f))
        name = gdir + "/expected.json"
        with open(name) as f:
            expected = json.load(f)
        hops = expected["hops"]
        name = gdir + "/input.wav"
        reader = airmark_wav.WavReader(name)
    except OSError as exc:
        return _fail("%s: cannot read (%s)" % (name, exc))
    except (ValueError, KeyError, TypeError) as exc:  # not JSON, a bad key, a bad WAV
        return _fail("%s: %s" % (name, exc))
    try:
        det = core.Detector(key, use_kernels=kernels)
    except ValueError as exc:  # e.g. the line enhancer on a port without its kernels
        reader.close()
        return _fail("detector: %s" % exc)
    try:
        return _check(det, expected, hops, reader, show)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    finally:
        reader.close()


def _check(det, expected, hops, reader, show):
    h = det.hop_samples
    buf = bytearray(2 * h)
    x = np.frombuffer(buf, dtype=np.int16) if np is not None else buf  # viper reads bytes
    bad = 0
    events = []
    scores = []
    i = 0
    while True:
        n = reader.readinto(buf)
        if n < len(buf):
            break
        ev = det.feed(x)
        if ev is not None:
            events.append([ev[0], det.score_q8])
        scores.append(det.score_q8)
        if i < len(hops):
            want_c, want_num = hops[i]
            if list(det.c) != want_c or list(det.num) != want_num:
                if bad < 5:
                    print("FAIL hop %d: c=%r num=%r expected c=%r num=%r" % (i, list(det.c), list(det.num),
                                                                          want_c, want_num))
                bad += 1
        i += 1
    print("%s integers: %d hops checked, %d mismatching (kernels: %s, ulab: %s)" % (
        "PASS" if bad == 0 and i == len(hops) else "FAIL", i, bad,
        "viper" if det.kernels is not None else "array ops", core.ULAB))
    if np is None:
        print("note: no ulab/numpy here; the viper kernels ran alone")
    if i != len(hops):
        bad += 1
    want_ev = expected["events"]
    same_ev = events == want_ev
    print("%s events: %r expected %r" % ("PASS" if same_ev else "FAIL", events, want_ev))
    nbad = 0
    for s, w in zip(scores, expected["scores"]):
        if s != w:
            nbad += 1
    ok_scores = nbad == 0 and len(scores) == len(expected["scores"])
    print("%s scores: %d fixed-point scores differ" % ("PASS" if ok_scores else "FAIL", nbad))
    if show:
        print(json.dumps({"events": events}))
    return 0 if (bad == 0 and same_ev and ok_scores) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
