"""Key files: generate, save and load airmark keys (versioned JSON with a checksum).

The record's fields and validation live in the firmware module `airmark_key`, so the
board and the host check a key with the same code.
"""

import hashlib
import json
import os

import numpy as np

from . import fsutil, fw
from .errors import AirmarkError, KeyFileError

_ak = fw.module("airmark_key")

DEFAULTS = {
    "sample_rate_hz": 16000,
    "block_samples": 256,  # 16 ms blocks
    "pattern_blocks": 8,  # pattern period 128 ms
    "lag_periods": 6,  # 2 s keys compare with 1 ... 6 periods earlier (see default_lag_periods)
    "band_hz": [150, 6000],  # low edge: the small-speaker corner; see docs/ALGORITHM.md
    "key_seconds": 2.0,  # one key spans a 2 s mark
    "diff_weight": 2,  # D = 2C - C(one block earlier), docs/ALGORITHM.md §2
}
# Set by tools/calibrate.py from unmarked audio (docs/ALGORITHM.md §5: 48 keys of each
# shape, the file, the 6.1 m room, the smart-speaker chain at 6.1 m and at 1 m with five
# microphone placements), for keys with the default diff_weight 2. (Keys with
# diff_weight 1, made before it existed, were calibrated at 5.35 and 5.5, and carry their
# threshold in the file.)
# The default: 2 s keys with lag_periods 6 (docs/ALGORITHM.md §2 "Why several periods").
DEFAULT_THRESHOLD = 6.10
# Keys up to 2 s with lag_periods 3: the default before lag_periods 6 was timed on an
# emulated RP2040, and still the default for keys too short to span six periods twice.
J3_THRESHOLD = 5.70
# Keys longer than 2 s (lag_periods 3): their unmarked score has heavier tails (a sum of more
# terms is closer to Gaussian). Calibrated on a 6 s key (`tools/calibrate.py --key`, §5).
LONG_KEY_THRESHOLD = 5.75
# Keys with the line enhancer in front (docs/ALGORITHM.md §8), calibrated through it
# (`tools/calibrate.py --key KEY --key-seeds 48`, §5): 2 s keys with lag_periods 6,
ENHANCED_THRESHOLD = 6.00
# keys up to 2 s with lag_periods 3 (within an RP2040's 25 % budget),
ENHANCED_J3_THRESHOLD = 5.70
# and longer keys (lag_periods 3).
ENHANCED_LONG_KEY_THRESHOLD = 5.75


def key_seconds(record):
    """How long one pass of the key's inversion sequence lasts: the shortest mark, seconds."""
    return len(record["key_bits"]) * int(record["block_samples"]) / float(record["sample_rate_hz"])


def is_long_key(key_seconds):
    """True for keys longer than the default 2 s (they take LONG_KEY_THRESHOLD)."""
    return key_seconds > DEFAULTS["key_seconds"] + 1e-9


def key_blocks(key_seconds, block_samples=None):
    """Number of key bits (blocks) a key of `key_seconds` spans."""
    return int(round(key_seconds * DEFAULTS["sample_rate_hz"]
                     / (block_samples or DEFAULTS["block_samples"])))


def default_lag_periods(key_seconds, key_bits, pattern_blocks):
    """lag_periods when none is asked for: 6 for keys up to 2 s that span six pattern
    periods twice, 3 for the rest. Longer keys keep 3: their windows already cost more on
    a board, six periods of them overflow the exact sums beyond 5.3 s, and they have no
    calibrated threshold with 6 (docs/ALGORITHM.md §2)."""
    if not is_long_key(key_seconds) and key_bits >= _ak.min_key_bits(pattern_blocks, 6):
        return 6
    return 3


