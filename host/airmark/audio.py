"""Audio input/output for the host tools.

* WAV / FLAC / OGG (and anything else libsndfile reads) go through soundfile.
* MP3 / AAC / M4A go through ``ffmpeg`` (decoded to 32-bit float on a pipe, encoded from one),
  so nothing is held in memory beyond one block when streaming.
* Writes are atomic: a temporary file in the destination's directory, then ``os.replace``.
* :func:`to_detector_int16` is exactly what the board's microphone path sees: mono downmix,
  exact rational resampling to 16 kHz, rounding to int16; :class:`DetectorStream` gives the
  same samples block by block, so a long file is never held whole.

Samples are float32 in [-1, 1), shaped ``(frames, channels)``.
"""

import json
import os
import shutil
import subprocess
import tempfile
from fractions import Fraction

import numpy as np

from . import fsutil
from .errors import AudioError, ToolMissing

DETECTOR_SAMPLERATE_HZ = 16000
FFMPEG_SUFFIXES = (".mp3", ".aac", ".m4a", ".mp4")
# ffmpeg encoder and default bitrate for the formats soundfile cannot write.
_FFMPEG_ENCODERS = {".mp3": ("libmp3lame", "192k"), ".aac": ("aac", "192k"),
                    ".m4a": ("aac", "192k"), ".mp4": ("aac", "192k")}
DEFAULT_BLOCKSIZE = 65536


def _suffix(path):
    return os.path.splitext(str(path))[1].lower()


def uses_ffmpeg(path):
    """True when `path` is read and written through ffmpeg (by its suffix)."""
    return _suffix(path) in FFMPEG_SUFFIXES


def _need(tool):
    exe = shutil.which(tool)
    if exe is None:
        raise ToolMissing("%s is not installed (needed for %s files)" % (tool, "MP3/AAC/M4A"))
    return exe


