r"""Psychoacoustic masking model for the embedder (Johnston 1988 style).

The model says, for each block of host audio and each frequency bin, how much noise power can be
added without being heard (all powers in mean-square units: a full-scale sine is 0.5). The watermark is shaped to that threshold (see :mod:`airmark.embed`).

Steps (all at the detector rate, 16 kHz, on the mono mid signal or one channel):

1. **Power spectrum.** A ``nfft``-point windowed FFT of the block with context gives the power
   :math:`P_k` contributed by bin :math:`k`, in mean-square units (full-scale sine = 0.5), so that
   :math:`\sum_k P_k \approx \overline{x^2}` (:func:`power_spectrum`).
2. **Bark scale and partitions.** Bin frequencies map to critical-band rate :math:`z` (Zwicker &
   Terhardt 1980, :func:`bark`). Consecutive bins are grouped into partitions :math:`p` of about
   :data:`PARTITION_BARK` = 1/3 Bark (at least one bin each, as in MPEG-1 psychoacoustic model 2)
   with energy :math:`e_p = \sum_{k \in p} P_k` and centre :math:`z_p`.
3. **Spreading.** The excitation of partition :math:`q` sums every masker partition through
   Schroeder's spreading function (Schroeder, Atal & Hall 1979, :func:`spreading_db`; pairs below
   :data:`SPREAD_FLOOR_DB` are dropped), normalised by its integral :math:`G` (about 2.0 dB) so
   that a spectrum flat in Bark gives back its power per critical band:

   .. math:: E_q = \frac{1}{G} \sum_p 10^{SF(z_q - z_p)/10} e_p, \qquad
             G = \int 10^{SF(\Delta z)/10} d\Delta z

4. **Tonality.** A spectral flatness measure over bands of at least 1 Bark and 4 bins,
   :math:`\mathrm{SFM}_{dB} = 10\log_{10}(\text{geometric mean} / \text{arithmetic mean})` of the
   bin powers, gives each masker partition a tonality
   :math:`\alpha_p = \min(\mathrm{SFM}_{dB} / \mathrm{SFM}_{min}, 1)` (Johnston uses one
   whole-spectrum SFM with :math:`\mathrm{SFM}_{min} = -60` dB; per band the periodogram spans
   about -2.5 dB for white noise to -25 dB for a lone tone, so :data:`SFM_MIN_DB` is -25 dB).
   The tonality seen at partition :math:`q` is the excitation-weighted mean of its maskers'
   tonality, :math:`a_q = \sum_p S_{pq} \alpha_p e_p / \sum_p S_{pq} e_p` (as in MPEG-1
   psychoacoustic model 2).
5. **Masking offset.** Tonal maskers mask noise :math:`14.5 + z` dB below their level, noise
   maskers 5.5 dB below (Johnston 1988):

   .. math:: O_q = a_q (14.5 + z_q) + (1 - a_q)\, 5.5 \quad \text{dB}

6. **Threshold per output bin.** :math:`E_q 10^{-O_q/10}` is the noise power a critical band
   around :math:`z_q` may hold, i.e. a density per Bark. It is interpolated (in dB, linearly in
   Bark) at the centre :math:`z_i` of each output bin (the mark's 62.5 Hz bins) and multiplied
   by the bin's width :math:`\Delta z_i` in Bark, so the mark's power summed over a critical band
   equals the band's threshold. It never goes below the absolute threshold in quiet (Terhardt
   1979, :func:`ath_power`), applied the same way (a critical band of noise at the tone
   threshold), for an assumed playback level where a full-scale sine is
   :data:`FULL_SCALE_DB_SPL` = 96 dB SPL:

   .. math:: T_i = \max\left(\Delta z_i \, \widehat{E 10^{-O/10}}(z_i),\;
             \Delta z_i \, T_{q}(f_i)\right)

7. **Smoothing over time** (:func:`smooth_threshold`): the log threshold is averaged over the
   current and the two previous blocks and never exceeds the current block's threshold by more
   than :data:`SMOOTH_CAP_DB` (forward masking covers that after a louder block); this removes the
   block-to-block estimator jitter (no gain pumping) and slows the attack at onsets (no pre-echo).

References: J. D. Johnston, "Transform coding of audio signals using perceptual noise criteria",
IEEE JSAC 6(2), 1988; ISO/IEC 11172-3 Annex D (psychoacoustic models 1 and 2); E. Terhardt,
"Calculating virtual pitch", Hearing Research 1, 1979.
"""

import numpy as np

FULL_SCALE_DB_SPL = 96.0
"""Assumed playback level: a full-scale sine (mean square 0.5) plays at this many dB SPL."""