def threshold_constant(key_seconds, lag_periods=None, line_enhancer=0):
    """Name of the calibrated constant for keys of this shape, or None if none was calibrated."""
    if not lag_periods:
        lag_periods = default_lag_periods(key_seconds, key_blocks(key_seconds),
                                          DEFAULTS["pattern_blocks"])
    nj = lag_periods
    if line_enhancer:
        if nj == 6 and not is_long_key(key_seconds):
            return "ENHANCED_THRESHOLD"
        if nj == 3:
            return "ENHANCED_LONG_KEY_THRESHOLD" if is_long_key(key_seconds) else "ENHANCED_J3_THRESHOLD"
        return None
    if nj == 6 and not is_long_key(key_seconds):
        return "DEFAULT_THRESHOLD"
    if nj == 3:
        return "LONG_KEY_THRESHOLD" if is_long_key(key_seconds) else "J3_THRESHOLD"
    return None


def default_threshold(key_seconds, lag_periods=None, line_enhancer=0):
    """The calibrated threshold for a key of this length (s), lag_periods and front end."""
    name = threshold_constant(key_seconds, lag_periods, line_enhancer)
    if name is None:
        raise AirmarkError("no calibrated threshold for a %g s key with lag_periods %d%s: pass "
                           "--threshold (python tools/calibrate.py --key KEY finds one)"
                           % (key_seconds, lag_periods, " and the line enhancer" if line_enhancer else ""))
    return globals()[name]


_CANDIDATES = 400
# A key must not answer digital silence (or any stretch of constant block correlations)
# inside its window with more than this score; see silence_response.
SILENCE_MAX = 2.5


def _modulations(signs, pattern_blocks, lag_periods):
    out = []
    for j in range(1, lag_periods + 1):
        s = j * pattern_blocks
        out.append(signs[s:] * signs[:-s])
    return out


def key_quality(signs, pattern_blocks, lag_periods):
    """Worst normalised imbalance / periodic leakage of the key's modulations.

    For each period lag j the modulation m_i = s_i s_(i-jP) multiplies the host's
    block correlations; a steady or periodic host (a drum loop) leaks into the score
    through the DC and the spectral peaks of m. Returns max |DFT(m)| / sqrt(len(m)),
    DC included: 1.0 is a white sequence, lower is better at the worst frequency.
    """
    worst = 0.0
    for m in _modulations(np.asarray(signs, dtype=float), pattern_blocks, lag_periods):
        spec = np.abs(np.fft.rfft(m, 4 * len(m)))
        worst = max(worst, float(spec.max()) / np.sqrt(len(m)))
    return worst


def silence_response(signs, pattern_blocks, lag_periods, diff_weight=None):
    """The highest score a gap of digital silence inside the window can give this key.

    In silence every feature is +1. Where a block and the block jP earlier are both
    silent, pair j's block correlation is its maximum C0, so a gap covering the window's
    key positions [a, b) holds C0 for pair j over [a + jP, b) (the gap's first jP blocks
    still look back into sound). With the sound around the gap quiet against C0 (its C
    near 0), D = w*C - C(one block earlier) is w*C0 on the first block of that stretch,
    (w - 1)*C0 on the others and -C0 on the block after it. The score is then the
    modulations' sum over the gap with those weights, over the root of the weights'
    squares: the key's imbalance over the gap. Returns its maximum over every gap
    (0 when none scores above 0).
    """
    w = float(diff_weight or DEFAULTS["diff_weight"])
    s = np.asarray(signs, dtype=float)
    k = len(s)
    a = np.arange(k + 1)[:, None]  # the gap's first position
    b = np.arange(k + 1)[None, :]  # one past its last
    num = np.zeros((k + 1, k + 1))
    den = np.zeros((k + 1, k + 1))
    after = (b < k).astype(float)  # the block after the gap is inside the window
    for j in range(1, lag_periods + 1):
        lag = j * pattern_blocks
        m = np.zeros(k + 1)  # m[k] = 0: past the window's end
        m[lag:k] = s[lag:] * s[:-lag]
        cm = np.concatenate(([0.0], np.cumsum(m)))
        start = np.minimum(a + lag, k)  # pair j's constant stretch is [start, b)
        run = np.maximum(b - start, 0)
        has = run > 0
        first = np.where(has, m[np.minimum(start, k)], 0.0)
        rest = np.where(has, cm[np.maximum(b, start)] - cm[np.minimum(start + 1, k + 1)], 0.0)
        num += w * first + (w - 1) * rest - np.where(has, m[b] * after, 0.0)
        den += np.where(has, w * w + (w - 1) ** 2 * (run - 1) + after, 0.0)
    ok = den > 0
    return float(np.max(np.where(ok, num / np.sqrt(np.where(ok, den, 1.0)), 0.0)))


