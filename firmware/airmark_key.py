"""Key records: parse, validate and checksum an airmark key (JSON dict).

Runs unchanged on CPython, MicroPython and CircuitPython (no ulab needed).
The host's `airmark.keys` wraps this module; the board loads the same dict from
the generated `airmark_keydata` module.
"""

FORMAT = "airmark-key"
VERSION = 1

# (name, type, low, high) for every numeric field; None bounds are unchecked.
_INT_FIELDS = (
    ("sample_rate_hz", 16000, 16000),
    ("block_samples", 256, 2048),
    ("pattern_blocks", 2, 16),
    ("lag_periods", 1, 8),
    ("noise_seed", 0, 2 ** 31 - 1),
)
_KEY_BITS_MIN = 8
_KEY_BITS_MAX = 4096
_THRESHOLD_MIN = 1.0
_THRESHOLD_MAX = 1000.0

# Fixed field order for the checksum: json.dumps on MicroPython cannot sort keys.
FIELDS = ("format", "version", "key_id", "sample_rate_hz", "block_samples",
          "pattern_blocks", "lag_periods", "band_hz", "key_bits", "noise_seed", "threshold")
# Optional fields, in the checksum only when present (keys made before them keep theirs).
# diff_weight w: the detector's D = w*C - C(one block earlier); absent means 1.
# line_enhancer 1: the detector's input goes through airmark_enhancer first; absent means 0.
OPTIONAL = ("diff_weight", "line_enhancer")
DIFF_WEIGHTS = (1, 2)
ENHANCER_BLOCK_SAMPLES = 256  # the enhancer's hop is 128 samples: half of this block

# Limits of the detector's exact integer state (docs/ALGORITHM.md, "Integer bounds"):
# window sums stay MicroPython small ints on 32-bit ports, float dots stay exact in float32.
SMALL_INT_MAX = 2 ** 30 - 1
FLOAT32_EXACT = 2 ** 24


class KeyInvalid(ValueError):
    """A key record is invalid. `problems` lists one line per problem."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = problems


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool)


def canonical(record):
    """Canonical text of a record's fields (checksum excluded): stable on every port."""
    parts = []
    for name in FIELDS + OPTIONAL:
        if name in OPTIONAL and name not in record:
            continue
        v = record.get(name)
        if name == "band_hz":
            text = "[%d,%d]" % (int(v[0]), int(v[1]))
        elif name == "threshold":
            text = "%.6f" % float(v)
        elif isinstance(v, str):
            text = '"' + v + '"'
        else:
            text = "%d" % int(v)
        parts.append('"%s":%s' % (name, text))
    return "{" + ",".join(parts) + "}"


def checksum(record):
    import hashlib
    h = hashlib.sha256(canonical(record).encode())
    digest = h.digest()
    return "sha256:" + "".join("%02x" % b for b in digest)


def min_key_bits(pattern_blocks, lag_periods):
    """The shortest key_bits: more than 2 x pattern_blocks x lag_periods blocks."""
    return 2 * pattern_blocks * lag_periods + 1


def diff_weight(record):
    return record.get("diff_weight", 1)


def state_bounds(record):
    """Worst-case magnitudes of the detector's integer state for this key.

    Hops of H = block_samples/2: |c| <= H, |C| <= 2H, |D| <= (w + 1) * 2H; over the
    n = sum_j (K - j P) block pairs of the J lag periods, |num| <= n |D|max and
    den <= n |D|max^2; one window's float dot stays below (K - P) |D|max.
    """
    h = record["block_samples"] // 2
    k = len(record["key_bits"])
    pb = record["pattern_blocks"]
    d = (diff_weight(record) + 1) * 2 * h
    n = 0
    for j in range(1, record["lag_periods"] + 1):
        n += k - j * pb
    return {"d": d, "num_q8": 256 * n * d, "den": n * d * d, "dot": (k - pb) * d}


def _sums_fit(b):
    return b["den"] <= SMALL_INT_MAX and b["num_q8"] <= SMALL_INT_MAX and b["dot"] < FLOAT32_EXACT


def _bound_problems(record):
    b = state_bounds(record)
    out = []
    if b["d"] > 32767:
        out.append("block_samples too large: D would not fit the int16 ring")
    if not _sums_fit(b):
        out.append("key too long for this block size and lag_periods: the detector's sums "
                   "could exceed its exact integer range (%d bits at most)" % max_key_bits(record))
    return out


