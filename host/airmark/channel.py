r"""A seeded, composable over-the-air channel: what the board's I2S microphone hears.

The chain, every stage optional::

    input (any rate, mono or stereo, float)
      -> codec          lossy round trip through ffmpeg (mp3 / aac / opus at a bitrate)
      -> spatial        smart-speaker chain: mid/side upmix to L/R/C, crosstalk-cancelling
                        virtualisation on L/R, midrange beamformer on C, 3 close drivers
         (or a mono downmix when the spatial chain is off)
      -> loudspeaker    small-speaker band-pass with resonances, soft clipping at high level
      -> 16 kHz         the microphone's decimator (band-limits to 8 kHz)
      -> room           pyroomacoustics ShoeBox image-source RIR per driver, RT60 calibrated
      -> clock drift    resample by 1 + ppm * 1e-6 (the mic clock against the player's)
      -> ambient noise  pink / babble / hvac / tv, at an SNR relative to the received content
      -> MEMS mic       100 Hz high-pass, self-noise, 24-bit, firmware gain, 16-bit, DC offset
    output: 16 kHz mono int16

Acoustic levels: when the room or the microphone is on, the playback is calibrated so that its
RMS is ``spl_1m_db`` (dB SPL) at 1 m in free field; pressure is carried in units where 1.0 is
94 dB SPL, and the microphone maps 94 dB SPL to ``mic_sensitivity_dbfs``. With both off
(the ``digital`` preset) the digital level is kept.

Seeds: each random stage draws from its own generator derived from ``seed`` and the stage name,
so switching one stage on or off does not change the randomness of another.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import signal

from .errors import AudioError, ToolMissing

MIC_SAMPLERATE_HZ = 16000
SPEED_OF_SOUND_M_S = 343.0
# Room model: image sources up to this order, then ray tracing (pyroomacoustics' hybrid).
HYBRID_ISM_ORDER = 3
# Share of each reflection scattered diffusely in the default rooms (furnished living room).
DEFAULT_SCATTERING = 0.2
NOISE_TYPES = ("pink", "babble", "hvac", "tv")
CODECS = {
    # name: (ffmpeg encoder, container suffix, encode rate or None for the input rate)
    "mp3": ("libmp3lame", ".mp3", None),
    "aac": ("aac", ".m4a", None),
    "opus": ("libopus", ".ogg", 48000),
}
_STAGE_IDS = {"noise": 1, "mic": 2, "babble": 3, "tv": 4, "hvac": 5, "pink": 6}


@dataclass
class ChannelConfig:
    """Every knob of the channel. Build one with :meth:`from_preset` or directly.

    Distances in metres, times in seconds, levels in dB as named.
    """

    # codec before playback; None or "mp3:128k", "aac:96k", "opus:64k"
    codec: object = None
    # smart-speaker spatial chain (upmix, CTC virtualisation, centre beamformer, 3 drivers)
    spatial: bool = False
    driver_spacing_m: float = 0.08
    ctc_design_distance_m: float = 2.5
    # small loudspeaker
    loudspeaker: bool = True
    speaker_low_hz: float = 150.0
    speaker_high_hz: float = 12000.0
    speaker_drive_db: float = 0.0
    speaker_clip_knee: float = 0.7
    # room
    room: bool = True
    distance_m: float = 6.1
    rt60_s: float = 0.5
    room_dim_m: object = None  # (length, width, height); None: sized to fit distance_m
    source_pos_m: object = None  # (x, y, z); None: placed from distance_m
    mic_pos_m: object = None
    # where the mic sits at distance_m when mic_pos_m is None: horizontal angle from the
    # room's long axis (None: atan(0.15), the historical placement) and height (None: 0.2 m
    # above the source)
    mic_azimuth_deg: object = None
    mic_height_m: object = None
    # share of each wall reflection scattered diffusely (furniture, shelves); > 0 adds
    # pyroomacoustics' ray tracer to the image sources, 0 is the image-source model alone
    scattering: float = DEFAULT_SCATTERING
    spl_1m_db: float = 80.0
    # clock drift of the microphone against the player, parts per million (+ = mic fast)
    drift_ppm: float = 0.0
    # ambient noise
    noise: object = None  # None or one of NOISE_TYPES
    snr_db: float = 10.0
    noise_source: object = None  # audio file for "tv" (other music) or "babble"
    # MEMS microphone and the firmware's 16-bit conversion
    mic: bool = True
    mic_hpf_hz: float = 100.0
    mic_sensitivity_dbfs: float = -26.0
    mic_snr_db: float = 65.0
    mic_gain_db: float = 24.0
    mic_dc_offset: float = 0.001  # fraction of 24-bit full scale, before the gain

    @classmethod
    def from_preset(cls, name, **overrides):
        """A named preset (see PRESETS) with some knobs overridden; unknown knobs raise."""
        if name not in PRESETS:
            raise ValueError("unknown channel preset %r (known: %s)" % (name, ", ".join(PRESETS)))
        values = dict(PRESETS[name])
        values.update(overrides)
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError("unknown channel setting(s) %s" % ", ".join(map(repr, unknown)))
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def replace(self, **changes):
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def to_dict(self):
        d = dataclasses.asdict(self)
        for k in ("room_dim_m", "source_pos_m", "mic_pos_m"):
            if d[k] is not None:
                d[k] = [float(v) for v in d[k]]
        return d

    def validate(self):
        if self.codec is not None:
            parse_codec(self.codec)
        if self.noise is not None and self.noise not in NOISE_TYPES:
            raise ValueError("noise must be one of %s or None, not %r" % (NOISE_TYPES, self.noise))
        if abs(self.drift_ppm) > 500:
            raise ValueError("drift_ppm must be within +-500, not %r" % (self.drift_ppm,))
        if self.room:
            if not 0.05 <= self.rt60_s <= 3.0:
                raise ValueError("rt60_s must be within 0.05..3 s, not %r" % (self.rt60_s,))
            if self.distance_m <= 0 and self.mic_pos_m is None:
                raise ValueError("distance_m must be > 0, not %r" % (self.distance_m,))
            for k in ("room_dim_m", "source_pos_m", "mic_pos_m"):
                v = getattr(self, k)
                if v is not None and len(v) != 3:
                    raise ValueError("%s must have 3 values, not %r" % (k, v))
            if self.mic_azimuth_deg is not None and not -90 <= self.mic_azimuth_deg <= 90:
                raise ValueError("mic_azimuth_deg must be within -90..90, not %r"
                                 % (self.mic_azimuth_deg,))
            if not 0.0 <= self.scattering <= 1.0:
                raise ValueError("scattering must be within 0..1, not %r" % (self.scattering,))
            if self.mic_height_m is not None and not 0 < self.mic_height_m:
                raise ValueError("mic_height_m must be > 0, not %r" % (self.mic_height_m,))
        if not 0.05 <= self.speaker_clip_knee <= 1.0:
            raise ValueError("speaker_clip_knee must be within 0.05..1, not %r"
                             % (self.speaker_clip_knee,))


PRESETS = {
    # the file itself, only resampled to 16 kHz and rounded to int16
    "digital": dict(loudspeaker=False, room=False, mic=False),
    "near-1m": dict(distance_m=1.0, rt60_s=0.4, noise="pink", snr_db=20.0, mic_gain_db=12.0),
    "living-room-6m": dict(distance_m=6.1, rt60_s=0.5, noise="pink", snr_db=10.0,
                           drift_ppm=100.0),
    # a smart speaker near the listener in a quiet room: where plain keys' false-alarm
    # tail is heaviest (docs/ALGORITHM.md §5)
    "spatial-speaker-1m": dict(spatial=True, distance_m=1.0, rt60_s=0.5, noise="pink",
                               snr_db=20.0, mic_gain_db=12.0, drift_ppm=100.0),
    "spatial-speaker-6m": dict(spatial=True, distance_m=6.1, rt60_s=0.5, noise="pink",
                               snr_db=10.0, drift_ppm=100.0),
    "far-9m": dict(distance_m=9.0, rt60_s=0.5, noise="pink", snr_db=5.0, drift_ppm=100.0,
                   mic_gain_db=30.0),
}


def parse_codec(spec):
    """'mp3:128k' -> ('mp3', '128k'); the bitrate defaults to 128k."""
    name, _, rate = str(spec).partition(":")
    name = name.strip().lower()
    rate = rate.strip().lower() or "128k"
    if name not in CODECS:
        raise ValueError("codec must be one of %s, not %r" % (", ".join(CODECS), spec))
    digits = rate[:-1] if rate.endswith("k") else rate
    if not digits.isdigit() or not 6 <= int(digits) * (1 if rate.endswith("k") else 0.001) <= 512:
        raise ValueError("codec bitrate must look like 64k..320k, not %r" % (rate,))
    return name, rate


def default_cache_dir():
    return Path(os.environ.get("AIRMARK_CACHE_DIR", "cache"))


# ----------------------------------------------------------------------------- reading audio

def read_audio(path):
    """Read an audio file as float64 (frames,) or (frames, channels) and its samplerate.

    Uses the package's shared reader (:func:`airmark.audio.read_audio`: soundfile, or ffmpeg
    for mp3/aac/m4a).
    """
    from . import audio

    data, samplerate, _info = audio.read_audio(str(path))
    x = np.asarray(data, dtype=np.float64)
    return (x[:, 0] if x.ndim == 2 and x.shape[1] == 1 else x), int(samplerate)


def write_wav_int16(path, x, samplerate=MIC_SAMPLERATE_HZ):
    """16-bit WAV, written whole or not at all (fsutil.atomic_path); AudioError if not."""
    import soundfile as sf

    from . import fsutil
    try:
        with fsutil.atomic_path(path) as tmp:
            sf.write(tmp, np.asarray(x, dtype=np.int16), samplerate, subtype="PCM_16",
                     format="WAV")
    except (OSError, RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError("%s: cannot write (%s)" % (path, getattr(exc, "strerror", None) or exc)) from None


def _need_tool(name):
    exe = shutil.which(name)
    if exe is None:
        raise ToolMissing("%s is not installed (apt-get install %s)" % (name, name))
    return exe


def _run(cmd, what):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AudioError("%s failed: %s" % (what, msg[-1] if msg else "exit %d" % proc.returncode))
    return proc


# ----------------------------------------------------------------------------- small helpers

def _rng(seed, stage):
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _STAGE_IDS[stage]])


def _as_2d(x):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        return x[:, None]
    if x.ndim != 2:
        raise ValueError("audio must be (frames,) or (frames, channels), not shape %r" % (x.shape,))
    return x


def _rms(x):
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def _db(v):
    return float(20 * np.log10(max(v, 1e-30)))


def resample(x, fs_in, fs_out):
    """Band-limited resampling along axis 0 with a polyphase filter (scipy resample_poly)."""
    if int(fs_in) == int(fs_out):
        return np.asarray(x, dtype=np.float64)
    frac = Fraction(int(fs_out), int(fs_in))
    return signal.resample_poly(np.asarray(x, dtype=np.float64), frac.numerator,
                                frac.denominator, axis=0)


def _fir_from_response(h_freq, n_fir):
    """Linear-phase-delayed FIR (delay n_fir//2) from a complex response on rfft(n_fir) bins."""
    h = np.fft.irfft(h_freq, n_fir, axis=0)
    h = np.roll(h, n_fir // 2, axis=0)
    win = np.hanning(n_fir + 1)[:n_fir]
    return h * win.reshape((n_fir,) + (1,) * (h.ndim - 1))


def _apply_fir(x, h):
    """Filter (frames,) x with FIR h of delay len(h)//2; same length, delay removed."""
    d = len(h) // 2
    y = signal.oaconvolve(x, h)
    return y[d:d + len(x)]


# ----------------------------------------------------------------------------- codec

def codec_roundtrip(x, samplerate, spec):
    r"""Encode and decode ``x`` with ffmpeg; returns audio of the same shape and rate.

    The decoder's priming delay is removed by the containers (LAME tag, MP4 edit list, Opus
    pre-skip); any residual constant delay up to 50 ms is measured by cross-correlation and
    removed so marks keep their place in time.
    """
    import soundfile as sf

    name, rate = parse_codec(spec)
    encoder, suffix, enc_fs = CODECS[name]
    ffmpeg = _need_tool("ffmpeg")
    x2 = _as_2d(x)
    peak = float(np.max(np.abs(x2))) if x2.size else 0.0
    scale = 1.0 / peak if peak > 1.0 else 1.0  # keep the encoder's input inside full scale
    with tempfile.TemporaryDirectory(prefix="airmark-codec-") as tmp:
        src = os.path.join(tmp, "in.wav")
        enc = os.path.join(tmp, "enc" + suffix)
        dec = os.path.join(tmp, "dec.wav")
        sf.write(src, x2 * scale, int(samplerate), subtype="FLOAT")
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", src, "-c:a", encoder, "-b:a", rate]
        if enc_fs:
            cmd += ["-ar", str(enc_fs)]
        _run(cmd + [enc], "ffmpeg %s encode" % name)
        _run([ffmpeg, "-nostdin", "-v", "error", "-y", "-i", enc, "-ar", str(int(samplerate)),
              "-ac", str(x2.shape[1]), "-c:a", "pcm_f32le", dec], "ffmpeg %s decode" % name)
        y, _ = sf.read(dec, dtype="float64", always_2d=True)
    y = y / scale
    lag = _best_lag(x2.mean(axis=1), y.mean(axis=1), int(0.05 * samplerate))
    if lag > 0:
        y = y[lag:]
    elif lag < 0:
        y = np.concatenate([np.zeros((-lag, y.shape[1])), y])
    n = len(x2)
    if len(y) < n:
        y = np.concatenate([y, np.zeros((n - len(y), y.shape[1]))])
    y = y[:n]
    info = {"stage": "codec", "codec": name, "bitrate": rate, "aligned_by_samples": int(lag)}
    return (y if np.ndim(x) == 2 else y[:, 0]), info


def _best_lag(ref, y, max_lag):
    """Lag (samples) by which y is late against ref, searched within +-max_lag."""
    n = min(len(ref), len(y))
    if n < 64 or _rms(ref) == 0:
        return 0
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    c = np.fft.irfft(np.fft.rfft(y[:n], nfft) * np.conj(np.fft.rfft(ref[:n], nfft)), nfft)
    c = np.concatenate([c[-max_lag:], c[:max_lag + 1]])
    return int(np.argmax(c)) - max_lag


# ----------------------------------------------------------------------------- loudspeaker

def _peaking_sos(f0, gain_db, q, fs):
    """RBJ peaking equaliser as one second-order section."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / fs
    alpha = np.sin(w0) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a]
    return np.concatenate([np.array(b) / den[0], np.array(den) / den[0]])[None, :]


def _resonant_highpass_sos(f0, q, fs):
    """RBJ second-order high-pass with quality q (q > 0.707 gives the box resonance bump)."""
    w0 = 2 * np.pi * f0 / fs
    alpha = np.sin(w0) / (2 * q)
    c = np.cos(w0)
    b = [(1 + c) / 2, -(1 + c), (1 + c) / 2]
    den = [1 + alpha, -2 * c, 1 - alpha]
    return np.concatenate([np.array(b) / den[0], np.array(den) / den[0]])[None, :]


def loudspeaker_sos(samplerate, low_hz=150.0, high_hz=12000.0):
    """Second-order sections of the small-speaker response.

    A resonant 2nd-order high-pass at ``low_hz`` (Q 1.2: the closed-box resonance), a
    4th-order Butterworth high-pass an octave below it (the steep roll-off under resonance),
    cone break-up peaks at 1.1 kHz (+3 dB) and 3.4 kHz (+4 dB), a dip at 6 kHz (-4 dB), and a
    4th-order Butterworth low-pass at ``high_hz`` (capped at 0.45 of the samplerate).
    """
    fs = float(samplerate)
    parts = [_resonant_highpass_sos(low_hz, 1.2, fs),
             signal.butter(4, low_hz / 2, "highpass", fs=fs, output="sos")]
    for f0, g, q in ((1100.0, 3.0, 1.5), (3400.0, 4.0, 2.5), (6000.0, -4.0, 1.5)):
        if f0 < 0.45 * fs:
            parts.append(_peaking_sos(f0, g, q, fs))
    parts.append(signal.butter(4, min(high_hz, 0.45 * fs), "lowpass", fs=fs, output="sos"))
    return np.concatenate(parts, axis=0)


def soft_clip(x, knee=0.7):
    r"""Identity below ``knee`` (fraction of full scale), tanh compression above it.

    .. math:: y = \operatorname{sign}(x)\,\bigl(k + (1-k)\tanh\frac{|x|-k}{1-k}\bigr),\ |x|>k

    so the output never exceeds full scale (1.0) and the curve is smooth at the knee.
    """
    x = np.asarray(x, dtype=np.float64)
    if knee >= 1.0:
        return np.clip(x, -1.0, 1.0)
    a = np.abs(x)
    over = a > knee
    y = x.copy()
    y[over] = np.sign(x[over]) * (knee + (1 - knee) * np.tanh((a[over] - knee) / (1 - knee)))
    return y


def loudspeaker(x, samplerate, *, low_hz=150.0, high_hz=12000.0, drive_db=0.0, knee=0.7):
    """Small loudspeaker on (frames,) or (frames, channels): drive gain, soft clip, response."""
    x = np.asarray(x, dtype=np.float64) * 10 ** (drive_db / 20)
    clipped = int(np.count_nonzero(np.abs(x) > knee))
    y = signal.sosfilt(loudspeaker_sos(samplerate, low_hz, high_hz), soft_clip(x, knee), axis=0)
    info = {"stage": "loudspeaker", "low_hz": low_hz, "high_hz": min(high_hz, 0.45 * samplerate),
            "drive_db": drive_db, "clip_knee": knee, "samples_over_knee": clipped}
    return y, info


# ----------------------------------------------------------------------------- spatial chain

def upmix_lrc(stereo, samplerate, *, nperseg=1024, smooth_frames=8):
    r"""Mid/side upmix of stereo (frames, 2) to left, right, centre (frames, 3).

    In each STFT bin the inter-channel coherence

    .. math:: \phi = |\langle L R^*\rangle| / \sqrt{\langle |L|^2\rangle \langle |R|^2\rangle}

    (averages over ``smooth_frames`` frames) gives the centre :math:`C = \phi (L+R)/2`; the
    sides are :math:`L - C` and :math:`R - C`, so :math:`L_s - R_s = L - R` (the side signal
    is untouched) and a mono input goes entirely to the centre.
    """
    x = _as_2d(stereo)
    if x.shape[1] != 2:
        raise ValueError("upmix needs 2 channels, not %d" % x.shape[1])
    n = len(x)
    hop = nperseg // 4
    _, _, z = signal.stft(x.T, fs=samplerate, nperseg=nperseg, noverlap=nperseg - hop,
                          boundary="even", padded=True)
    zl, zr = z[0], z[1]
    k = np.ones(smooth_frames) / smooth_frames
    sm = lambda a: signal.lfilter(k, [1.0], a, axis=-1)  # noqa: E731
    pll = sm(np.abs(zl) ** 2)
    prr = sm(np.abs(zr) ** 2)
    plr = sm(zl * np.conj(zr))
    phi = np.abs(plr) / np.sqrt(pll * prr + 1e-20)
    zc = np.clip(phi, 0, 1) * 0.5 * (zl + zr)
    out = []
    for zz in (zl - zc, zr - zc, zc):
        _, y = signal.istft(zz, fs=samplerate, nperseg=nperseg, noverlap=nperseg - hop,
                            boundary=True)
        y = y[:n]
        if len(y) < n:
            y = np.concatenate([y, np.zeros(n - len(y))])
        out.append(y)
    return np.stack(out, axis=1)


def driver_offsets_m(spacing_m):
    """Driver positions along the speaker's width (y), for the left, centre, right drivers."""
    return np.array([+spacing_m, 0.0, -spacing_m])


def spatial_filters(samplerate, *, spacing_m=0.08, design_distance_m=2.5, n_fir=None,
                    ctc_reg=0.05, beam_null_db=-12.0, beam_max_gain=4.0,
                    beam_band_hz=(250.0, 2000.0)):
    r"""FIR filters of the smart-speaker chain, all with the same delay ``n_fir // 2``.

    Returns ``(virt, ctc, beam)``:

    - ``virt`` (n_fir, 2, 2): ear signals of a virtual stereo pair at +-30 degrees; ``virt[:,
      e, c]`` maps channel c (0 left, 1 right) to ear e. Ipsilateral: first-order all-pass;
      contralateral: low-pass (1.5 kHz, -3 dB) delayed by the interaural time difference
      :math:`(a/c)(\theta + \sin\theta)`, head radius a = 8.75 cm.
    - ``ctc`` (n_fir, 2, 2): crosstalk cancellation for the left/right drivers (spacing
      ``2 * spacing_m``) to a listener's ears on axis at ``design_distance_m``;
      :math:`C = (H^H H + \beta I)^{-1} H^H` with free-field :math:`H_{ed} = e^{-j\omega
      r_{ed}/c}/r_{ed}` and :math:`\beta` = ``ctc_reg`` times the mean diagonal of
      :math:`H^H H` (regularisation sets the cancellation gain, not a perfect inverse).
    - ``beam`` (n_fir, 3): midrange beamformer over the three drivers (spacing s =
      ``spacing_m``), symmetric weights (w, b, w) so that the far-field response
      :math:`D(\theta) = b + 2w\cos(ks\sin\theta)` is 1 on axis and ``beam_null_db`` at
      +-90 degrees (controlled null depth keeps the main lobe wide: about -5 dB at 45
      degrees), w capped at ``beam_max_gain``; inside ``beam_band_hz`` (above it the
      drivers alias), outside it the centre driver plays alone (half-octave fades).
    """
    fs = float(samplerate)
    if n_fir is None:
        n_fir = 1 << int(np.ceil(np.log2(fs / 48.0)))  # ~21 ms, 1024 taps at 44.1/48 kHz
    f = np.fft.rfftfreq(n_fir, 1 / fs)
    w = 2 * np.pi * f
    c = SPEED_OF_SOUND_M_S

    # virtualiser: ipsi all-pass, contra delayed low-pass
    a_head, theta = 0.0875, np.pi / 6
    itd = a_head / c * (theta + np.sin(theta))
    fc_ap = 4000.0
    t = np.tan(np.pi * fc_ap / fs)
    ap_coef = (t - 1) / (t + 1)
    z1 = np.exp(-1j * w / fs)
    ipsi = (ap_coef + z1) / (1 + ap_coef * z1)
    contra = 10 ** (-3 / 20) / (1 + 1j * f / 1500.0) * np.exp(-1j * w * itd)
    virt_f = np.zeros((len(f), 2, 2), dtype=complex)
    virt_f[:, 0, 0] = virt_f[:, 1, 1] = ipsi
    virt_f[:, 0, 1] = virt_f[:, 1, 0] = contra

    # CTC for the outer driver pair
    drv = driver_offsets_m(spacing_m)[[0, 2]]
    ears = np.array([+a_head, -a_head])
    r = np.sqrt(design_distance_m ** 2 + (ears[:, None] - drv[None, :]) ** 2)  # (ear, driver)
    h = np.exp(-1j * w[:, None, None] * (r[None] - design_distance_m) / c) / (r[None] /
                                                                               design_distance_m)
    hh = np.conj(np.transpose(h, (0, 2, 1)))
    gram = hh @ h
    beta = ctc_reg * np.real(np.trace(gram, axis1=1, axis2=2)) / 2
    # H is relative to the on-axis free field, so H C ~ I delivers each ear target at unity
    ctc_f = np.linalg.solve(gram + beta[:, None, None] * np.eye(2)[None], hh)

    # centre beamformer: symmetric weights (w, b, w) on the three drivers, so that
    # D(theta) = b + 2 w cos(k s sin(theta)) is 1 on axis and g = beam_null_db at +-90 deg
    g_null = 10 ** (beam_null_db / 20)
    ks = 2 * np.pi * f / c * spacing_m
    w_side = np.minimum((1 - g_null) / (2 * np.maximum(1 - np.cos(ks), 1e-12)), beam_max_gain)
    lo, hi = beam_band_hz
    fade = np.array([0.0 if fi <= 0 else min(_fade(np.log2(fi / lo) * 2),
                                              _fade(np.log2(hi / fi) * 2)) for fi in f])
    beam_f = np.zeros((len(f), 3), dtype=complex)
    beam_f[:, 0] = beam_f[:, 2] = fade * w_side
    beam_f[:, 1] = 1 - 2 * fade * w_side
    return (_fir_from_response(virt_f, n_fir), _fir_from_response(ctc_f, n_fir),
            _fir_from_response(beam_f, n_fir))


def _fade(u):
    """0 for u <= 0, 1 for u >= 1, raised cosine between."""
    u = min(max(u, 0.0), 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def spatial_chain(x, samplerate, *, spacing_m=0.08, design_distance_m=2.5):
    """Stereo (or mono, duplicated) -> driver signals (frames, 3): left, centre, right drivers."""
    x2 = _as_2d(x)
    if x2.shape[1] == 1:
        x2 = np.repeat(x2, 2, axis=1)
    elif x2.shape[1] > 2:
        x2 = x2[:, :2]
    lrc = upmix_lrc(x2, samplerate)
    virt, ctc, beam = spatial_filters(samplerate, spacing_m=spacing_m,
                                      design_distance_m=design_distance_m)
    n = len(x2)
    ear = np.zeros((n, 2))
    for e in range(2):
        for ch in range(2):
            ear[:, e] += _apply_fir(lrc[:, ch], virt[:, e, ch])
    drivers = np.zeros((n, 3))
    for d_i, d_col in ((0, 0), (1, 2)):  # ctc driver index -> driver column (left, right)
        for e in range(2):
            drivers[:, d_col] += _apply_fir(ear[:, e], ctc[:, d_i, e])
    for d in range(3):
        drivers[:, d] += _apply_fir(lrc[:, 2], beam[:, d])
    info = {"stage": "spatial", "drivers": 3, "driver_spacing_m": spacing_m,
            "ctc_design_distance_m": design_distance_m,
            "centre_share_db": _db(_rms(lrc[:, 2]) / max(_rms(x2.mean(axis=1)), 1e-30))}
    return drivers, info


# ----------------------------------------------------------------------------- room

def room_geometry(cfg, n_sources=1):
    """(room_dim, source positions (n, 3), mic position) for a config, all in metres."""
    d = float(cfg.distance_m)
    if cfg.room_dim_m is not None:
        dim = np.array(cfg.room_dim_m, dtype=float)
    else:
        length = max(5.0, d + 2.0)
        dim = np.round([length, max(4.0, 0.7 * length), 2.7], 2)
    src = (np.array(cfg.source_pos_m, dtype=float) if cfg.source_pos_m is not None
           else np.array([1.0, 0.4 * dim[1], 1.0]))
    if cfg.mic_pos_m is not None:
        mic = np.array(cfg.mic_pos_m, dtype=float)
    else:
        dz = 0.2 if cfg.mic_height_m is None else float(cfg.mic_height_m) - src[2]
        if cfg.mic_azimuth_deg is None:
            dy = 0.15 * d
            dx = np.sqrt(max(d * d - dy * dy - dz * dz, 0.0))
        else:
            horizontal = np.sqrt(max(d * d - dz * dz, 0.0))
            a = np.radians(float(cfg.mic_azimuth_deg))
            dx, dy = horizontal * np.cos(a), horizontal * np.sin(a)
        mic = src + np.array([dx, dy, dz])
    if n_sources == 1:
        sources = src[None, :]
    else:
        offs = driver_offsets_m(cfg.driver_spacing_m)
        sources = np.array([src + np.array([0.0, o, 0.0]) for o in offs])
    for name, p in [("mic", mic)] + [("source", s) for s in sources]:
        if np.any(p < 0.1) or np.any(p > dim - 0.1):
            raise ValueError("%s position %s is outside room %s (or within 10 cm of a wall); "
                             "give a larger room_dim_m or a smaller distance"
                             % (name, np.round(p, 2).tolist(), np.round(dim, 2).tolist()))
    return dim, sources, mic


def measure_rt60(rir, samplerate, decay_db=30):
    """RT60 (s) of an impulse response by Schroeder integration (pyroomacoustics)."""
    from pyroomacoustics.experimental import measure_rt60 as _m

    return float(_m(np.asarray(rir, dtype=float), fs=samplerate, decay_db=decay_db))


def room_rirs(dim, sources, mic, rt60_s, samplerate=MIC_SAMPLERATE_HZ, *, cache_dir=None,
              calibrate=True, scattering=DEFAULT_SCATTERING):
    """Room impulse responses (one per source) in a ShoeBox, cached on disk.

    With ``scattering`` > 0 (the default) this is pyroomacoustics' hybrid simulator: image
    sources up to order :data:`HYBRID_ISM_ORDER` for the early reflections, then ray tracing
    with that share of every reflection scattered, which fills the late tail the way a
    furnished room does. Its random draws are seeded from the geometry, so the same room
    gives the same response in any process. ``scattering=0`` is the image-source model
    alone (the order from ``pyroomacoustics.inverse_sabine``). In a long, low shoebox that
    model's late decay is carried by a few grazing paths: meeting the RT60 then takes so
    much absorption that the reverberant level falls 3.5-5 dB under Barron's revised theory
    at 6-9 m, and far points look drier than near ones (docs/ALGORITHM.md §6,
    ``tools/room_check.py``).

    The wall absorption starts at ``pyroomacoustics.inverse_sabine(rt60_s, dim)``; with
    ``calibrate`` it is rescaled (Sabine: RT60 ~ 1/absorption) until the measured T30 of the
    first RIR is within 3 % of ``rt60_s`` (at most 5 rounds).
    Amplitudes follow pyroomacoustics: 1/r, so 1.0 is the free-field level at 1 m.

    Returns ``(rirs list of float arrays, info dict)``.
    """
    import pyroomacoustics as pra

    dim = [float(v) for v in dim]
    sources = [[float(v) for v in s] for s in np.atleast_2d(sources)]
    mic = [float(v) for v in mic]
    scattering = float(scattering)
    key = {"v": 4, "pra": pra.__version__, "fs": int(samplerate), "dim": dim, "src": sources,
           "mic": mic, "rt60": float(rt60_s), "calibrate": bool(calibrate),
           "scattering": scattering}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / "rir" / (digest + ".npz")
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    rirs = [z["rir%d" % i] for i in range(len(sources))]
                    info = json.loads(str(z["info"]))
                info["cached"] = True
                return rirs, info
            except (OSError, KeyError, ValueError):
                pass  # a damaged cache file is recomputed
    absorption, max_order = pra.inverse_sabine(rt60_s, dim)
    hybrid = scattering > 0
    if hybrid:
        max_order = HYBRID_ISM_ORDER
    measured = None
    for _round in range(5 if calibrate else 1):
        if hybrid:
            seed = int(digest[:8], 16)
            pra.random.seed(seed)  # the tail's noise (Python side)
            seed_rays = getattr(pra.libroom, "set_rng_seed", None)  # the rays (C++ side)
            if seed_rays is not None:
                seed_rays(seed)
            room = pra.ShoeBox(dim, fs=int(samplerate),
                               materials=pra.Material(float(absorption), scattering),
                               max_order=int(max_order), ray_tracing=True, air_absorption=False)
            room.set_ray_tracing(receiver_radius=0.5, n_rays=10000, energy_thres=1e-7)
        else:
            room = pra.ShoeBox(dim, fs=int(samplerate), materials=pra.Material(float(absorption)),
                               max_order=int(max_order))
        for s in sources:
            room.add_source(s)
        room.add_microphone(mic)
        room.compute_rir()
        rirs = [np.asarray(room.rir[0][i], dtype=np.float64) for i in range(len(sources))]
        measured = measure_rt60(rirs[0], samplerate)
        if not calibrate or abs(measured / rt60_s - 1) < 0.03:
            break
        absorption = float(np.clip(absorption * measured / rt60_s, 0.005, 0.99))
    dist = float(np.linalg.norm(np.array(sources[0]) - np.array(mic)))
    delay = int(np.argmax(np.abs(rirs[0])))
    direct = float(np.sum(rirs[0][max(0, delay - 40):delay + 41] ** 2))
    info = {"room_dim_m": dim, "rt60_s": float(rt60_s), "rt60_measured_s": round(measured, 4),
            "absorption": round(float(absorption), 4), "max_order": int(max_order),
            "scattering": scattering,
            "distance_m": round(dist, 3), "delay_s": round(delay / samplerate, 5),
            "drr_db_2p5ms": round(10 * np.log10(direct / max(np.sum(rirs[0] ** 2) - direct, 1e-30)), 2),
            "cached": False}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".%d.tmp.npz" % os.getpid())
        np.savez(tmp, info=json.dumps(info), **{"rir%d" % i: r for i, r in enumerate(rirs)})
        os.replace(tmp, path)
    return rirs, info


# ----------------------------------------------------------------------------- clock drift

def drift_resample(x, ppm, *, half_taps=32, beta=8.0):
    r"""Resample (frames,) x by :math:`1 + \mathrm{ppm}\cdot10^{-6}` with a windowed sinc.

    Output sample n is x at input time :math:`n / (1 + \mathrm{ppm}\,10^{-6})` (input samples),
    interpolated with a Kaiser-windowed sinc of ``2 * half_taps`` taps; a positive ``ppm``
    (microphone clock fast) lengthens the signal. Output length
    ``round(len(x) * (1 + ppm * 1e-6))``.
    """
    x = np.asarray(x, dtype=np.float64)
    ratio = 1.0 + float(ppm) * 1e-6
    if ppm == 0:
        return x.copy()
    n_out = int(round(len(x) * ratio))
    xp = np.concatenate([np.zeros(half_taps), x, np.zeros(half_taps + 1)])
    k = np.arange(-half_taps + 1, half_taps + 1)
    y = np.empty(n_out)
    # kernel table over 1024 fractional phases, linearly interpolated between phases
    phases = 1024
    frac_grid = np.arange(phases + 1) / phases
    arg = k[None, :] - frac_grid[:, None]  # tap offset from the exact time, in samples
    u = np.clip(arg / (half_taps + 0.5), -1, 1)
    table = np.sinc(arg) * np.i0(beta * np.sqrt(1 - u * u)) / np.i0(beta)
    block = 16384
    for s in range(0, n_out, block):
        t = np.arange(s, min(s + block, n_out)) / ratio
        i0 = np.floor(t).astype(np.int64)
        ph = (t - i0) * phases
        p0 = np.minimum(ph.astype(np.int64), phases - 1)
        a = (ph - p0)[:, None]
        taps = (1 - a) * table[p0] + a * table[p0 + 1]
        y[s:s + len(t)] = np.sum(xp[i0[:, None] + k[None, :] + half_taps] * taps, axis=1)
    return y


# ----------------------------------------------------------------------------- ambient noise

def pink_noise(n, rng):
    """Pink (1/f power) noise of n samples, unit RMS; flat below 1/1000 of the band."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=float)
    f[0] = 1.0
    spec /= np.sqrt(np.maximum(f, len(spec) / 1000.0))
    y = np.fft.irfft(spec, n)
    return y / max(_rms(y), 1e-30)


def hvac_noise(n, samplerate, rng):
    """HVAC rumble: low-passed brown noise, fan/mains hum with harmonics, some airflow hiss."""
    t = np.arange(n) / samplerate
    brown = np.cumsum(rng.standard_normal(n))
    brown = signal.sosfilt(signal.butter(2, [20, 250], "bandpass", fs=samplerate, output="sos"),
                           brown)
    brown /= max(_rms(brown), 1e-30)
    f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.98, 1.02)
    hum = np.zeros(n)
    for h, a in ((1, 1.0), (2, 0.6), (3, 0.35), (4, 0.2), (6, 0.1)):
        am = 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6.3))
        hum += a * am * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3))
    hum /= max(_rms(hum), 1e-30)
    hiss = signal.sosfilt(signal.butter(2, 2000, "lowpass", fs=samplerate, output="sos"),
                          pink_noise(n, rng))
    hiss /= max(_rms(hiss), 1e-30)
    y = brown + 0.5 * hum + 0.3 * hiss
    return y / _rms(y)


BABBLE_TEXTS = (
    "The weather this weekend looks mild, with some rain on Sunday afternoon.",
    "Could you pass me the salt and the small bowl next to the bread, please?",
    "I think the train leaves at seven, but we should check the timetable again.",
    "She said the meeting was moved to Thursday because half the team is away.",
    "Turn left after the bakery and the museum will be on your right.",
    "We planted tomatoes and beans last spring, and the garden is full now.",
    "The children built a tall tower out of wooden blocks before dinner.",
    "Honestly, the second half of the film was much better than the first.",
    "Remember to water the plants and feed the cat while we are travelling.",
    "The recipe needs two eggs, a cup of flour, and a little bit of butter.",
    "My phone battery keeps running out, so I ordered a new charger yesterday.",
    "There is a concert in the park tonight if it does not start raining.",
)
BABBLE_VOICES = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "de", "fr", "es", "it", "nl")


def espeak_speech(text, voice, *, pitch=50, speed=160, cache_dir=None):
    """Speech from espeak-ng as (float64 samples, samplerate); cached as WAV when possible."""
    import soundfile as sf

    key = hashlib.sha1(json.dumps([text, voice, pitch, speed]).encode()).hexdigest()[:20]
    path = Path(cache_dir) / "speech" / (key + ".wav") if cache_dir is not None else None
    if path is not None and path.exists():
        x, fs = sf.read(str(path), dtype="float64")
        return x, fs
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ToolMissing("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="airmark-espeak-") as tmp:
        out = os.path.join(tmp, "s.wav")
        _run([exe, "-v", voice, "-p", str(int(pitch)), "-s", str(int(speed)), "-w", out, text],
             "espeak-ng")
        x, fs = sf.read(out, dtype="float64")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmpf = path.with_name(path.stem + ".%d.tmp.wav" % os.getpid())
        sf.write(str(tmpf), x, fs, subtype="PCM_16")
        os.replace(tmpf, path)
    return x, fs


def babble_noise(n, samplerate, rng, *, talkers=5, cache_dir=None):
    """Several espeak-ng talkers at once (voices, pitches, speeds drawn from rng), unit RMS."""
    y = np.zeros(n)
    for _ in range(talkers):
        track = []
        total = 0
        voice = str(rng.choice(BABBLE_VOICES))
        pitch = int(rng.integers(25, 75))
        speed = int(rng.integers(140, 190))
        while total < n + samplerate:
            text = str(rng.choice(BABBLE_TEXTS))
            s, fs = espeak_speech(text, voice, pitch=pitch, speed=speed, cache_dir=cache_dir)
            s = resample(s, fs, samplerate)
            s = s / max(_rms(s), 1e-30)
            track.append(s)
            track.append(np.zeros(int(rng.uniform(0.1, 0.6) * samplerate)))
            total += len(s) + len(track[-1])
        track = np.concatenate(track)
        start = int(rng.integers(0, len(track) - n + 1))
        y += track[start:start + n]
    return y / max(_rms(y), 1e-30)


def synth_music(n, samplerate, rng):
    """A stand-in for "other music": chords, a bass line and a drum pattern, unit RMS."""
    t = np.arange(n) / samplerate
    bpm = rng.uniform(90, 130)
    beat = 60.0 / bpm
    roots = 110.0 * 2 ** (rng.choice([0, 3, 5, 7, 8, 10], size=8) / 12)
    y = np.zeros(n)
    bar = 4 * beat
    for i in range(int(np.ceil(t[-1] / bar)) + 1 if n else 0):
        r = roots[i % len(roots)]
        s0, s1 = int(i * bar * samplerate), min(n, int((i + 1) * bar * samplerate))
        if s0 >= n:
            break
        tt = t[s0:s1] - t[s0]
        env = np.exp(-tt / (1.5 * bar))
        for ratio in (1, 1.26, 1.5, 2.0):
            for h, a in ((1, 1.0), (2, 0.4), (3, 0.2)):
                y[s0:s1] += 0.2 * a * env * np.sin(2 * np.pi * 2 * r * ratio * h * tt)
        y[s0:s1] += 0.5 * env * np.sin(2 * np.pi * r / 2 * tt)
    for j in range(int(t[-1] / beat) + 1 if n else 0):
        s0 = int(j * beat * samplerate)
        m = min(n - s0, int(0.2 * samplerate))
        if m <= 0:
            break
        tt = np.arange(m) / samplerate
        if j % 2 == 0:
            y[s0:s0 + m] += 0.8 * np.exp(-tt / 0.05) * np.sin(2 * np.pi * 60 * tt)
        else:
            y[s0:s0 + m] += 0.4 * np.exp(-tt / 0.04) * rng.standard_normal(m)
    return y / max(_rms(y), 1e-30)


def tv_noise(n, samplerate, rng, *, source=None, cache_dir=None):
    """Music from another room: through a second room's RIR and a wall (low-pass), unit RMS."""
    if source is not None:
        x, fs = read_audio(source)
        x = _as_2d(x).mean(axis=1)
        x = resample(x, fs, samplerate)
        if len(x) < n:
            x = np.tile(x, int(np.ceil(n / max(len(x), 1))))
        start = int(rng.integers(0, len(x) - n + 1))
        x = x[start:start + n]
    else:
        x = synth_music(n, samplerate, rng)
    rirs, _ = room_rirs([4.5, 4.0, 2.7], [[1.0, 1.2, 1.0]], [3.8, 3.0, 1.3], 0.6, samplerate,
                        cache_dir=cache_dir)
    y = signal.oaconvolve(x, rirs[0])[:n]
    # a plasterboard wall passes lows far better than highs
    y = signal.sosfilt(signal.butter(2, 600, "lowpass", fs=samplerate, output="sos"), y)
    return y / max(_rms(y), 1e-30)


def _hpf_sos(fc, samplerate):
    return signal.butter(2, fc, "highpass", fs=samplerate, output="sos")


def band_power(x, samplerate, fc=100.0):
    """Mean power after a 2nd-order 100 Hz high-pass: the band the microphone passes."""
    y = signal.sosfilt(_hpf_sos(fc, samplerate), np.asarray(x, dtype=np.float64))
    return float(np.mean(y * y)) if len(y) else 0.0


# ----------------------------------------------------------------------------- microphone

def mems_mic(p, samplerate, rng, *, hpf_hz=100.0, sensitivity_dbfs=-26.0, snr_db=65.0,
             gain_db=24.0, dc_offset=0.001, ideal=False):
    r"""Pressure (1.0 = 94 dB SPL) at the microphone -> int16 samples the firmware sees.

    .. math:: d = \mathrm{HPF}(p)\,10^{S/20} + n + \delta

    with sensitivity S (dBFS at 94 dB SPL), white self-noise n of RMS
    :math:`10^{(S-\mathrm{SNR})/20}` (the datasheet SNR at 94 dB SPL), DC offset
    :math:`\delta`; d is rounded to 24 bits, multiplied by the firmware gain
    :math:`10^{G/20}`, rounded to 16 bits and clipped. ``ideal`` keeps only the level mapping
    and the 16-bit rounding.
    """
    p = np.asarray(p, dtype=np.float64)
    sens = 10 ** (sensitivity_dbfs / 20)
    gain = 10 ** (gain_db / 20)
    if ideal:
        d = p * sens * gain
    else:
        d = signal.sosfilt(_hpf_sos(hpf_hz, samplerate), p) * sens
        d += rng.standard_normal(len(d)) * 10 ** ((sensitivity_dbfs - snr_db) / 20)
        d += dc_offset
        d = np.clip(np.round(d * 2 ** 23), -2 ** 23, 2 ** 23 - 1) / 2 ** 23
        d *= gain
    q = np.round(d * 32768)
    clipped = int(np.count_nonzero((q > 32767) | (q < -32768)))
    out = np.clip(q, -32768, 32767).astype(np.int16)
    info = {"stage": "mic", "ideal": bool(ideal), "hpf_hz": None if ideal else hpf_hz,
            "sensitivity_dbfs": sensitivity_dbfs, "self_noise_dbfs": None if ideal else
            round(sensitivity_dbfs - snr_db, 2), "gain_db": gain_db,
            "dc_offset_lsb": 0 if ideal else round(dc_offset * gain * 32768, 1),
            "clipped_samples": clipped}
    return out, info


# ----------------------------------------------------------------------------- the chain

def simulate(audio, samplerate, config=None, *, seed=0, cache_dir=None):
    """Run ``audio`` through the channel; returns ``(int16 (frames,) at 16 kHz, info dict)``.

    ``audio``: float (frames,) or (frames, channels) at ``samplerate``, full scale 1.0.
    ``config``: a :class:`ChannelConfig` (default: the ``living-room-6m`` preset).
    ``cache_dir``: where RIRs and generated speech are kept (None: no cache).

    The output has ``round(frames_at_16k * (1 + drift_ppm * 1e-6))`` samples; the room's tail
    past the end of the input is cut. ``info["delay_s"]`` is the direct-path delay, so an
    event at input time t appears at about ``t * (1 + ppm 1e-6) + delay_s`` in the output.

    Examples
    --------
    >>> import numpy as np
    >>> x = 0.1 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)
    >>> y, info = simulate(x, 48000, ChannelConfig.from_preset("digital"))
    >>> y.dtype, len(y), info["samplerate"]
    (dtype('int16'), 16000, 16000)
    """
    cfg = config if config is not None else ChannelConfig.from_preset("living-room-6m")
    cfg.validate()
    fs_in = int(samplerate)
    fs = MIC_SAMPLERATE_HZ
    x = _as_2d(audio)
    if x.shape[0] == 0:
        raise AudioError("empty audio")
    if not np.all(np.isfinite(x)):
        raise AudioError("audio contains NaN or infinite samples")
    info = {"samplerate": fs, "input_samplerate": fs_in, "input_channels": int(x.shape[1]),
            "seed": int(seed), "config": cfg.to_dict(), "stages": [], "delay_s": 0.0}
    stages = info["stages"]

    if cfg.codec is not None:
        x, st = codec_roundtrip(x, fs_in, cfg.codec)
        stages.append(st)

    if cfg.spatial:
        drivers, st = spatial_chain(x, fs_in, spacing_m=cfg.driver_spacing_m,
                                    design_distance_m=cfg.ctc_design_distance_m)
        stages.append(st)
    else:
        drivers = x.mean(axis=1, keepdims=True)
        if x.shape[1] > 1:
            stages.append({"stage": "downmix", "channels": int(x.shape[1])})

    if cfg.loudspeaker:
        drivers, st = loudspeaker(drivers, fs_in, low_hz=cfg.speaker_low_hz,
                                  high_hz=cfg.speaker_high_hz, drive_db=cfg.speaker_drive_db,
                                  knee=cfg.speaker_clip_knee)
        stages.append(st)

    acoustic = cfg.room or cfg.mic
    if acoustic:
        # playback level: the mono downmix through the loudspeaker plays at spl_1m_db (RMS) at
        # 1 m in free field; the spatial chain's driver signals get the same gain, so the
        # chain's own filter gains show up at the microphone
        if cfg.spatial:
            ref = x.mean(axis=1)
            if cfg.loudspeaker:
                ref, _ = loudspeaker(ref, fs_in, low_hz=cfg.speaker_low_hz,
                                     high_hz=cfg.speaker_high_hz, drive_db=cfg.speaker_drive_db,
                                     knee=cfg.speaker_clip_knee)
        else:
            ref = drivers
        ref = _rms(ref)
        if ref > 0:
            drivers = drivers * (10 ** ((cfg.spl_1m_db - 94.0) / 20) / ref)
        info["spl_1m_db"] = cfg.spl_1m_db

    drivers = resample(drivers, fs_in, fs)
    stages.append({"stage": "resample", "from_hz": fs_in, "to_hz": fs})
    n = len(drivers)

    if cfg.room or cfg.spatial:
        # without a room the drivers still add up with their own delays (anechoic, order 0)
        rcfg = cfg if cfg.room else cfg.replace(room_dim_m=cfg.room_dim_m or [
            cfg.distance_m + 4.0, 8.0, 4.0])
        dim, srcs, mic = room_geometry(rcfg, n_sources=drivers.shape[1])
        if cfg.room:
            rirs, st = room_rirs(dim, srcs, mic, cfg.rt60_s, fs, cache_dir=cache_dir,
                                 scattering=cfg.scattering)
        else:
            rirs, st = _anechoic_rirs(srcs, mic, fs)
        st = dict(st, stage="room" if cfg.room else "anechoic")
        stages.append(st)
        info["delay_s"] = st["delay_s"]
        content = np.zeros(n)
        for i in range(drivers.shape[1]):
            content += signal.oaconvolve(drivers[:, i], rirs[i])[:n]
    else:
        content = drivers.sum(axis=1)

    if cfg.drift_ppm:
        content = drift_resample(content, cfg.drift_ppm)
        stages.append({"stage": "drift", "ppm": float(cfg.drift_ppm),
                       "frames_in": n, "frames_out": len(content)})
    n = len(content)

    if acoustic:
        info["content_spl_db"] = round(94.0 + _db(_rms(content)), 2)

    if cfg.noise is not None:
        rng = _rng(seed, cfg.noise)
        if cfg.noise == "pink":
            noise = pink_noise(n, rng)
        elif cfg.noise == "hvac":
            noise = hvac_noise(n, fs, rng)
        elif cfg.noise == "babble":
            if cfg.noise_source is not None:
                noise = tv_noise(n, fs, rng, source=cfg.noise_source, cache_dir=cache_dir)
            else:
                noise = babble_noise(n, fs, rng, cache_dir=cache_dir)
        else:
            noise = tv_noise(n, fs, rng, source=cfg.noise_source, cache_dir=cache_dir)
        p_sig = band_power(content, fs)
        p_noise = band_power(noise, fs)
        gain = np.sqrt(p_sig / p_noise / 10 ** (cfg.snr_db / 10)) if p_noise > 0 else 0.0
        noise *= gain
        content = content + noise
        stages.append({"stage": "noise", "type": cfg.noise, "snr_db": float(cfg.snr_db),
                       "source": str(cfg.noise_source) if cfg.noise_source else None,
                       "band": "above 100 Hz"})

    if acoustic:
        y, st = mems_mic(content, fs, _rng(seed, "mic"), hpf_hz=cfg.mic_hpf_hz,
                         sensitivity_dbfs=cfg.mic_sensitivity_dbfs, snr_db=cfg.mic_snr_db,
                         gain_db=cfg.mic_gain_db, dc_offset=cfg.mic_dc_offset, ideal=not cfg.mic)
    else:
        q = np.round(content * 32768)
        st = {"stage": "int16", "clipped_samples": int(np.count_nonzero(np.abs(q) > 32767))}
        y = np.clip(q, -32768, 32767).astype(np.int16)
    stages.append(st)
    info["frames"] = int(len(y))
    info["duration_s"] = round(len(y) / fs, 6)
    info["output_rms_dbfs"] = round(_db(_rms(y.astype(np.float64) / 32768)), 2)
    return y, info


def _anechoic_rirs(sources, mic, samplerate):
    """Free-field responses of the drivers at the mic, as heard at 1 m with no bulk delay.

    The room-less chain stands for "the microphone right in front of the speaker": each
    response is scaled by the first driver's distance (1/r -> 1 at 1 m) and the common
    propagation delay is removed, keeping the drivers' relative delays and levels.
    """
    import pyroomacoustics as pra

    sources = np.atleast_2d(sources)
    dist = float(np.linalg.norm(sources[0] - np.asarray(mic)))
    room = pra.AnechoicRoom(fs=int(samplerate))
    for s in sources:
        room.add_source(list(s))
    room.add_microphone(list(mic))
    room.compute_rir()
    rirs = [np.asarray(room.rir[0][i], dtype=np.float64) * dist for i in range(len(sources))]
    half = pra.constants.get("frac_delay_length") // 2
    cut = max(0, min(int(np.argmax(np.abs(r))) for r in rirs) - half)
    rirs = [r[cut:] for r in rirs]
    delay = int(np.argmax(np.abs(rirs[0])))
    return rirs, {"distance_m": round(dist, 3), "delay_s": round(delay / samplerate, 5),
                  "level": "as at 1 m"}


def simulate_file(in_path, out_path, config=None, *, seed=0, cache_dir=None):
    """Read ``in_path``, run :func:`simulate`, write a 16 kHz mono int16 WAV; returns info."""
    x, fs = read_audio(in_path)
    y, info = simulate(x, fs, config, seed=seed, cache_dir=cache_dir)
    write_wav_int16(out_path, y)
    info["input"] = str(in_path)
    info["output"] = str(out_path)
    return info