def generate(seed=None, *, block_samples=None, pattern_blocks=None, lag_periods=None,
             key_seconds=None, band_hz=None, threshold=None, diff_weight=None, line_enhancer=False):
    """A new key record. The key bits are the best of many random candidates: the
    lowest worst-case leakage of steady and periodic content (key_quality), where a
    candidate whose silence_response exceeds SILENCE_MAX counts at the larger of the two.
    A 2 s key so gets the lowest key_quality among the candidates that answer silence
    quietly; a long key, where none may, the lowest max(key_quality, silence_response).

    diff_weight 1 gives the detector's full difference of keys made before the field
    existed (for comparisons); such a key still gets the w = 2 threshold unless
    `threshold` is given (w = 1 was calibrated at 5.35, and 5.5 for longer keys).
    line_enhancer puts airmark_enhancer in front of the detector (docs/ALGORITHM.md §8)."""
    n = block_samples or DEFAULTS["block_samples"]
    pb = pattern_blocks or DEFAULTS["pattern_blocks"]
    secs = DEFAULTS["key_seconds"] if key_seconds is None else key_seconds
    dwt = diff_weight or DEFAULTS["diff_weight"]
    nbits = key_blocks(secs, n)
    block_s = n / DEFAULTS["sample_rate_hz"]
    nj = lag_periods or default_lag_periods(secs, nbits, pb)
    shortest = _ak.min_key_bits(pb, nj)
    if nbits < shortest:
        raise AirmarkError("a key of %g s is too short: it must span at least %d blocks (%.2f s)"
                           % (secs, shortest, shortest * block_s))
    shape = {"block_samples": n, "pattern_blocks": pb, "lag_periods": nj,
             "key_bits": "0" * nbits, "diff_weight": dwt}
    if nbits > _ak.max_key_bits(shape):
        raise AirmarkError("a key of %g s is too long for the detector's exact integer sums: "
                           "at most %.2f s with these parameters" % (secs, _ak.max_key_bits(shape) * block_s))
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    rng = np.random.default_rng(seed)
    cands = [rng.integers(0, 2, nbits) for _ in range(_CANDIDATES)]
    quality = [key_quality(1 - 2 * b, pb, nj) for b in cands]
    order = sorted(range(_CANDIDATES), key=quality.__getitem__)  # stable: first of equals
    # rank = quality, or max(quality, silence) above SILENCE_MAX: walk up the quality and
    # stop at the first quiet candidate, or once quality alone reaches the best rank seen
    best = None  # (rank, index) of the best loud candidate so far
    chosen = None
    for i in order:
        if best is not None and quality[i] >= best[0]:
            break  # no later candidate can rank below it
        silence = silence_response(1 - 2 * cands[i], pb, nj, dwt)
        if silence <= SILENCE_MAX:
            chosen = i
            break
        if best is None or max(quality[i], silence) < best[0]:
            best = (max(quality[i], silence), i)
    if chosen is None:
        chosen = best[1]
    best = (quality[chosen], cands[chosen])
    key_bits = "".join("1" if b else "0" for b in best[1])
    noise_seed = int(rng.integers(0, 2 ** 31 - 1))
    kid = hashlib.sha256(("%d:%s:%d" % (seed, key_bits, noise_seed)).encode()).hexdigest()[:8]
    record = {
        "format": _ak.FORMAT,
        "version": _ak.VERSION,
        "key_id": kid,
        "sample_rate_hz": DEFAULTS["sample_rate_hz"],
        "block_samples": n,
        "pattern_blocks": pb,
        "lag_periods": nj,
        "band_hz": list(band_hz or DEFAULTS["band_hz"]),
        "key_bits": key_bits,
        "noise_seed": noise_seed,
        "threshold": float(threshold if threshold is not None
                           else default_threshold(secs, nj, line_enhancer)),
        "diff_weight": dwt,
    }
    if line_enhancer:
        record["line_enhancer"] = 1
    record["checksum"] = _ak.checksum(record)
    _ak.validate(record)
    return record