SFM_MIN_DB = -25.0
"""Per-band spectral flatness (dB) at and below which a band counts as fully tonal."""

NOISE_OFFSET_DB = 5.5
"""Johnston: noise masks noise this many dB below its level."""

PARTITION_BARK = 1.0 / 3.0
"""Width of the partitions the spectrum is grouped into (Bark; at least one FFT bin each)."""

SPREAD_FLOOR_DB = -60.0
"""Masker-maskee pairs whose spreading is below this are left out (negligible)."""

SPREAD_ROWS = 128
"""Spectra per matrix product in :meth:`MaskingModel.spread` (small enough for one thread)."""

SMOOTH_CAP_DB = 3.0
"""The smoothed threshold exceeds the current block's own threshold by at most this much."""

SMOOTH_BLOCKS = 3
"""Blocks averaged (in dB) by :func:`smooth_threshold`: the current one and two before it."""


def bark(f_hz):
    r"""Critical-band rate in Bark (Zwicker & Terhardt 1980).

    .. math:: z(f) = 13 \arctan(0.00076 f) + 3.5 \arctan\left((f / 7500)^2\right)

    Parameters
    ----------
    f_hz : array_like
        Frequency in Hz.

    Returns
    -------
    numpy.ndarray
        Bark, same shape as `f_hz`.

    Examples
    --------
    >>> round(float(bark(1000.0)), 2)
    8.51
    """
    f = np.asarray(f_hz, dtype=np.float64)
    return 13.0 * np.arctan(0.00076 * f) + 3.5 * np.arctan((f / 7500.0) ** 2)


def ath_db_spl(f_hz):
    r"""Absolute threshold of hearing in quiet, dB SPL (Terhardt 1979).

    .. math:: T_q(f) = 3.64 f_k^{-0.8} - 6.5 e^{-0.6 (f_k - 3.3)^2} + 10^{-3} f_k^4,
              \quad f_k = f / 1000

    Frequencies below 20 Hz are evaluated at 20 Hz (the formula diverges at 0).

    Examples
    --------
    >>> round(float(ath_db_spl(1000.0)), 1)
    3.4
    """
    fk = np.maximum(np.asarray(f_hz, dtype=np.float64), 20.0) / 1000.0
    return 3.64 * fk ** -0.8 - 6.5 * np.exp(-0.6 * (fk - 3.3) ** 2) + 1e-3 * fk ** 4


def ath_power(f_hz, full_scale_db_spl=FULL_SCALE_DB_SPL):
    r"""Absolute threshold as a mean-square power (digital full-scale sine = 0.5).

    .. math:: T_q^{pow}(f) = 0.5 \cdot 10^{(T_q(f) - L_{fs}) / 10}

    with :math:`L_{fs}` = `full_scale_db_spl`, the playback level of a full-scale sine.
    """
    return 0.5 * 10.0 ** ((ath_db_spl(f_hz) - full_scale_db_spl) / 10.0)


def spreading_db(dz):
    r"""Schroeder's spreading function in dB, for maskee minus masker distance `dz` in Bark.

    .. math:: SF(\Delta z) = 15.81 + 7.5 (\Delta z + 0.474) - 17.5 \sqrt{1 + (\Delta z + 0.474)^2}

    Masking spreads further upwards (:math:`\Delta z > 0`) than downwards: about -4 dB at
    +1 Bark and -8 dB at -1 Bark.
    """
    x = np.asarray(dz, dtype=np.float64) + 0.474
    return 15.81 + 7.5 * x - 17.5 * np.sqrt(1.0 + x * x)


def spreading_gain():
    r""":math:`G = \int 10^{SF(\Delta z)/10}\, d\Delta z` in Bark (about 1.59, i.e. +2.0 dB)."""
    dz = np.linspace(-12.0, 12.0, 48001)
    return float(np.trapezoid(10.0 ** (spreading_db(dz) / 10.0), dz))


def power_spectrum(frames, window):
    r"""Per-bin power of windowed frames, in mean-square units.

    .. math:: P_k = \frac{c_k \, |X_k|^2}{n \sum_t w_t^2}, \quad X = \mathrm{rfft}(w \cdot x),
              \quad c_k = 2 \text{ except } c_0 = c_{n/2} = 1

    so that :math:`\sum_k P_k` equals the window-weighted mean square of the frame.

    Parameters
    ----------
    frames : numpy.ndarray, shape (blocks, n)
        Time frames (any float dtype).
    window : numpy.ndarray, shape (n,)
        Analysis window.

    Returns
    -------
    numpy.ndarray, shape (blocks, n // 2 + 1), float64
    """
    n = window.shape[0]
    spec = np.fft.rfft(frames * window, axis=-1)
    p = spec.real ** 2 + spec.imag ** 2
    p *= 2.0 / (n * float(np.sum(window * window)))
    p[..., 0] *= 0.5
    if n % 2 == 0:
        p[..., -1] *= 0.5
    return p


