r"""The watermark embedder: one-shot (:func:`embed_array`, :func:`embed_file`) and streaming
(:class:`Embedder`).

The mark, in the detector's domain (16 kHz, blocks of :math:`N` = ``key["block_samples"]``):

.. math::

    m_b[n] = s_b \, r[n] \, \mathrm{irfft}_N\!\left(A_b[j] \, e^{i \varphi_{b \bmod P}[j]}\right)[n],
    \qquad s_b = \begin{cases} -1 & \text{key\_bits}[b \bmod K] = 1 \\ +1 & \text{otherwise}
    \end{cases}

* :math:`b` counts blocks from the start of the marked segment, blocks are back to back;
* :math:`\varphi_p[j]` (:func:`pattern_phases`) are the fixed random phases of pattern block
  :math:`p < P` = ``key["pattern_blocks"]``, on the bins :math:`j` whose centre frequency is in
  ``key["band_hz"]`` (all other bins are zero);
* :math:`A_b[j] = c_b N \sqrt{g \, T_b[j] / 2}` puts the power :math:`c_b^2 g\,T_b[j]` in bin :math:`j`,
  where :math:`T_b[j]` is the host's masking threshold at that block and frequency
  (:mod:`airmark.psycho`, smoothed over blocks) and :math:`g = 10^{\text{strength\_db}/10}`;
* :math:`c_b \le 1` is the level cap (:data:`WHR_CAP_DB`): running means over about a second
  (:data:`WHR_CAP_BLOCKS`) of the host's block power (mono mid, 0-8 kHz) and of the mark's
  :math:`g \sum_j T_b[j]`; where the mark's mean exceeds :math:`10^{(\text{WHR\_CAP\_DB} +
  \text{strength\_db} - 4)/10}` times the host's, :math:`A_b` is scaled down by the square root
  of the excess. It binds on speech and on steady beds whose masking threshold sits close to
  their own level, where ViSQOL would otherwise fall below 4.6;
* :math:`r[n]` tapers the first and last :data:`TAPER_SAMPLES` samples with raised-cosine ramps,
  so every block starts and ends at zero: the sign flips between blocks make no clicks;
* the 16 kHz mark then goes through a :data:`HIGHPASS_ORDER`-order Butterworth high-pass at 0.8
  times its lowest bin's frequency (150 Hz by default), which removes what the blocks' edges
  spread below the band; after a segment, the filter's ringing is kept for one block;
* the whole 16 kHz mark is resampled to the host rate with an exact rational polyphase filter
  (e.g. 441/160 for 44.1 kHz), so one pattern period stays exactly :math:`P N` samples at 16 kHz
  (no drift), and added to every channel.

Analysis (latency ≤ one block): the host is resampled to 16 kHz; block :math:`b` is analysed
with a :math:`2N`-point asymmetric window (rising half-Hann from :math:`N + M` samples before
the block to its centre, falling half-Hann to :math:`M` samples before its end; :math:`M` covers
the two resampling filters), so the mark for a block is known one block after the block starts.
In stereo the threshold is that of the mid :math:`(L+R)/2`, capped by each channel's own, and
the same mark goes to every channel (mid only: a mono downmix keeps it, mid/side upmixing puts
it in the centre).

The sum never clips: where host + mark would leave [-1, 1], the mark is softly compressed into
the headroom left by the host (a float host already beyond full scale is soft-clipped); those
samples are counted in ``info["limited_samples"]``.
"""

import json
import math
import os
from fractions import Fraction

import numpy as np
from scipy import signal

from . import fsutil, psycho
from .errors import AirmarkError

DETECTOR_SAMPLERATE_HZ = 16000
TAPER_SAMPLES = 16
"""Raised-cosine ramp length at each end of every mark block (16 kHz samples, 1 ms)."""

LIMIT_CEILING = 1.0
HOST_OVER_KNEE = 0.9
"""Soft-clip knee for float hosts that are already beyond full scale."""

# Resampling filters (Kaiser FIR). Analysis: what would alias into the band (<= 6 kHz after
# folding at 8 kHz, i.e. >= 10 kHz) is 40 dB down; it only feeds the masking estimate. Mark:
# its images (16 kHz minus the band, >= 9.5 kHz by default) are 70 dB down.
_ANALYSIS_PASS_HZ, _ANALYSIS_STOP_HZ, _ANALYSIS_ATTEN_DB = 7000.0, 10000.0, 40.0
_MARK_MARGIN_HZ, _MARK_ATTEN_DB = 500.0, 70.0
DEFAULT_CHUNK_FRAMES = 32768
_PIECE_FRAMES = 32768


# Mark level relative to the masking threshold, dB. +4 dB gives the detector ~1.6x the
# score of 0 dB; with the level cap below, ViSQOL stays >= 4.6 on 43 of the 44 soundtrack,
# speech and drum clips measured (tools/measure_quality.py); see docs/ALGORITHM.md.
DEFAULT_STRENGTH_DB = 4.0