def detector_twin(record, *, line_enhancer=None, lag_periods=None, threshold=None):
    """The same key, so the same mark, with other detector settings: the line enhancer
    in front (docs/ALGORITHM.md §8) or taken out (`line_enhancer` True or False; None
    keeps the key's), and/or fewer lag periods, and the calibrated threshold of the new
    shape, or `threshold`. The key's bits were chosen for its own lag periods, so more
    periods than it has are refused."""
    out = {k: v for k, v in record.items() if k != "checksum"}
    if line_enhancer:
        out["line_enhancer"] = 1
    elif line_enhancer is not None:
        out.pop("line_enhancer", None)
    if lag_periods is not None:
        if lag_periods > record["lag_periods"]:
            raise AirmarkError("this key's bits were chosen for %d lag periods, not %d: make "
                               "a new key for more" % (record["lag_periods"], lag_periods))
        out["lag_periods"] = int(lag_periods)
    if threshold is None:
        secs = key_seconds(record)
        if record.get("diff_weight", 1) != DEFAULTS["diff_weight"]:
            raise AirmarkError("no calibrated threshold for a key with diff_weight %d (an "
                               "older key): make its twin with `airmark keygen TWIN --from KEY "
                               "--threshold T`" % record.get("diff_weight", 1))
        threshold = default_threshold(secs, out["lag_periods"], out.get("line_enhancer", 0))
    out["threshold"] = float(threshold)
    out["checksum"] = _ak.checksum(out)
    return validate(out)


def enhancer_twin(record, threshold=None):
    """The same key, so the same mark, with the line enhancer in front of its detector
    (docs/ALGORITHM.md §8) and the enhancer's calibrated threshold, or `threshold`."""
    return detector_twin(record, line_enhancer=True, threshold=threshold)


def with_threshold(record, threshold):
    """Copy of `record` with a new threshold and a fresh checksum."""
    out = dict(record)
    out["threshold"] = float(threshold)
    out["checksum"] = _ak.checksum(out)
    return out


def validate(record, source="key"):
    probs = _ak.problems(record)
    if probs:
        raise KeyFileError(source, probs)
    return record


def load(path):
    """Read and validate a key file; KeyFileError lists every problem."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise KeyFileError(path, ["no such file"]) from None
    except OSError as exc:
        raise KeyFileError(path, [exc.strerror or str(exc)]) from None
    except UnicodeDecodeError:
        raise KeyFileError(path, ["not a key file (not UTF-8 text)"]) from None
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise KeyFileError(path, ["not valid JSON (%s)" % exc]) from None
    return validate(record, path)


def save(record, path, *, force=False):
    """Write a key file atomically; refuses to overwrite unless force."""
    validate(record)
    path = str(path)
    if not path or os.path.isdir(path):
        raise KeyFileError(path or "''", ["not a file name"])
    if os.path.exists(path) and not force:
        raise KeyFileError(path, ["already exists (use --force to overwrite)"])
    try:
        fsutil.write_json_atomic(path, record)
    except OSError as exc:
        raise KeyFileError(path, ["cannot write (%s)" % (exc.strerror or exc)]) from None
    return path


def firmware_module_text(record):
    """Source of the board's `airmark_keydata` module (the key baked in)."""
    validate(record)
    lines = ["# Generated by airmark from key %s. Do not edit: the checksum covers it." % record["key_id"],
             "KEY = {"]
    for name in _ak.FIELDS + _ak.OPTIONAL + ("checksum",):
        if name in record:
            lines.append("    %r: %r," % (name, record[name]))
    lines.append("}")
    return "\n".join(lines) + "\n"