class MaskingModel:
    r"""Masking threshold for a fixed FFT size and sample rate (Johnston 1988 on partitions).

    The FFT bins are grouped into partitions of about :data:`PARTITION_BARK` Bark (at least
    one bin each), as in MPEG-1 psychoacoustic model 2; energies, tonality and spreading are
    computed per partition, and the threshold density (power per Bark) is interpolated
    (log-linearly in Bark) at the requested output bins and multiplied by their Bark width.
    All maths is in the module docstring.

    Parameters
    ----------
    nfft : int
        FFT size of the power spectra (``nfft // 2 + 1`` bins).
    samplerate : int
        Sample rate in Hz of the analysed signal.
    out_freqs_hz : array_like, optional
        Centre frequencies of the output bins (default: the FFT bins).
    out_width_hz : float, optional
        Width of every output bin in Hz (default: the FFT bin spacing).
    full_scale_db_spl : float
        Assumed playback level of a full-scale sine (sets the absolute threshold).

    Examples
    --------
    >>> m = MaskingModel(512, 16000)
    >>> t = np.arange(512) / 16000.0
    >>> x = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    >>> p = power_spectrum(x[None, :], np.hanning(512))
    >>> thr = m.threshold(p)[0]
    >>> bool(thr[32] < p[0, 32] / 100)        # a tone masks far less than its own power
    True
    """

    def __init__(self, nfft, samplerate, out_freqs_hz=None, out_width_hz=None,
                 full_scale_db_spl=FULL_SCALE_DB_SPL):
        self.nfft = int(nfft)
        self.samplerate = int(samplerate)
        nbins = self.nfft // 2 + 1
        df = self.samplerate / self.nfft
        self.freqs_hz = np.arange(nbins) * df
        z = bark(self.freqs_hz)
        zlo = bark(np.clip(self.freqs_hz - 0.5 * df, 0.0, None))
        zhi = bark(self.freqs_hz + 0.5 * df)
        # Partitions: consecutive bins spanning at least PARTITION_BARK.
        starts = [0]
        for k in range(1, nbins):
            if zhi[k - 1] - zlo[starts[-1]] >= PARTITION_BARK:
                starts.append(k)
        self.part_starts = np.array(starts, dtype=int)
        wsum = np.add.reduceat(zhi - zlo, self.part_starts)
        self.part_bark = np.add.reduceat(z * (zhi - zlo), self.part_starts) / wsum
        # SFM bands: consecutive partitions spanning at least 1 Bark and 4 bins.
        sfm = [0]
        for q in range(1, len(starts)):
            if zhi[starts[q] - 1] - zlo[starts[sfm[-1]]] >= 1.0 and \
                    starts[q] - starts[sfm[-1]] >= 4 and nbins - starts[q] >= 4:
                sfm.append(q)
        self.sfm_bin_starts = self.part_starts[sfm]
        self.sfm_counts = np.diff(np.append(self.sfm_bin_starts, nbins))
        self.sfm_parts = np.diff(np.append(sfm, len(starts)))
        # spread[p, q]: weight of masker partition p at maskee partition q (zero where the
        # spreading function is below SPREAD_FLOOR_DB).
        zp = self.part_bark
        sf_db = spreading_db(zp[None, :] - zp[:, None])
        self.spread_matrix = np.where(sf_db >= SPREAD_FLOOR_DB, 10.0 ** (sf_db / 10.0), 0.0) \
            / spreading_gain()
        self.tonal_offset_db = 14.5 + zp
        # Output bins: log density interpolated linearly in Bark, times their Bark width.
        fo = self.freqs_hz if out_freqs_hz is None else np.asarray(out_freqs_hz, np.float64)
        wo = df if out_width_hz is None else float(out_width_hz)
        self.out_freqs_hz = fo
        zo = bark(fo)
        self.out_bark_width = bark(fo + 0.5 * wo) - bark(np.clip(fo - 0.5 * wo, 0.0, None))
        j = np.clip(np.searchsorted(zp, zo), 1, zp.size - 1)
        w = np.clip((zo - zp[j - 1]) / (zp[j] - zp[j - 1]), 0.0, 1.0)
        self.interp_lo, self.interp_w = j - 1, w
        self.log_width_db = 10.0 * np.log10(self.out_bark_width)
        self.ath_db = 10.0 * np.log10(ath_power(fo, full_scale_db_spl)) + self.log_width_db

    def tonality(self, power):
        r"""Tonality :math:`\alpha \in [0, 1]` of every partition, from its band's SFM.

        Parameters
        ----------
        power : numpy.ndarray, shape (blocks, nfft // 2 + 1)

        Returns
        -------
        numpy.ndarray, shape (blocks, partitions)
        """
        tiny = 1e-20
        # float32 logs: 2.5x faster, and their 1e-7 error moves SFM by 1e-5 dB
        logs = np.log((power + tiny).astype(np.float32))
        logmean = np.add.reduceat(logs, self.sfm_bin_starts, axis=-1, dtype=np.float64) \
            / self.sfm_counts
        mean = np.add.reduceat(power, self.sfm_bin_starts, axis=-1) / self.sfm_counts
        sfm_db = (10.0 / np.log(10.0)) * (logmean - np.log(mean + tiny))
        alpha = np.clip(sfm_db / SFM_MIN_DB, 0.0, 1.0)
        return np.repeat(alpha, self.sfm_parts, axis=-1)

    def threshold_db(self, power):
        r"""Masking threshold per output bin in dB (mean-square power per bin).

        Parameters
        ----------
        power : numpy.ndarray, shape (blocks, nfft // 2 + 1)
            Per-bin power (:func:`power_spectrum`).

        Returns
        -------
        numpy.ndarray, shape (blocks, len(out_freqs_hz)), float64
        """
        power = np.asarray(power, dtype=np.float64)
        energy = np.add.reduceat(power, self.part_starts, axis=-1)
        excitation, tonal = self.spread(np.stack([energy, energy * self.tonality(power)]))
        a = tonal / np.maximum(excitation, 1e-30)
        offset_db = NOISE_OFFSET_DB + a * (self.tonal_offset_db - NOISE_OFFSET_DB)
        density_db = 10.0 * np.log10(np.maximum(excitation, 1e-30)) - offset_db
        lo, w = self.interp_lo, self.interp_w
        out_db = density_db[..., lo] * (1.0 - w) + density_db[..., lo + 1] * w
        return np.maximum(out_db + self.log_width_db, self.ath_db)

    def spread(self, energy):
        r"""Excitation :math:`\frac{1}{G}\sum_p 10^{SF(z_q - z_p)/10} e_p` of partition energies.

        Parameters
        ----------
        energy : numpy.ndarray, shape (..., partitions)

        Returns
        -------
        numpy.ndarray, same shape
        """
        e = np.asarray(energy, dtype=np.float64)
        rows = e.reshape(-1, e.shape[-1])
        out = np.empty((rows.shape[0], self.spread_matrix.shape[1]))
        # BLAS in slices of SPREAD_ROWS rows: 6x faster than einsum, and a product this small
        # stays on one thread (OpenBLAS starts its thread pool somewhere past 300 rows).
        for i in range(0, rows.shape[0], SPREAD_ROWS):
            np.matmul(rows[i:i + SPREAD_ROWS], self.spread_matrix, out=out[i:i + SPREAD_ROWS])
        return out.reshape(e.shape[:-1] + (out.shape[1],))

    def threshold(self, power):
        """:meth:`threshold_db` as power (mean-square units per output bin)."""
        return 10.0 ** (self.threshold_db(power) / 10.0)


