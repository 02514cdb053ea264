"""The board's serial protocol: one JSON object per line on USB serial (stdout).

Runs unchanged on CPython, MicroPython and CircuitPython (no ulab needed).
Lines are formatted by hand, not with `json.dumps`: MicroPython dicts have no
key order and its float repr differs from CPython's, and the host (and the
golden-vector tests) compare lines byte for byte. Every function returns a str
without the trailing newline. These run rarely (detections, a status line every
few seconds), so they may allocate.

Events (fields in this order):

- ``hello``: ``fw``, ``proto``, ``board``, ``runtime``, ``key``, ``rate_hz``,
  ``hop``, ``state_bytes`` (detector arrays), ``buf_bytes`` (capture buffers),
  ``cpu_hz`` (null when unknown) -- once at boot.
- ``detection``: ``t_ms`` (audio time since capture start, ms), ``score``,
  ``key``.
- ``status``: ``uptime_ms``, ``blocks``, ``overruns``, ``errors``,
  ``block_us_max``, ``block_us_mean``, ``load_pct``, ``heap_free`` -- every
  few seconds; the timing fields cover the blocks since the previous status line.
- ``error``: ``msg``.
"""

FW_VERSION = "0.1.0"
PROTO_VERSION = 1
SCORE_DECIMALS = 3

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def jstr(text):
    """`text` as a JSON string literal (quotes, backslashes and control characters escaped)."""
    text = str(text)
    out = []
    for ch in text:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def jint(value):
    """An integer field; None becomes JSON null (e.g. heap size on CPython)."""
    if value is None:
        return "null"
    return "%d" % value


def jfloat(value, decimals=SCORE_DECIMALS):
    """A float with a fixed number of decimals, identical on every port; non-finite -> null.

    Rounded half away from zero in integers: "%.3f" rounds an exact tie such as a score of
    3280/256 = 12.8125 to 12.812 on CPython and to 12.813 on MicroPython."""
    if value is None:
        return "null"
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        return "null"
    scale = 10 ** decimals
    n = int(abs(value) * scale + 0.5)
    sign = "-" if value < 0 and n else ""
    if not decimals:
        return sign + str(n)
    frac = str(n % scale)
    return "%s%d.%s%s" % (sign, n // scale, "0" * (decimals - len(frac)), frac)


def line(event, fields):
    """One JSON line: ``event`` first, then ``fields`` (a sequence of (name, already-encoded value))."""
    parts = ['"event":' + jstr(event)]
    for name, encoded in fields:
        parts.append(jstr(name) + ":" + encoded)
    return "{" + ",".join(parts) + "}"


def samples_to_ms(samples, rate_hz):
    """Integer milliseconds for a sample count (floor)."""
    return samples * 1000 // rate_hz


def hello(board, runtime, key_id, rate_hz, hop, state_bytes=None, buf_bytes=None, cpu_hz=None,
          kernels=None):
    return line("hello", (
        ("fw", jstr(FW_VERSION)),
        ("proto", jint(PROTO_VERSION)),
        ("board", jstr(board)),
        ("runtime", jstr(runtime)),
        ("key", jstr(key_id)),
        ("rate_hz", jint(rate_hz)),
        ("hop", jint(hop)),
        ("state_bytes", jint(state_bytes)),
        ("buf_bytes", jint(buf_bytes)),
        ("cpu_hz", jint(cpu_hz)),
        ("kernels", "null" if kernels is None else jstr(kernels)),
    ))


def detection(t_ms, score, key_id):
    return line("detection", (
        ("t_ms", jint(t_ms)),
        ("score", jfloat(score)),
        ("key", jstr(key_id)),
    ))


def status(uptime_ms, blocks, overruns, errors, block_us_max, block_us_mean,
           load_pct, heap_free, mic_rms=None, mic_peak=None):
    return line("status", (
        ("uptime_ms", jint(uptime_ms)),
        ("blocks", jint(blocks)),
        ("overruns", jint(overruns)),
        ("errors", jint(errors)),
        ("block_us_max", jint(block_us_max)),
        ("block_us_mean", jint(block_us_mean)),
        ("load_pct", jint(load_pct)),
        ("heap_free", jint(heap_free)),
        ("mic_rms", jint(mic_rms)),
        ("mic_peak", jint(mic_peak)),
    ))


def error(msg):
    return line("error", (("msg", jstr(msg)),))


def exc_text(exc):
    """``Type: message`` for an exception, the same on every port."""
    name = type(exc).__name__
    text = str(exc)
    return name + ": " + text if text else name