WHR_CAP_DB = -7.0
"""Level cap at the default strength: the mark's power, averaged over about
:data:`WHR_CAP_BLOCKS` blocks, stays this many dB below the host's (mono mid, 0-8 kHz). The
cap moves with the strength (``WHR_CAP_DB + strength_db - DEFAULT_STRENGTH_DB``). It binds on
hosts whose masking threshold sits close to their own level: speech, and steady beds with
little bass or treble outside the band."""

WHR_CAP_BLOCKS = 64
"""Time constant (blocks, 1.02 s at 16 kHz) of the running means the level cap compares."""

HIGHPASS_ORDER = 4
"""Butterworth high-pass applied to the 16 kHz mark at 0.8x its lowest bin's frequency (150 Hz
for the default band): the blocks' edges spread the lowest bins below the band, where the host
often has little to hide them."""


class EmbedError(AirmarkError, ValueError):
    """Bad embedding parameters (sample rate, segment, key fields, strength)."""


# ---------------------------------------------------------------------------------------------
# Key-derived pattern


def band_mask(key):
    """Boolean mask over the ``N // 2 + 1`` rfft bins whose centre frequency is in the band.

    Bin :math:`j` has centre frequency :math:`j \\cdot 16000 / N` Hz; it is in the band when
    ``band_hz[0] <= f <= band_hz[1]``.
    """
    n = int(key["block_samples"])
    f = np.arange(n // 2 + 1) * (DETECTOR_SAMPLERATE_HZ / n)
    lo, hi = key["band_hz"]
    return (f >= lo) & (f <= hi)


def pattern_phases(key):
    r"""Phases :math:`\varphi_p[j]` of the P pattern blocks, radians.

    Drawn as ``2 * pi * numpy.random.default_rng(key["noise_seed"]).random((P, N // 2 + 1))``;
    bins outside the band (:func:`band_mask`) are set to 0 (and carry no mark).

    Returns
    -------
    numpy.ndarray, shape (P, N // 2 + 1), float64
    """
    n = int(key["block_samples"])
    p = int(key["pattern_blocks"])
    rng = np.random.default_rng(int(key["noise_seed"]))
    phases = 2.0 * np.pi * rng.random((p, n // 2 + 1))
    phases[:, ~band_mask(key)] = 0.0
    return phases


def key_signs(key):
    """Block signs: -1.0 where ``key_bits`` has '1' (block inverted), else +1.0; shape (K,)."""
    return np.array([-1.0 if c == "1" else 1.0 for c in key["key_bits"]])


def taper(n, ramp=TAPER_SAMPLES):
    """Per-block gain: raised-cosine ramps over the first and last `ramp` samples, 1 between."""
    r = np.ones(n)
    t = 0.5 * (1.0 - np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp))
    r[:ramp] = t
    r[n - ramp:] = t[::-1]
    return r


def _check_key(key):
    from ._firmware import airmark_key
    if not isinstance(key, dict):
        raise EmbedError("key must be a key record (dict), got %r" % (type(key).__name__,))
    problems = airmark_key.problems(key)
    if problems:
        raise EmbedError("invalid key: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# Streaming rational resampler


class _PolyStream:
    r"""Streaming polyphase resampler by the exact ratio ``fs_out / fs_in = up / down``.

    Output :math:`y[k] = \sum_n x[n] \, h[k \cdot down + c - n \cdot up]` with a linear-phase
    Kaiser low-pass :math:`h` of odd length :math:`2c + 1` (zero delay). Outputs depend only on
    absolute sample positions, so any chunking gives the same values. Signals are laid out
    (channels, samples).
    """

    def __init__(self, fs_in, fs_out, pass_hz, stop_hz, atten_db, channels):
        ratio = Fraction(int(fs_out), int(fs_in))
        self.up, self.down = ratio.numerator, ratio.denominator
        self.identity = ratio == 1
        if self.identity:
            self.h = np.ones(1)
        else:
            rate = fs_in * self.up
            numtaps, beta = signal.kaiserord(atten_db, (stop_hz - pass_hz) / (0.5 * rate))
            numtaps |= 1
            self.h = signal.firwin(numtaps, 0.5 * (pass_hz + stop_hz), window=("kaiser", beta),
                                   fs=rate) * self.up
        self.c = (len(self.h) - 1) // 2
        self.r0 = (self.c * pow(self.up, -1, self.down)) % self.down if self.down > 1 else 0
        self.buf = np.zeros((channels, 0))
        self.buf_start = 0
        self.n_in = 0
        self.k_next = 0

    @property
    def reach_in(self):
        """How far ahead (in input samples) an output looks: c / up."""
        return self.c / self.up

    @property
    def reach_out(self):
        """The same in output samples: c / down."""
        return self.c / self.down

    def push(self, x):
        """Append input samples, shape (channels, count)."""
        self.buf = np.concatenate([self.buf, x], axis=1) if self.buf.shape[1] else x
        self.n_in += x.shape[1]

    def ready_end(self):
        """One past the last output computable from the input received so far."""
        return max(0, (self.n_in * self.up - 1 - self.c) // self.down + 1)

    def last_input_for(self, k):
        """Index of the last input sample that output `k` uses."""
        return (k * self.down + self.c) // self.up

    def _inputs(self, n0, n1):
        """Input samples n0..n1-1 (zeros outside what the buffer holds)."""
        lo, hi = self.buf_start, self.buf_start + self.buf.shape[1]
        if lo <= n0 and n1 <= hi:
            return self.buf[:, n0 - lo:n1 - lo]
        out = np.zeros((self.buf.shape[0], n1 - n0))
        a, b = max(n0, lo), min(n1, hi)
        if a < b:
            out[:, a - n0:b - n0] = self.buf[:, a - lo:b - lo]
        return out

    def pull(self, k_end):
        """Outputs ``k_next .. k_end - 1``, shape (channels, count); inputs not yet pushed are
        taken as zeros (callers ask for more than :meth:`ready_end` only at the end)."""
        k0 = self.k_next
        if k_end <= k0:
            return np.zeros((self.buf.shape[0], 0))
        if self.identity:
            y = self._inputs(k0, k_end).copy()
        else:
            up, down, c, L = self.up, self.down, self.c, len(self.h)
            n_lo = -((-(k0 * down + c - (L - 1))) // up)
            n_hi = ((k_end - 1) * down + c) // up
            ns0 = n_lo - ((n_lo - self.r0) % down)
            xs = np.ascontiguousarray(self._inputs(ns0, n_hi + 1))
            i0 = (k0 * down + c - ns0 * up) // down
            y = signal.upfirdn(self.h, xs, up, down, axis=1)[:, i0:i0 + (k_end - k0)]
        self.k_next = k_end
        keep = -((-(self.k_next * self.down + self.c - (len(self.h) - 1))) // self.up) - self.down
        drop = min(keep - self.buf_start, self.buf.shape[1])
        if drop > 0:
            self.buf = self.buf[:, drop:]
            self.buf_start += drop
        return y


# ---------------------------------------------------------------------------------------------
# The embedder


class Embedder:
    r"""Streaming watermark embedder: ``process(chunk) -> chunk``, then ``flush()``.

    Parameters
    ----------
    key : dict
        A valid key record (``airmark.keys.load``).
    samplerate : int
        Host sample rate in Hz, at least 16000.
    channels : int
        Host channel count (the same mark goes to every channel).
    strength_db : float, keyword-only
        Mark power relative to the masking threshold, dB (0 = at the threshold).
    start_s, duration_s : float or None, keyword-only
        Mark only the segment ``[start_s, start_s + duration_s)`` (duration rounded up to whole
        blocks). ``None`` start means 0; ``None`` duration means to the end of the stream.

    Notes
    -----
    Latency: :meth:`process` returns every sample as soon as the mark under it is known; once
    :attr:`latency_frames` (at most one block, ``floor(N * samplerate / 16000)``) frames have
    been fed, each call returns as many frames as it was given. Concatenating every output and
    :meth:`flush` gives exactly one output frame per input frame, identical whatever the
    chunking. State is bounded: a few blocks of history plus the current chunk.

    Examples
    --------
    >>> emb = Embedder(key, 48000, 2)                                   # doctest: +SKIP
    >>> out = [emb.process(c) for c in chunks] + [emb.flush()]          # doctest: +SKIP
    """

    def __init__(self, key, samplerate, channels, *, strength_db=DEFAULT_STRENGTH_DB, start_s=None,
                 duration_s=None):
        _check_key(key)
        if isinstance(samplerate, bool) or not isinstance(samplerate, (int, np.integer)) \
                or samplerate < DETECTOR_SAMPLERATE_HZ:
            raise EmbedError("sample rate must be an integer >= %d Hz, got %r"
                             % (DETECTOR_SAMPLERATE_HZ, samplerate))
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) \
                or channels < 1:
            raise EmbedError("channels must be a positive integer, got %r" % (channels,))
        if not np.isfinite(strength_db) or abs(strength_db) > 40:
            raise EmbedError("strength must be within -40..40 dB, got %r" % (strength_db,))
        if start_s is not None and (not np.isfinite(start_s) or start_s < 0):
            raise EmbedError("start must be >= 0 seconds, got %r" % (start_s,))
        if duration_s is not None and (not np.isfinite(duration_s) or duration_s <= 0):
            raise EmbedError("duration must be > 0 seconds, got %r" % (duration_s,))

        self.key = key
        self.samplerate = int(samplerate)
        self.channels = int(channels)
        self.strength_db = float(strength_db)
        self.start_s = start_s
        self.duration_s = duration_s
        n = self._n = int(key["block_samples"])
        self._p = int(key["pattern_blocks"])
        self._signs = key_signs(key)
        mask = band_mask(key)
        self._band = np.flatnonzero(mask)
        if self._band.size == 0:
            raise EmbedError("band %r holds no %d-point bin" % (key["band_hz"], n))
        self._phasors = np.exp(1j * pattern_phases(key)[:, self._band])
        self._taper = taper(n, min(TAPER_SAMPLES, n // 8))
        self._gain = 10.0 ** (self.strength_db / 10.0)
        self.whr_cap_db = WHR_CAP_DB + self.strength_db - DEFAULT_STRENGTH_DB
        self._cap = 10.0 ** (self.whr_cap_db / 10.0)
        self._cap_means = None  # running (host, uncapped mark) block powers of the level cap
        low_hz = self._band[0] * DETECTOR_SAMPLERATE_HZ / n
        self._hp_sos = (signal.butter(HIGHPASS_ORDER, 0.8 * low_hz, "highpass",
                                      fs=DETECTOR_SAMPLERATE_HZ, output="sos")
                        if self._band[0] >= 2 else None)
        self._hp_zi = None if self._hp_sos is None else np.zeros((self._hp_sos.shape[0], 2))
        self._hp_tail = 0  # mark samples of high-pass ringing still to emit after the segment

        # Segment in 16 kHz samples.
        self._s16 = int(round((start_s or 0.0) * DETECTOR_SAMPLERATE_HZ))
        if duration_s is None:
            self._nblocks = None
        else:
            d16 = int(round(duration_s * DETECTOR_SAMPLERATE_HZ))
            self._nblocks = max(1, -(-d16 // n))

        # Resamplers: host -> 16 kHz (analysis), 16 kHz -> host (mark).
        fs = self.samplerate
        self._ana = _PolyStream(fs, DETECTOR_SAMPLERATE_HZ, _ANALYSIS_PASS_HZ, _ANALYSIS_STOP_HZ,
                                _ANALYSIS_ATTEN_DB, self.channels)
        top = min(float(key["band_hz"][1]) + _MARK_MARGIN_HZ, 7600.0)
        self._syn = _PolyStream(DETECTOR_SAMPLERATE_HZ, fs, top, DETECTOR_SAMPLERATE_HZ - top,
                                _MARK_ATTEN_DB, 1)
        self._m = int(math.ceil(self._ana.reach_out) + math.ceil(self._syn.reach_in) + 1)
        fall = n // 2 - self._m
        if fall < n // 16:
            raise EmbedError("band top %r Hz too close to 8 kHz for a one-block latency"
                             % (key["band_hz"][1],))
        rise = 2 * n - fall
        self._window = np.concatenate([
            np.sin(0.5 * np.pi * (np.arange(rise) + 0.5) / rise) ** 2,
            np.cos(0.5 * np.pi * (np.arange(fall) + 0.5) / fall) ** 2])

        # Masking model on the 2N-point analysis spectrum, thresholds at the mark's bins.
        self._model = psycho.MaskingModel(2 * n, DETECTOR_SAMPLERATE_HZ,
                                          out_freqs_hz=self._band * (DETECTOR_SAMPLERATE_HZ / n),
                                          out_width_hz=DETECTOR_SAMPLERATE_HZ / n)

        # Stream state.
        self._xbuf = np.zeros((0, self.channels))
        self._n_in = 0
        self._n_out = 0
        self._abuf = np.zeros((self.channels, 0))
        self._a_start = 0
        self._m_end = 0           # mark (16 kHz) pushed to the synthesis resampler up to here
        self._next_block = 0
        self._hist_db = None
        self._flushed = False
        self._squeeze = False
        self._dtype = np.float64
        self._acc = {"mark_band": 0.0, "host_band": 0.0, "mark_full": 0.0, "host_full": 0.0,
                     "limited": 0, "blocks": 0, "capped": 0}

    # -- properties ----------------------------------------------------------------------------

    @property
    def latency_frames(self):
        """Upper bound of the added latency in host frames: one block."""
        return (self._n * self.samplerate) // DETECTOR_SAMPLERATE_HZ

    def _seg_end16(self):
        return None if self._nblocks is None else self._s16 + self._nblocks * self._n

    # -- mark synthesis ------------------------------------------------------------------------

    def _analysis_range(self, k0, k1):
        """Analysis signal (channels, k1 - k0) at 16 kHz, zeros outside what is held."""
        lo, hi = self._a_start, self._a_start + self._abuf.shape[1]
        if lo <= k0 and k1 <= hi:
            return self._abuf[:, k0 - lo:k1 - lo]
        out = np.zeros((self.channels, k1 - k0))
        a, b = max(k0, lo), min(k1, hi)
        if a < b:
            out[:, a - k0:b - k0] = self._abuf[:, a - lo:b - lo]
        return out

    def _mid(self, seg):
        mid = seg[0].copy()
        for c in range(1, seg.shape[0]):
            mid += seg[c]
        mid *= 1.0 / seg.shape[0]
        return mid

    def _make_blocks(self, b0, b1):
        """Mark samples of blocks b0..b1-1 (16 kHz), shape ((b1 - b0) * N,)."""
        n, m = self._n, self._m
        nblk = b1 - b0
        k_first = self._s16 + b0 * n
        seg = self._analysis_range(k_first - n - m, k_first + (nblk - 1) * n + n - m)
        # The signals analysed: the mid and, with more than one channel, every channel (whose
        # own threshold caps the mid's). Frames: (signals, nblk, 2n), hop n.
        if self.channels == 1:
            sig = seg
        else:
            sig = np.concatenate([self._mid(seg)[None, :], seg], axis=0)
        frames = np.lib.stride_tricks.sliding_window_view(sig, 2 * n, axis=1)[:, ::n]
        power = psycho.power_spectrum(frames, self._window).reshape(-1, n + 1)
        thr_db = self._model.threshold_db(power).reshape(sig.shape[0], nblk, -1).min(axis=0)
        if self._hist_db is None:
            self._hist_db = np.repeat(thr_db[:1], 2, axis=0)
        smooth_db, self._hist_db = psycho.smooth_threshold(thr_db, self._hist_db)
        amp = (n * math.sqrt(self._gain / 2.0)) * 10.0 ** (smooth_db / 20.0)
        amp *= self._level_cap(power.reshape(sig.shape[0], nblk, -1)[0].sum(axis=1),
                               self._gain * (10.0 ** (smooth_db / 10.0)).sum(axis=1))[:, None]
        b = np.arange(b0, b1)
        spec = np.zeros((nblk, n // 2 + 1), dtype=complex)
        spec[:, self._band] = amp * self._phasors[b % self._p]
        blocks = np.fft.irfft(spec, n, axis=1)
        blocks *= self._signs[b % self._signs.size][:, None]
        blocks *= self._taper
        blocks = self._highpass(blocks.reshape(-1)).reshape(nblk, n)
        if self._nblocks is not None and b1 == self._nblocks:
            self._hp_tail = n  # the filter rings on for a block after the segment
        # Statistics, in the 16 kHz domain: mark vs host mid power in the band (the host block
        # is taken M samples early: the last M samples of the block are not analysed yet).
        hb = self._analysis_range(k_first - m, k_first - m + nblk * n)
        hspec = np.fft.rfft(self._mid(hb).reshape(nblk, n), axis=1)[:, self._band]
        mspec = np.fft.rfft(blocks, axis=1)[:, self._band]
        self._acc["host_band"] += 2.0 * float(np.vdot(hspec, hspec).real) / n
        self._acc["mark_band"] += 2.0 * float(np.vdot(mspec, mspec).real) / n
        self._acc["blocks"] += nblk
        return blocks.reshape(-1)

    def _level_cap(self, host_power, mark_power):
        """Per-block gain <= 1 keeping the running mean of the mark's power (as the masking
        threshold asks for it) at most ``self._cap`` times that of the host."""
        a = 1.0 / WHR_CAP_BLOCKS
        if self._cap_means is None:
            self._cap_means = np.array([host_power[0], mark_power[0]])
        zi = (1.0 - a) * self._cap_means
        host_mean, _ = signal.lfilter([a], [1.0, a - 1.0], host_power, zi=zi[:1])
        mark_mean, _ = signal.lfilter([a], [1.0, a - 1.0], mark_power, zi=zi[1:])
        self._cap_means = np.array([host_mean[-1], mark_mean[-1]])
        allowed = self._cap * host_mean
        gain = np.ones(len(host_power))
        over = mark_mean > allowed
        gain[over] = np.sqrt(allowed[over] / mark_mean[over])
        self._acc["capped"] += int(np.count_nonzero(over))
        return gain

    def _highpass(self, mark16):
        if self._hp_sos is None:
            return mark16
        out, self._hp_zi = signal.sosfilt(self._hp_sos, mark16, zi=self._hp_zi)
        return out

    # -- streaming -----------------------------------------------------------------------------

    def _check_chunk(self, chunk):
        x = np.asarray(chunk)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError("chunk must be a float array, got dtype %r" % (x.dtype,))
        squeeze = x.ndim == 1
        if squeeze:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError("chunk must have shape (frames, %d), got %r"
                             % (self.channels, np.shape(chunk)))
        finite = np.isfinite(x)
        if not finite.all():
            frame = int(np.argmin(finite.all(axis=1)))
            raise EmbedError("the audio has a NaN or infinite sample at %.3f s"
                             % ((self._n_in + frame) / self.samplerate))
        return x.astype(np.float64, copy=False), squeeze, x.dtype

    def process(self, chunk):
        """Mark a chunk of host audio; returns the frames that are ready (see class notes).

        Parameters
        ----------
        chunk : numpy.ndarray, shape (frames, channels) (or (frames,) when mono), float

        Returns
        -------
        numpy.ndarray, same dtype and layout, ``frames`` frames once the latency is filled.
        """
        if self._flushed:
            raise EmbedError("process() called after flush()")
        x, squeeze, dtype = self._check_chunk(chunk)
        self._squeeze = squeeze
        self._dtype = np.float32 if dtype == np.float32 else np.float64
        outs = []
        # Work in pieces of at most _PIECE_FRAMES: same result, but the working set stays in
        # the CPU cache (big pieces are 2-3x slower).
        for i in range(0, max(1, x.shape[0]), _PIECE_FRAMES):
            piece = x[i:i + _PIECE_FRAMES]
            self._xbuf = np.concatenate([self._xbuf, piece], axis=0) \
                if self._xbuf.shape[0] else piece
            self._n_in += piece.shape[0]
            self._ana.push(np.ascontiguousarray(piece.T))
            outs.append(self._run(final=False))
        y = (outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0))
        y = y.astype(self._dtype, copy=False)
        return y[:, 0] if squeeze else y

    def flush(self):
        """Return the remaining frames (the audio after the end is taken as silence).

        Returns
        -------
        numpy.ndarray
            Same dtype and layout as the chunks given to :meth:`process`.
        """
        if self._flushed:
            y = np.zeros((0, self.channels))
        else:
            y = self._run(final=True)
            self._flushed = True
        y = y.astype(self._dtype, copy=False)
        return y[:, 0] if self._squeeze else y

    def _run(self, final):
        n, m, s16 = self._n, self._m, self._s16
        seg_end = self._seg_end16()
        n_target = self._n_in
        k_needed = self._syn.last_input_for(n_target - 1) + 1 if n_target > 0 else 0

        # 1. Analysis signal at 16 kHz.
        if final:
            blocks_needed = max(0, -(-(k_needed - s16) // n))
            if self._nblocks is not None:
                blocks_needed = min(blocks_needed, self._nblocks)
            k_ana = s16 + blocks_needed * n - m
        else:
            k_ana = self._ana.ready_end()
        if k_ana > self._ana.k_next:
            a = self._ana.pull(k_ana)
            if self._abuf.shape[1] == 0:
                self._abuf, self._a_start = a, k_ana - a.shape[1]
            else:
                self._abuf = np.concatenate([self._abuf, a], axis=1)

        # 2. Mark at 16 kHz: zeros before the segment, blocks, zeros after.
        if self._m_end < s16 and k_needed > self._m_end:
            self._push_zeros(min(s16, k_needed))
        if self._m_end >= s16:
            a_end = self._a_start + self._abuf.shape[1]
            b0 = self._next_block
            if final:
                b1 = max(b0, -(-(k_needed - s16) // n))
            else:
                b1 = max(b0, (a_end - s16 - n + m) // n + 1)
            if self._nblocks is not None:
                b1 = min(b1, self._nblocks)
            if b1 > b0:
                self._syn.push(self._make_blocks(b0, b1)[None, :])
                self._m_end += (b1 - b0) * n
                self._next_block = b1
            if seg_end is not None and self._next_block == self._nblocks \
                    and k_needed > self._m_end:
                self._push_zeros(k_needed)
        keep = s16 + self._next_block * n - n - m
        drop = min(keep - self._a_start, self._abuf.shape[1])
        if drop > 0:
            self._abuf = self._abuf[:, drop:]
            self._a_start += drop

        # 3. Host-rate mark and output.
        n_ready = n_target if final else min(n_target, self._syn.ready_end())
        count = max(0, n_ready - self._n_out)
        if count == 0:
            return np.zeros((0, self.channels))
        mark = self._syn.pull(n_ready)[0]
        x = self._xbuf[:count]
        self._xbuf = self._xbuf[count:]
        y = x + mark[:, None]
        y, limited = limit(x, y)
        self._acc["limited"] += limited
        self._account(x, y, self._n_out)
        self._n_out += count
        return y

    def _push_zeros(self, k_end):
        if k_end > self._m_end:
            z = np.zeros(k_end - self._m_end)
            t = min(self._hp_tail, len(z))
            if t:
                z[:t] = self._highpass(z[:t])
                self._hp_tail -= t
            self._syn.push(z[None, :])
            self._m_end = k_end

    def _account(self, x, y, n0):
        fs = self.samplerate
        lo = -(-self._s16 * fs // DETECTOR_SAMPLERATE_HZ)
        seg_end = self._seg_end16()
        hi = n0 + x.shape[0] if seg_end is None else -(-seg_end * fs // DETECTOR_SAMPLERATE_HZ)
        a, b = max(lo, n0) - n0, min(hi, n0 + x.shape[0]) - n0
        if a < b:
            xs = x[a:b]
            self._acc["host_full"] += float(np.sum(xs * xs))
            d = y[a:b] - xs
            self._acc["mark_full"] += float(np.sum(d * d))

    @property
    def info(self):
        """What has been marked so far (complete after :meth:`flush`).

        Returns
        -------
        dict
            ``segments`` ([[start_s, end_s]], the marked span, whole blocks, cut at the end of
            the audio), ``whr_db`` (mark-to-host power over the segment, all channels, full
            band, host rate), ``whr_band_db`` (the same in the key's band at 16 kHz on the mono
            mid: what the detector sees), ``limited_samples`` (channel samples the limiter
            touched), ``capped_blocks`` (blocks the level cap turned down) and ``whr_cap_db``
            (its level, :data:`WHR_CAP_DB` moved with the strength),
            ``strength_db``, ``key_id``, ``blocks``, ``samplerate``, ``channels``.
        """
        fs = self.samplerate
        done_s = self._n_out / fs
        start = self._s16 / DETECTOR_SAMPLERATE_HZ
        seg_end = self._seg_end16()
        end = done_s if seg_end is None else min(seg_end / DETECTOR_SAMPLERATE_HZ, done_s)
        acc = self._acc

        def ratio_db(a, b):
            return round(10.0 * math.log10(a / b), 2) if a > 0 and b > 0 else None

        return {
            "key_id": self.key["key_id"],
            "segments": [[round(start, 6), round(end, 6)]] if end > start else [],
            "whr_db": ratio_db(acc["mark_full"], acc["host_full"]),
            "whr_band_db": ratio_db(acc["mark_band"], acc["host_band"]),
            "limited_samples": int(acc["limited"]),
            "capped_blocks": int(acc["capped"]),
            "whr_cap_db": self.whr_cap_db,
            "strength_db": self.strength_db,
            "blocks": int(acc["blocks"]),
            "samplerate": fs,
            "channels": self.channels,
        }


def limit(x, y, ceiling=LIMIT_CEILING):
    r"""Keep host + mark inside [-ceiling, ceiling] without hard clipping.

    Where :math:`|y| > c` and the host has headroom :math:`h = c - \sigma x > 0` in the
    direction :math:`\sigma = \mathrm{sign}(y)`, the mark part is compressed into it:

    .. math:: y' = \sigma \left(\sigma x + h \tanh\frac{\sigma (y - x)}{h}\right)

    (so :math:`|y'| < c` and the host sample is untouched). A host already at or beyond
    :math:`c` (float input) is soft-clipped: :math:`y' = \sigma (k + (c - k) \tanh((|y| - k) / (c - k)))`
    with knee :math:`k` = :data:`HOST_OVER_KNEE`.

    Parameters
    ----------
    x, y : numpy.ndarray, same shape
        Host and host + mark.

    Returns
    -------
    y : numpy.ndarray
        Limited copy (or `y` itself when nothing exceeded).
    count : int
        Number of samples changed.
    """
    over = np.abs(y) > ceiling
    count = int(np.count_nonzero(over))
    if count == 0:
        return y, 0
    y = y.copy()
    xs, ys = x[over], y[over]
    sgn = np.sign(ys)
    head = ceiling - sgn * xs
    ok = head > 0
    safe_head = np.where(ok, head, 1.0)
    soft_mark = sgn * (sgn * xs + safe_head * np.tanh(sgn * (ys - xs) / safe_head))
    k = HOST_OVER_KNEE * ceiling
    soft_host = sgn * (k + (ceiling - k) * np.tanh((np.abs(ys) - k) / (ceiling - k)))
    y[over] = np.where(ok, soft_mark, soft_host)
    return y, count


# ---------------------------------------------------------------------------------------------
# One-shot helpers


def embed_array(x, samplerate, key, *, start_s=None, duration_s=None, strength_db=DEFAULT_STRENGTH_DB):
    """Watermark a whole array (same result as :class:`Embedder` over any chunking).

    Parameters
    ----------
    x : numpy.ndarray, shape (frames, channels) or (frames,), float
    samplerate : int
        Hz, at least 16000.
    key : dict
        Key record.
    start_s, duration_s, strength_db
        As :class:`Embedder`.

    Returns
    -------
    y : numpy.ndarray
        Marked audio, same shape and float dtype as `x`.
    info : dict
        :attr:`Embedder.info`.
    """
    x = np.asarray(x)
    squeeze = x.ndim == 1
    x2 = x[:, None] if squeeze else x
    if x2.ndim != 2:
        raise ValueError("x must have shape (frames, channels), got %r" % (x.shape,))
    frames = x2.shape[0]
    if start_s is not None and start_s * samplerate >= frames:
        raise EmbedError("segment start %.3f s is at or after the end of the audio (%.3f s)"
                         % (start_s, frames / samplerate))
    emb = Embedder(key, samplerate, x2.shape[1], strength_db=strength_db, start_s=start_s,
                   duration_s=duration_s)
    parts = [emb.process(x2[i:i + DEFAULT_CHUNK_FRAMES])
             for i in range(0, frames, DEFAULT_CHUNK_FRAMES)]
    parts.append(emb.flush().astype(parts[0].dtype if parts else np.float64, copy=False))
    y = np.concatenate(parts, axis=0) if parts else x2.astype(np.float64)
    return (y[:, 0] if squeeze else y), emb.info


def sidecar_path(out_path):
    """The sidecar JSON written next to a marked file: ``OUT.airmark.json``."""
    return str(out_path) + ".airmark.json"


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_paths(in_path, out_path, overwrite):
    """Refuse a missing IN, an OUT that is IN, and an existing OUT without `overwrite`."""
    from . import audio
    if not os.path.exists(in_path):
        raise audio.AudioError("%s: no such file" % (in_path,))
    if os.path.exists(out_path) and _same_file(in_path, out_path) or \
            os.path.realpath(in_path) == os.path.realpath(out_path):
        raise EmbedError("output %s is the input file; refusing to overwrite it" % (out_path,))
    if os.path.exists(out_path) and not overwrite:
        raise EmbedError("%s exists (use --force to replace it)" % (out_path,))


def embed_file(in_path, out_path, key, *, start_s=None, duration_s=None, strength_db=DEFAULT_STRENGTH_DB,
               overwrite=False, progress=None, chunk_frames=DEFAULT_CHUNK_FRAMES):
    """Watermark a file, streaming, and write ``OUT`` and its sidecar ``OUT.airmark.json``.

    The output has the input's sample rate, channel count and (where the output format allows)
    sample format. Both files are written atomically, OUT first: if its sidecar cannot be
    published then, OUT is put back as it was. `in_path` is never written.

    Parameters
    ----------
    in_path, out_path : str or path-like
    key : dict
        Key record.
    start_s, duration_s, strength_db
        As :class:`Embedder`.
    overwrite : bool
        Replace an existing `out_path` (never allowed when it is `in_path`).
    progress : callable, optional
        Called as ``progress(frames_done, frames_total_or_None)`` after every chunk.
    chunk_frames : int
        Frames read per chunk (memory is a few times this, whatever the file's length).

    Returns
    -------
    dict
        :attr:`Embedder.info` plus ``frames``, ``duration_s`` and ``sidecar`` (its path).
    """
    from . import audio
    in_path, out_path = str(in_path), str(out_path)
    check_paths(in_path, out_path, overwrite)
    with audio.AudioReader(in_path, blocksize=chunk_frames) as reader:
        info_in = reader.info
        total = info_in["frames"]
        if start_s is not None and total and start_s * info_in["samplerate"] >= total:
            raise EmbedError("segment start %.3f s is at or after the end of %s (%.3f s)"
                             % (start_s, in_path, total / info_in["samplerate"]))
        emb = Embedder(key, info_in["samplerate"], info_in["channels"], strength_db=strength_db,
                       start_s=start_s, duration_s=duration_s)
        subtype = audio.output_subtype(info_in, out_path)
        done = 0
        side = sidecar_path(out_path)
        side_tmp = backup = None
        try:
            with audio.AudioWriter(out_path, info_in["samplerate"], info_in["channels"],
                                   subtype=subtype, bit_rate=info_in.get("bit_rate")) as writer:
                for block in reader:
                    try:
                        out = emb.process(block)
                    except EmbedError as exc:
                        raise EmbedError("%s: %s" % (in_path, exc)) from None
                    if out.shape[0]:
                        writer.write(out)
                    done += block.shape[0]
                    if progress is not None:
                        progress(done, total)
                writer.write(emb.flush())
                info = emb.info
                info["frames"] = done
                info["duration_s"] = done / info_in["samplerate"]
                if start_s is not None and not info["segments"]:
                    raise EmbedError("segment start %.3f s is after the end of %s (%.3f s)"
                                     % (start_s, in_path, info["duration_s"]))
                record = {"format": "airmark-embed", "version": 1, "key_id": info["key_id"],
                          "segments": info["segments"], "samplerate": info["samplerate"],
                          "channels": info["channels"], "strength_db": info["strength_db"],
                          "whr_db": info["whr_db"], "whr_band_db": info["whr_band_db"],
                          "limited_samples": info["limited_samples"],
                          "capped_blocks": info["capped_blocks"], "blocks": info["blocks"],
                          "source": os.path.basename(in_path)}
                # the sidecar goes to a temporary file: it is published only once OUT is,
                # which happens when this block exits (ffmpeg can still fail there)
                side_tmp = _json_temp(side, record)
                backup = keep_old(out_path)
            publish_sidecar(side_tmp, out_path, backup)
        finally:
            _remove(side_tmp, backup)
    info["sidecar"] = side
    return info


def _json_temp(path, record):
    """`record` as JSON in a new temporary file next to `path`; returns its name."""
    import tempfile
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".airmark-", suffix=".json",
                                   dir=os.path.dirname(os.path.abspath(path)))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            raise EmbedError("%s: cannot write (%s)" % (path, exc.strerror or exc)) from None
        raise
    return tmp


def keep_old(out_path):
    """A hard link, under a temporary name, to the file at `out_path` if there is one, so
    :func:`publish_sidecar` can put it back; None if there is none or it cannot be kept."""
    import uuid
    if not os.path.lexists(out_path):
        return None
    name = os.path.join(os.path.dirname(os.path.abspath(out_path)),
                        ".airmark-%s.old" % uuid.uuid4().hex[:12])
    try:
        os.link(out_path, name, follow_symlinks=False)
    except (OSError, NotImplementedError):
        return None
    return name


def publish_sidecar(tmp, out_path, old=None):
    """Publish the finished sidecar `tmp` of the just published `out_path`. If that fails,
    OUT goes back to what it was (`old`, from :func:`keep_old`, or no file) and EmbedError
    says so: OUT is never left with a missing or stale sidecar."""
    side = sidecar_path(out_path)
    try:
        fsutil.publish(tmp, side)
        return
    except OSError as exc:
        why = exc.strerror or exc
    try:
        if old is not None:
            os.replace(old, out_path)
            undone = "%s left as it was" % out_path
        else:
            os.unlink(out_path)
            undone = "%s not written" % out_path
    except OSError:
        undone = "%s holds the new mark without its sidecar" % out_path
    raise EmbedError("%s: cannot write (%s); %s" % (side, why, undone))


def _remove(*paths):
    for p in paths:
        if p is not None and os.path.lexists(p):
            os.unlink(p)


def add_to_sidecar(path, fields):
    """Add `fields` to the sidecar JSON at `path` (rewritten atomically)."""
    with open(path) as f:
        record = json.load(f)
    record.update(fields)
    _write_json_atomic(path, record)


def _write_json_atomic(path, record):
    try:
        fsutil.write_json_atomic(path, record)
    except OSError as exc:
        raise EmbedError("%s: cannot write (%s)" % (path, exc.strerror or exc)) from None