def _probe(path):
    """Sample rate, channel count, frame estimate and bit rate of a file, via ffprobe."""
    exe = _need("ffprobe")
    cmd = [exe, "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels,bit_rate,duration", "-of", "json", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        msg = proc.stderr.strip().splitlines()
        raise AudioError("%s: cannot decode (%s)" % (path, msg[-1] if msg else "ffprobe failed"))
    streams = json.loads(proc.stdout or "{}").get("streams") or []
    if not streams:
        raise AudioError("%s: no audio stream" % (path,))
    s = streams[0]
    rate = int(s["sample_rate"])
    dur = float(s["duration"]) if s.get("duration") not in (None, "N/A") else None
    return {"samplerate": rate, "channels": int(s["channels"]),
            "frames": int(round(dur * rate)) if dur else None,
            "bit_rate": int(s["bit_rate"]) if s.get("bit_rate") not in (None, "N/A") else None}


def audio_info(path):
    """Facts about an audio file without reading it.

    Returns
    -------
    dict
        ``samplerate``, ``channels``, ``frames`` (may be an estimate for ffmpeg formats),
        ``format`` (soundfile's name, or the suffix for ffmpeg formats), ``subtype``
        (soundfile's, or None), ``bit_rate`` (ffmpeg formats, or None), ``duration_s``.
    """
    path = str(path)
    if not os.path.exists(path):
        raise AudioError("%s: no such file" % (path,))
    if uses_ffmpeg(path):
        p = _probe(path)
        info = {"samplerate": p["samplerate"], "channels": p["channels"], "frames": p["frames"],
                "format": _suffix(path)[1:].upper(), "subtype": None, "bit_rate": p["bit_rate"]}
    else:
        import soundfile as sf
        try:
            i = sf.info(path)
        except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
            raise AudioError("%s: cannot read (%s)" % (path, _oneline(exc))) from None
        info = {"samplerate": int(i.samplerate), "channels": int(i.channels),
                "frames": int(i.frames), "format": i.format, "subtype": i.subtype,
                "bit_rate": None}
    info["duration_s"] = (info["frames"] / info["samplerate"]) if info["frames"] else None
    return info


def _oneline(exc):
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


class AudioReader:
    """Read an audio file in blocks of float32 frames; use as a context manager.

    Parameters
    ----------
    path : str or path-like
    blocksize : int
        Frames per block yielded by iteration.

    Attributes
    ----------
    info : dict
        As :func:`audio_info`.

    Examples
    --------
    >>> with AudioReader("song.flac") as r:            # doctest: +SKIP
    ...     for block in r:                             # (frames, channels) float32
    ...         pass
    """

    def __init__(self, path, blocksize=DEFAULT_BLOCKSIZE):
        self.path = str(path)
        self.blocksize = int(blocksize)
        self.info = audio_info(self.path)
        self._sf = None
        self._proc = None

    def __enter__(self):
        if uses_ffmpeg(self.path):
            exe = _need("ffmpeg")
            cmd = [exe, "-v", "error", "-nostdin", "-i", self.path, "-map", "0:a:0",
                   "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        else:
            import soundfile as sf
            try:
                self._sf = sf.SoundFile(self.path)
            except Exception as exc:
                raise AudioError("%s: cannot read (%s)" % (self.path, _oneline(exc))) from None
        return self

    def __iter__(self):
        ch = self.info["channels"]
        if self._sf is not None:
            while True:
                try:
                    block = self._sf.read(self.blocksize, dtype="float32", always_2d=True)
                except Exception as exc:  # a damaged file fails mid-stream (LibsndfileError)
                    raise AudioError("%s: cannot read past %.2f s (%s)" % (
                        self.path, self._sf.tell() / self.info["samplerate"],
                        _oneline(exc))) from None
                if block.shape[0] == 0:
                    return
                yield block
        else:
            nbytes = self.blocksize * ch * 4
            while True:
                raw = self._proc.stdout.read(nbytes)
                if not raw:
                    break
                usable = len(raw) - len(raw) % (ch * 4)
                yield np.frombuffer(raw[:usable], dtype="<f4").reshape(-1, ch).copy()
            err = self._proc.stderr.read().decode(errors="replace").strip()
            if self._proc.wait() != 0:
                raise AudioError("%s: ffmpeg could not decode (%s)" % (
                    self.path, err.splitlines()[-1] if err else "exit %d" % self._proc.returncode))

    def __exit__(self, *exc):
        if self._sf is not None:
            self._sf.close()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc.stdout.close()
            self._proc.stderr.close()
        return False


def read_audio(path):
    """Read a whole audio file.

    Returns
    -------
    data : numpy.ndarray, shape (frames, channels), float32
    samplerate : int
    info : dict
        As :func:`audio_info` (``frames`` exact).
    """
    with AudioReader(path) as r:
        blocks = list(r)
    info = dict(r.info)
    ch = info["channels"]
    data = np.concatenate(blocks, axis=0) if blocks else np.zeros((0, ch), np.float32)
    info["frames"] = int(data.shape[0])
    info["duration_s"] = data.shape[0] / info["samplerate"]
    return data, info["samplerate"], info


class AudioWriter:
    """Write an audio file block by block, atomically; use as a context manager.

    The data goes to a temporary file in the destination's directory, which replaces `path`
    only when the block exits without an exception (it is deleted otherwise).

    Parameters
    ----------
    path : str or path-like
        Destination; its suffix picks the format (soundfile's, or ffmpeg for MP3/AAC/M4A).
    samplerate : int
    channels : int
    subtype : str, optional
        soundfile subtype (e.g. ``"PCM_16"``); default: soundfile's default for the format.
    bit_rate : int, optional
        Bits per second for ffmpeg formats (default 192 kb/s).
    """

    def __init__(self, path, samplerate, channels, subtype=None, bit_rate=None):
        self.path = str(path)
        self.samplerate = int(samplerate)
        self.channels = int(channels)
        self.subtype = subtype
        self.bit_rate = bit_rate
        self._tmp = None
        self._sf = None
        self._proc = None
        self._round16 = None

    def __enter__(self):
        d = os.path.dirname(os.path.abspath(self.path))
        suffix = _suffix(self.path)
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=".airmark-", suffix=suffix, dir=d)
        except OSError as exc:
            raise AudioError("%s: cannot write (%s)" % (self.path, exc.strerror or exc)) from None
        os.close(fd)
        try:
            if suffix in FFMPEG_SUFFIXES:
                exe = _need("ffmpeg")
                codec, rate = _FFMPEG_ENCODERS[suffix]
                if self.bit_rate:
                    rate = str(int(self.bit_rate))
                cmd = [exe, "-v", "error", "-nostdin", "-y", "-f", "f32le", "-ar",
                       str(self.samplerate), "-ac", str(self.channels), "-i", "pipe:0",
                       "-c:a", codec, "-b:a", rate, self._tmp]
                self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            else:
                import soundfile as sf
                fmt = _sf_format(self.path)
                self._sf = sf.SoundFile(self._tmp, "w", samplerate=self.samplerate,
                                        channels=self.channels, format=fmt,
                                        subtype=self.subtype)
                if self._sf.subtype == "PCM_16":
                    self._round16 = _PCM16_ROUNDING.get(fmt)
        except Exception as exc:
            self._discard()
            if isinstance(exc, (AudioError, ToolMissing)):
                raise
            raise AudioError("%s: cannot write (%s)" % (self.path, _oneline(exc))) from None
        return self

    def write(self, block):
        """Append a block, shape (frames, channels) (or (frames,) when mono), float."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 1:
            block = block[:, None]
        if self._round16 is not None:
            self._sf.write(pcm16(block, self._round16))
        elif self._sf is not None:
            self._sf.write(block)
        else:
            try:
                self._proc.stdin.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
            except BrokenPipeError:
                raise AudioError("%s: ffmpeg stopped while encoding" % (self.path,)) from None

    def _discard(self):
        if self._sf is not None:
            self._sf.close()
            self._sf = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
        if self._tmp and os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._discard()
            return False
        try:
            if self._sf is not None:
                self._sf.close()
                self._sf = None
            if self._proc is not None:
                self._proc.stdin.close()
                err = self._proc.stderr.read().decode(errors="replace").strip()
                if self._proc.wait() != 0:
                    raise AudioError("%s: ffmpeg could not encode (%s)" % (
                        self.path, err.splitlines()[-1] if err else "failed"))
                self._proc.stderr.close()
                self._proc = None
            fsutil.publish(self._tmp, self.path)
            self._tmp = None
        except BaseException as exc:
            self._discard()
            if isinstance(exc, OSError):
                raise AudioError("%s: cannot write (%s)" % (self.path, exc.strerror or exc)) from None
            raise
        return False


_PCM16_ROUNDING = {"WAV": np.floor, "WAVEX": np.floor, "AIFF": np.floor, "FLAC": np.rint}
"""How libsndfile rounds float samples to 16 bits, per container (measured: bit-identical)."""


def pcm16(block, rounding=np.floor):
    """Float32 samples as int16 the way libsndfile converts them (scale 32768, `rounding`,
    clipped), at twice its speed: :class:`AudioWriter` writes PCM_16 files through it.

    Examples
    --------
    >>> pcm16(np.array([-1.5, -0.5 / 32768, 1.5 / 32768, 0.99999], np.float32)).tolist()
    [-32768, -1, 1, 32767]
    """
    y = np.multiply(block, np.float32(32768.0), dtype=np.float32)
    rounding(y, out=y)
    np.clip(y, -32768.0, 32767.0, out=y)
    return y.astype(np.int16)


def _sf_format(path):
    import soundfile as sf
    fmt = _suffix(path)[1:].upper()
    if fmt == "OGA":
        fmt = "OGG"
    if fmt not in sf.available_formats():
        raise AudioError("%s: unknown audio format %r" % (path, _suffix(path)))
    return fmt


def write_audio(path, data, samplerate, subtype=None, bit_rate=None):
    """Write a whole array to `path` atomically (see :class:`AudioWriter`).

    Parameters
    ----------
    path : str or path-like
    data : numpy.ndarray, shape (frames, channels) or (frames,)
    samplerate : int
    subtype : str, optional
        soundfile subtype, e.g. the input file's (``info["subtype"]`` from :func:`read_audio`).
    """
    data = np.asarray(data)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with AudioWriter(path, samplerate, channels, subtype=subtype, bit_rate=bit_rate) as w:
        w.write(data)


def output_subtype(in_info, out_path):
    """The soundfile subtype to write `out_path` with: the input's when the format allows it."""
    if uses_ffmpeg(out_path):
        return None
    import soundfile as sf
    fmt = _sf_format(out_path)
    sub = in_info.get("subtype")
    if sub and sf.check_format(fmt, sub):
        return sub
    return sf.default_subtype(fmt)


def to_detector_int16(data, samplerate):
    """What the board sees: mono downmix, exact rational resample to 16 kHz, int16.

    Parameters
    ----------
    data : numpy.ndarray, shape (frames, channels) or (frames,), float in [-1, 1)
    samplerate : int
        Rate of `data` in Hz.

    Returns
    -------
    numpy.ndarray, shape (frames * 16000 / samplerate,), int16
        ``round(32768 * x)`` clipped to the int16 range, resampled with
        ``scipy.signal.resample_poly`` by the reduced ratio 16000 / samplerate (e.g. 160/441).
    """
    from scipy import signal
    x = np.asarray(data, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    ratio = Fraction(DETECTOR_SAMPLERATE_HZ, int(samplerate))
    if ratio != 1:
        x = signal.resample_poly(x, ratio.numerator, ratio.denominator)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


class DetectorStream:
    """:func:`to_detector_int16` block by block: the same int16 samples, bit for bit.

    ``feed(block)`` takes (frames, channels) or (frames,) float blocks of any length and
    returns the 16 kHz int16 samples that are final so far; ``finish()`` returns the rest.
    Memory is one chunk (`chunk_s`) plus a little context, whatever the file's length.

    Why it is exact: ``resample_poly`` computes each output sample from the input near it
    with one filter, and an input shifted by a multiple of ``down`` samples shifts the
    outputs by a whole number (``up`` each). So the resampler runs on overlapping chunks
    that start on such multiples, with enough input either side that the zero padding at
    a chunk's edges never reaches the outputs kept from it; the first and the last chunk
    keep the file's own edges, padded as the whole-file call pads them.
    """

    def __init__(self, samplerate, chunk_s=10.0):
        ratio = Fraction(DETECTOR_SAMPLERATE_HZ, int(samplerate))
        self.up, self.down = ratio.numerator, ratio.denominator
        d = self.down
        # resample_poly's filter reaches 10 * max(up, down) samples at the upsampled rate,
        # 10 * max(up, down) / up input samples; the context is more, in whole `down`s
        reach = 10 * max(self.up, d) // self.up + 1
        self._ctx = d * (-(-(reach + 64) // d))
        self._chunk = d * max(1, int(chunk_s * samplerate) // d)
        self._buf = np.zeros(0, dtype=np.float64)
        self._buf_start = 0  # input index of _buf[0], a multiple of `down`
        self._done_in = 0  # input samples whose outputs have been returned

    @staticmethod
    def _to_int16(x):
        return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)

    def _resample(self, lo, hi, out_lo, out_hi):
        """Outputs [out_lo, out_hi) from the input samples [lo, hi) held in _buf."""
        from scipy import signal
        seg = self._buf[lo - self._buf_start:hi - self._buf_start]
        y = signal.resample_poly(seg, self.up, self.down)
        first = lo // self.down * self.up  # lo is a multiple of `down`
        return self._to_int16(y[out_lo - first:out_hi - first])

    def feed(self, block):
        x = np.asarray(block, dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if self.up == self.down:
            return self._to_int16(x)
        self._buf = np.concatenate((self._buf, x))
        end = self._buf_start + len(self._buf)  # input samples so far
        outs = []
        while self._done_in + self._chunk + self._ctx <= end:
            a, b = self._done_in, self._done_in + self._chunk
            lo = max(0, a - self._ctx)
            outs.append(self._resample(lo, b + self._ctx, a // self.down * self.up,
                                       b // self.down * self.up))
            self._done_in = b
            keep_from = max(0, b - self._ctx)  # a multiple of `down`: the next chunk's lo
            self._buf = self._buf[keep_from - self._buf_start:]
            self._buf_start = keep_from
        return np.concatenate(outs) if outs else np.zeros(0, dtype=np.int16)

    def finish(self):
        if self.up == self.down:
            return np.zeros(0, dtype=np.int16)
        n = self._buf_start + len(self._buf)
        n_out = -(-n * self.up // self.down)  # what the whole-file call returns
        a = self._done_in
        if n == 0 or a // self.down * self.up >= n_out:
            return np.zeros(0, dtype=np.int16)
        lo = max(0, a - self._ctx)
        return self._resample(lo, n, a // self.down * self.up, n_out)
