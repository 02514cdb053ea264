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


class KeyInvalid(ValueError):
    """A key record is invalid. `problems` lists one line per problem."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = problems


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def canonical(record):
    """Canonical text of a record's fields (checksum excluded): stable on every port."""
    parts = []
    for name in FIELDS:
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
    if not (isinstance(band, (list, tuple)) and len(band) == 2 and _num(band[0]) and _num(band[1])):
        out.append("band_hz must be [low, high] in Hz")
    elif not (50 <= band[0] < band[1] <= 8000):
        out.append("band_hz %r out of range (50 <= low < high <= 8000)" % (list(band),))
    bits = record["key_bits"]
    if not isinstance(bits, str) or any(c not in "01" for c in bits):
        out.append("key_bits must be a string of '0' and '1'")
    elif not (_KEY_BITS_MIN <= len(bits) <= _KEY_BITS_MAX):
        out.append("key_bits has %d bits, expected %d..%d" % (len(bits), _KEY_BITS_MIN, _KEY_BITS_MAX))
    elif (isinstance(record["pattern_blocks"], int) and isinstance(record["lag_periods"], int)
          and len(bits) <= 2 * record["pattern_blocks"] * record["lag_periods"]):
        out.append("key_bits must span more than 2 x pattern_blocks x lag_periods blocks")
    if isinstance(record["block_samples"], int) and record["block_samples"] % 64:
        out.append("block_samples must be a multiple of 64 (hops of whole 32-bit feature words)")
    thr = record["threshold"]
    if not _num(thr) or not (_THRESHOLD_MIN <= thr <= _THRESHOLD_MAX):
        out.append("threshold %r out of range %g..%g" % (thr, _THRESHOLD_MIN, _THRESHOLD_MAX))
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