def max_key_bits(record):
    """The longest key_bits the integer bounds allow with the record's other fields."""
    lo, hi = 0, _KEY_BITS_MAX
    while lo < hi:
        mid = (lo + hi + 1) // 2
        r = dict(record)
        r["key_bits"] = "0" * mid
        if _sums_fit(state_bounds(r)):
            lo = mid
        else:
            hi = mid - 1
    return lo


def problems(record):
    """Every problem with `record`, one short line each; empty list when valid."""
    out = []
    if not isinstance(record, dict):
        return ["key is not a JSON object"]
    if record.get("format") != FORMAT:
        out.append("format is %r, expected %r" % (record.get("format"), FORMAT))
    version = record.get("version")
    if version != VERSION:
        out.append("unknown key version %r (this build reads version %d)" % (version, VERSION))
    for name in FIELDS + ("checksum",):
        if name not in record:
            out.append("missing field %r" % name)
    if out:
        return out
    kid = record["key_id"]
    if not isinstance(kid, str) or not (1 <= len(kid) <= 32):
        out.append("key_id must be a string of 1..32 characters")
    for name, lo, hi in _INT_FIELDS:
        v = record[name]
        if not isinstance(v, int) or isinstance(v, bool):
            out.append("%s must be an integer, got %r" % (name, v))
        elif not (lo <= v <= hi):
            out.append("%s=%d out of range %d..%d" % (name, v, lo, hi))
    band = record["band_hz"]
    if not (isinstance(band, (list, tuple)) and len(band) == 2 and _whole(band[0])
            and _whole(band[1])):
        # whole numbers: the checksum's canonical text holds them as integers
        out.append("band_hz must be [low, high], whole numbers of Hz")
    elif not (50 <= band[0] < band[1] <= 8000):
        out.append("band_hz %r out of range (50 <= low < high <= 8000)" % (list(band),))
    bits = record["key_bits"]
    if not isinstance(bits, str) or any(c not in "01" for c in bits):
        out.append("key_bits must be a string of '0' and '1'")
    elif not (_KEY_BITS_MIN <= len(bits) <= _KEY_BITS_MAX):
        out.append("key_bits has %d bits, expected %d..%d" % (len(bits), _KEY_BITS_MIN, _KEY_BITS_MAX))
    elif (isinstance(record["pattern_blocks"], int) and isinstance(record["lag_periods"], int)
          and len(bits) < min_key_bits(record["pattern_blocks"], record["lag_periods"])):
        out.append("key_bits must span more than 2 x pattern_blocks x lag_periods blocks")
    if isinstance(record["block_samples"], int) and record["block_samples"] % 64:
        out.append("block_samples must be a multiple of 64 (hops of whole 32-bit feature words)")
    thr = record["threshold"]
    if not _num(thr) or not (_THRESHOLD_MIN <= thr <= _THRESHOLD_MAX):
        out.append("threshold %r out of range %g..%g" % (thr, _THRESHOLD_MIN, _THRESHOLD_MAX))
    dwt = record.get("diff_weight", 1)
    if not isinstance(dwt, int) or isinstance(dwt, bool) or dwt not in DIFF_WEIGHTS:
        out.append("diff_weight must be one of %s, got %r" % (", ".join(str(v) for v in DIFF_WEIGHTS), dwt))
    enh = record.get("line_enhancer", 0)
    if not isinstance(enh, int) or isinstance(enh, bool) or enh not in (0, 1):
        out.append("line_enhancer must be 0 or 1, got %r" % (enh,))
    elif enh and record["block_samples"] != ENHANCER_BLOCK_SAMPLES:
        out.append("line_enhancer needs block_samples %d" % ENHANCER_BLOCK_SAMPLES)
    if out:
        return out
    out = _bound_problems(record)
    if out:
        return out
    if record["checksum"] != checksum(record):
        out.append("bad checksum (the key file was edited or damaged)")
    return out


def validate(record):
    """Return `record` if valid, else raise KeyInvalid listing every problem."""
    p = problems(record)
    if p:
        raise KeyInvalid(p)
    return record


def signs(record):
    """Key bits as a bytearray of 0/1 (1 = block inverted)."""
    bits = record["key_bits"]
    out = bytearray(len(bits))
    for i in range(len(bits)):
        out[i] = 1 if bits[i] == "1" else 0
    return out
