"""A tiny RIFF/WAVE reader for the replay path: 16-bit PCM, mono, 16 kHz only.

Runs unchanged on CPython, MicroPython and CircuitPython (no ulab needed).
Anything else is refused with a WavError naming what was found and what is
needed (the host converts other audio first: ``airmark detect`` does).
``readinto`` fills a caller-owned buffer, so streaming a file allocates nothing
per chunk.
"""

import struct

WAVE_FORMAT_PCM = 1
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
NEED_RATE_HZ = 16000


class WavError(ValueError):
    """The file is not a WAV this reader can stream."""


class WavReader:
    """Open `path` (or a binary file object) and position at the start of the PCM data.

    Attributes: ``samplerate``, ``channels``, ``bits``, ``frames`` (from the
    data chunk size), ``format_tag``.
    """

    def __init__(self, path_or_file, rate_hz=NEED_RATE_HZ):
        if isinstance(path_or_file, str):
            self.f = open(path_or_file, "rb")
            self._own = True
        else:
            self.f = path_or_file
            self._own = False
        try:
            self._parse(rate_hz)
        except Exception:
            self.close()
            raise

    def _read_exact(self, n, what):
        data = self.f.read(n)
        if data is None or len(data) != n:
            raise WavError("truncated WAV file (while reading %s)" % what)
        return data

    def _parse(self, rate_hz):
        head = self.f.read(12)
        if head is None or len(head) < 12 or head[0:4] != b"RIFF" or head[8:12] != b"WAVE":
            if head is not None and head[0:4] == b"RIFX":
                raise WavError("big-endian WAV (RIFX) is not supported: need little-endian RIFF")
            raise WavError("not a WAV file (no RIFF/WAVE header)")
        fmt = None
        while True:
            ch = self.f.read(8)
            if ch is None or len(ch) < 8:
                if fmt is None:
                    raise WavError("WAV file has no 'fmt ' chunk")
                raise WavError("WAV file has no 'data' chunk")
            cid = ch[0:4]
            size = struct.unpack("<I", ch[4:8])[0]
            if cid == b"fmt ":
                if size < 16:
                    raise WavError("WAV 'fmt ' chunk too short (%d bytes)" % size)
                body = self._read_exact(size + (size & 1), "the fmt chunk")
                tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", body[0:16])
                if tag == WAVE_FORMAT_EXTENSIBLE and size >= 40:
                    tag = struct.unpack("<H", body[24:26])[0]
                fmt = (tag, channels, rate, align, bits)
            elif cid == b"data":
                if fmt is None:
                    raise WavError("WAV 'data' chunk comes before 'fmt '")
                self.data_bytes = size
                break
            else:
                self._skip(size + (size & 1))
        tag, channels, rate, align, bits = fmt
        self.format_tag = tag
        self.channels = channels
        self.samplerate = rate
        self.bits = bits
        if tag != WAVE_FORMAT_PCM:
            kind = "IEEE float" if tag == 3 else "format tag %d" % tag
            raise WavError("WAV is %s: need 16-bit integer PCM" % kind)
        if bits != 16:
            raise WavError("WAV is %d-bit PCM: need 16-bit" % bits)
        if channels != 1:
            raise WavError("WAV has %d channels: need mono" % channels)
        if rate != rate_hz:
            raise WavError("WAV sample rate is %d Hz: need %d Hz" % (rate, rate_hz))
        if align != 2:
            raise WavError("WAV block align is %d: need 2 for 16-bit mono" % align)
        self.frames = self.data_bytes // 2
        self.remaining = self.data_bytes - (self.data_bytes & 1)

    def _skip(self, n):
        # Seek when the stream can; otherwise read and discard in small pieces.
        try:
            self.f.seek(n, 1)
            return
        except Exception:
            pass
        while n > 0:
            k = 512 if n > 512 else n
            self._read_exact(k, "a skipped chunk")
            n -= k

    def readinto(self, buf):
        """Fill `buf` (bytearray/memoryview, even length) with the next samples.

        Returns the number of bytes written: len(buf), or less at the end of the
        data (0 when exhausted). Never reads past the data chunk.
        """
        want = len(buf)
        if want > self.remaining:
            want = self.remaining
        got = 0
        if want == len(buf):
            # The common case: one read straight into the caller's buffer, no slice object.
            got = self.f.readinto(buf) or 0
        if got < want:
            mv = memoryview(buf)
            while got < want:
                n = self.f.readinto(mv[got:want])
                if not n:
                    break
                got += n
        self.remaining -= got
        return got

    def close(self):
        if self._own and self.f is not None:
            self.f.close()
        self.f = None