def smooth_threshold(thr_db, history_db):
    r"""Smooth log thresholds over blocks: a causal 3-block mean, capped above the current block.

    .. math:: \tilde L_b = \min\left(\tfrac{1}{3}(L_b + L_{b-1} + L_{b-2}),\; L_b + C\right)

    with :math:`L_b` the threshold of block :math:`b` in dB and :math:`C` =
    :data:`SMOOTH_CAP_DB`. The mean removes block-to-block jitter of the estimate; at an onset it
    stays below the current threshold (no pre-echo); after a louder block it may exceed the current
    one by at most :math:`C` dB (forward masking).

    Parameters
    ----------
    thr_db : numpy.ndarray, shape (blocks, bins)
        Thresholds of consecutive blocks, dB.
    history_db : numpy.ndarray, shape (2, bins)
        The thresholds of the two blocks before the first one (at the start of a signal, use
        the first block's threshold repeated).

    Returns
    -------
    smoothed : numpy.ndarray, shape (blocks, bins)
    new_history : numpy.ndarray, shape (2, bins)
        The last two rows of the input, to pass with the next call.
    """
    full = np.concatenate([history_db, thr_db], axis=0)
    mean = (full[2:] + full[1:-1] + full[:-2]) / 3.0
    return np.minimum(mean, thr_db + SMOOTH_CAP_DB), full[-2:].copy()
