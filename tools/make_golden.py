"""Write the golden vector: a small int16 input, its key, and every expected integer.

Usage: python tools/make_golden.py [OUT_DIR] [--line-enhancer]
       (default tests/golden, or tests/golden-enh with --line-enhancer)
       python tools/make_golden.py --from GOLDEN_DIR [OUT_DIR]

--line-enhancer writes tests/golden's key and input with the key's line enhancer on
(tests/golden-enh): the same mark, the detector's integers through airmark_enhancer.

--from GOLDEN_DIR keeps that vector's key and input and computes its expected integers
again (into OUT_DIR, default GOLDEN_DIR itself): after a deliberate change to the
detector's integers, this is how the committed vectors (tests/golden, tests/golden-dw1,
tests/golden-enh) are brought up to date. Unchanged code writes them byte for byte.
A new vector (without --from) is made with the current key defaults and test signals,
so it differs from the committed ones, whose keys predate later defaults.

Stored per hop: the correlation c and matched-filter sum of every lag pair and the
fixed-point score (score_q8 = 256 x score). The input is 5 s of a deterministic music-like signal with a reference mark at 1.5 s
(tests/signals.py); the expected values come from the numpy path of the core.
Every port must reproduce them exactly: tools/golden_check.py.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

import signals as sg  # noqa: E402
import toolcli  # noqa: E402
from airmark import fsutil, fw  # noqa: E402


def read_vector(gdir):
    """(key record, int16 samples) of the golden vector in `gdir`, validated."""
    from airmark import keys

    key = toolcli.load_json(os.path.join(gdir, "key.json"), "key file")
    try:
        keys.validate(key)
        x, rate = sf.read(os.path.join(gdir, "input.wav"), dtype="int16")
    except (keys.AirmarkError, RuntimeError, OSError) as exc:
        raise toolcli.ToolError("%s: %s" % (gdir, exc)) from None
    if rate != 16000 or x.ndim != 1:
        raise toolcli.ToolError("%s/input.wav: not 16 kHz mono" % gdir)
    return key, x


def main(out_dir, line_enhancer=False, source=None):
    if source is not None:
        key, x = read_vector(source)
    elif line_enhancer:
        from airmark import keys

        plain, x = read_vector(os.path.join(ROOT, "tests", "golden"))
        # the golden key's twin, keeping its threshold (the golden key has no calibrated one)
        key = keys.enhancer_twin(plain, threshold=plain["threshold"])
    else:
        key = sg.key_record(seed=2024, threshold=6.0)
        host = sg.music_like(5.0, seed=7)
        y, _ = sg.embed_reference(host, key, 1.5, -7.0)
        x = sg.to_int16(y, peak=0.4)
    toolcli.make_dir(out_dir)
    want = expected(key, x)
    # each file whole or not at all (written to a temporary name, then renamed)
    with toolcli.atomic_output(os.path.join(out_dir, "input.wav")) as tmp:
        sf.write(tmp, x, 16000, subtype="PCM_16")
    fsutil.write_json_atomic(os.path.join(out_dir, "key.json"), key, indent=1)
    fsutil.write_json_atomic(os.path.join(out_dir, "expected.json"), want, indent=None,
                             separators=(",", ":"))
    print("wrote %s: %d hops, events %r" % (out_dir, len(want["hops"]), want["events"]))


def expected(key, x):
    """The vector's expected.json for `key` over the int16 samples `x`, from the numpy path
    of the core: lags, hop size, and per hop c, num and the fixed-point score, and the
    events."""
    core = fw.module("airmark_detector")
    det = core.Detector(key)
    h = det.hop_samples
    hops, events, scores = [], [], []
    for i in range(len(x) // h):
        ev = det.feed(x[i * h:(i + 1) * h])
        hops.append([list(det.c), list(det.num)])
        scores.append(det.score_q8)
        if ev is not None:
            events.append([ev[0], det.score_q8])
    return {"lags": det.lags, "hop_samples": h, "hops": hops, "events": events,
            "scores": scores}


def cli(argv=None):
    ap = toolcli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", nargs="?", help="default tests/golden (tests/golden-enh with "
                    "--line-enhancer)")
    ap.add_argument("--line-enhancer", action="store_true",
                    help="tests/golden's key and input with the key's line enhancer on")
    ap.add_argument("--from", dest="source", metavar="GOLDEN_DIR",
                    help="keep this vector's key and input; compute its expected integers "
                    "again (into OUT_DIR, default GOLDEN_DIR)")
    a = ap.parse_args(argv)
    if a.source is not None:
        if a.line_enhancer:
            ap.error("--from keeps the vector's own key; leave out --line-enhancer")
        if not os.path.isdir(a.source):
            raise toolcli.ToolError("%s: no such golden folder" % a.source)
        main(a.out_dir or a.source, source=a.source)
        return 0
    default = "golden-enh" if a.line_enhancer else "golden"
    main(a.out_dir or os.path.join(ROOT, "tests", default), a.line_enhancer)
    return 0


if __name__ == "__main__":
    sys.exit(toolcli.run("make_golden", cli))
