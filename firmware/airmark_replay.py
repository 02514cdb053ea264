"""Replay a 16 kHz WAV through the board's own detection loop and print the board's lines.

Usage: ``<python or micropython> airmark_replay.py WAV KEYJSON [--status-ms N]``

Runs under CPython with numpy and under MicroPython with ulab; it is the code
of main.py minus the I2S driver: the same ``airmark_loop.Loop``, the same
detector, the same protocol lines (``hello`` first, then ``detection`` /
``status`` / ``error`` lines, one JSON object per line on stdout). Differences
from a board, all deliberate:

- hops come from the WAV in ``hop_samples`` chunks (a final partial hop is not
  fed: the board only ever sees whole hops);
- ``uptime_ms`` and the status cadence follow *audio* time, so status lines
  appear where the board would print them; processing times are real;
- after the last hop one closing ``status`` line is printed;
- ``board`` in ``hello`` is ``"replay"``.

Exit status: 0 after a clean run, 1 if the loop reported errors, 2 when the WAV,
the key or the detector cannot be set up (an ``error`` line says why).
"""

import sys


def _here():
    f = globals().get("__file__", "")
    if "/" in f:
        return f[:f.rfind("/")] or "/"
    if "\\" in f:
        return f[:f.rfind("\\")]
    return "."


_HERE = _here()
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import airmark_proto as proto  # noqa: E402
import airmark_loop  # noqa: E402

USAGE = "usage: airmark_replay.py WAV KEYJSON [--status-ms N]"
SAMPLE_RATE_HZ = 16000


class WavSource:
    """Sample source over a WavReader: one preallocated hop buffer and its int16 view."""

    def __init__(self, reader, hop_samples, np, clock=None):
        self.reader = reader
        self.hop_samples = hop_samples
        self.buf = bytearray(2 * hop_samples)
        # without ulab only the viper kernels run, and they read the bytes as ptr16
        self.x = np.frombuffer(self.buf, dtype=np.int16) if np is not None else self.buf
        self.buf_bytes = len(self.buf)
        self.clock = clock
        self.overruns = 0
        self.dropped_samples = 0
        self.at_end = False
        self.tail_samples = 0

    def next_hop(self):
        if self.at_end:
            return None
        n = self.reader.readinto(self.buf)
        if n < len(self.buf):
            self.at_end = True
            self.tail_samples = n // 2
            return None
        if self.clock is not None:
            self.clock.advance(self.hop_samples)
        return self.x

    def done(self):
        pass


def parse_args(argv):
    pos = []
    status_ms = 5000
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--status-ms" and i + 1 < len(argv):
            status_ms = int(argv[i + 1])
            if status_ms < 0:
                raise ValueError("--status-ms must be >= 0")
            i += 2
            continue
        if a.startswith("-"):
            raise ValueError("unknown option %s" % a)
        pos.append(a)
        i += 1
    if len(pos) != 2:
        raise ValueError(USAGE)
    return pos[0], pos[1], status_ms


def load_key(path):
    import json
    import airmark_key
    with open(path) as f:
        record = json.load(f)
    return airmark_key.validate(record)


def main(argv, emit=print):
    try:
        wav_path, key_path, status_ms = parse_args(argv)
    except ValueError as exc:
        emit(proto.error(str(exc)))
        return 2
    try:
        record = load_key(key_path)
    except Exception as exc:
        emit(proto.error("key %s: %s" % (key_path, proto.exc_text(exc))))
        return 2
    try:
        import airmark_detector
        from airmark_capture import np
        detector = airmark_detector.Detector(record)
    except Exception as exc:
        emit(proto.error("detector: %s" % proto.exc_text(exc)))
        return 2
    try:
        import airmark_wav
        reader = airmark_wav.WavReader(wav_path, SAMPLE_RATE_HZ)
    except Exception as exc:
        emit(proto.error("%s: %s" % (wav_path, proto.exc_text(exc))))
        return 2
    try:
        clock = airmark_loop.AudioClock(SAMPLE_RATE_HZ)
        source = WavSource(reader, detector.hop_samples, np, clock)
        key_id = record["key_id"]
        emit(proto.hello("replay", sys.implementation.name, key_id, SAMPLE_RATE_HZ,
                         detector.hop_samples, detector.state_bytes(), source.buf_bytes,
                         None, detector.kernel_path()))
        import gc
        loop = airmark_loop.Loop(source, detector, clock, emit, key_id, SAMPLE_RATE_HZ,
                                 status_ms=status_ms, heap_free=getattr(gc, "mem_free", None))
        try:
            loop.run()
        except Exception as exc:
            emit(proto.error(proto.exc_text(exc)))
            return 1
        emit(loop.status_line(clock.ticks_ms()))
    finally:
        reader.close()
    return 1 if loop.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
