"""Each stage of the over-the-air channel does what it claims, measured on generated audio."""

import json
import os
import sys

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from airmark import channel
from airmark.channel import ChannelConfig, simulate

FS = 16000
needs_ffmpeg = pytest.mark.usefixtures("ffmpeg")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("channel-cache")


def music_like(seconds, samplerate, seed=0, channels=1):
    """Harmonic notes on a beat plus a little broadband noise: enough structure to correlate."""
    rng = np.random.default_rng(seed)
    n = int(seconds * samplerate)
    t = np.arange(n) / samplerate
    out = []
    for _ in range(channels):
        y = 0.02 * rng.standard_normal(n)
        for start in np.arange(0, seconds, 0.25):
            f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
            s = int(start * samplerate)
            tt = t[s:] - start
            env = np.exp(-tt / 0.3)
            for h in range(1, 6):
                y[s:] += 0.08 / h * env * np.sin(2 * np.pi * f0 * h * tt)
        out.append(y)
    x = np.stack(out, axis=1)
    return x[:, 0] if channels == 1 else x


def stage(info, name):
    return next(s for s in info["stages"] if s["stage"] == name)


def rms_db(x):
    x = np.asarray(x, dtype=float)
    return 10 * np.log10(np.mean(x * x) + 1e-30)


def schroeder_t30(h, samplerate):
    """RT60 from the -5..-35 dB slope of the Schroeder backward integral (own implementation)."""
    e = np.cumsum(h[::-1] ** 2)[::-1]
    edb = 10 * np.log10(e / e[0] + 1e-300)
    i5 = int(np.argmax(edb <= -5))
    i35 = int(np.argmax(edb <= -35))
    t = np.arange(i5, i35) / samplerate
    slope = np.polyfit(t, edb[i5:i35], 1)[0]
    return -60.0 / slope


def delay_at(ref, y, start, length, max_lag):
    """Delay (samples, sub-sample by parabola) of y against ref around ref[start:start+length]."""
    seg = ref[start:start + length]
    win = y[start - max_lag:start + length + max_lag]
    c = signal.correlate(win, seg, mode="valid", method="fft")
    i = int(np.argmax(c))
    a, b, d = c[i - 1], c[i], c[i + 1]
    frac = 0.5 * (a - d) / (a - 2 * b + d)
    return i + frac - max_lag


def measured_ppm(ref, y, samplerate):
    length = 2 * samplerate
    starts = np.arange(samplerate, len(ref) - 3 * samplerate, samplerate)
    delays = [delay_at(ref, y, s, length, 200) for s in starts]
    slope = np.polyfit((starts + length / 2) / samplerate, delays, 1)[0]  # samples per second
    return slope / samplerate * 1e6


# ------------------------------------------------------------------ config and presets

def test_presets_have_the_documented_values():
    lr = ChannelConfig.from_preset("living-room-6m")
    assert (lr.distance_m, lr.rt60_s, lr.snr_db, lr.drift_ppm) == (6.1, 0.5, 10.0, 100.0)
    far = ChannelConfig.from_preset("far-9m")
    assert (far.distance_m, far.snr_db) == (9.0, 5.0)
    assert ChannelConfig.from_preset("spatial-speaker-6m").spatial
    near_speaker = ChannelConfig.from_preset("spatial-speaker-1m")
    assert near_speaker.spatial and near_speaker.distance_m == 1.0 and near_speaker.snr_db == 20.0
    assert ChannelConfig.from_preset("near-1m").distance_m == 1.0
    dig = ChannelConfig.from_preset("digital")
    assert not (dig.room or dig.loudspeaker or dig.mic or dig.spatial or dig.noise)


def test_config_overrides_and_rejects_bad_knobs():
    cfg = ChannelConfig.from_preset("living-room-6m", distance_m=3.0, codec="opus:64k")
    assert cfg.distance_m == 3.0 and cfg.codec == "opus:64k"
    with pytest.raises(ValueError, match="bogus"):
        ChannelConfig.from_preset("living-room-6m", bogus=1)
    with pytest.raises(ValueError, match="preset"):
        ChannelConfig.from_preset("no-such-room")
    with pytest.raises(ValueError, match="drift"):
        ChannelConfig.from_preset("digital", drift_ppm=900)
    with pytest.raises(ValueError, match="codec"):
        ChannelConfig.from_preset("digital", codec="wma:64k")
    with pytest.raises(ValueError, match="noise"):
        ChannelConfig.from_preset("digital", noise="rain")


def test_every_preset_gives_16k_mono_int16(cache):
    x = music_like(2.0, 44100, channels=2)
    for name in channel.PRESETS:
        y, info = simulate(x, 44100, ChannelConfig.from_preset(name), seed=1, cache_dir=cache)
        assert y.dtype == np.int16 and y.ndim == 1
        assert info["samplerate"] == 16000
        drift = ChannelConfig.from_preset(name).drift_ppm
        assert len(y) == round(32000 * (1 + drift * 1e-6))
        assert info["frames"] == len(y)
        assert np.std(y) > 10, name  # something audible arrived
        json.dumps(info)  # the info dict is JSON-ready


def test_digital_preset_only_resamples_and_rounds():
    x = 0.25 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)
    y, _ = simulate(x, 48000, ChannelConfig.from_preset("digital"))
    want = 0.25 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 32768
    assert np.max(np.abs(y[100:-100] - want[100:-100])) < 40  # resampler ripple only


def test_same_seed_same_output_other_seed_other_noise(cache):
    x = music_like(2.0, 16000)
    cfg = ChannelConfig.from_preset("living-room-6m")
    a, _ = simulate(x, 16000, cfg, seed=5, cache_dir=cache)
    b, _ = simulate(x, 16000, cfg, seed=5, cache_dir=cache)
    c, _ = simulate(x, 16000, cfg, seed=6, cache_dir=cache)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


# ------------------------------------------------------------------ room

@pytest.mark.parametrize("rt60", [0.3, 0.6])
def test_room_rt60_within_20_percent(rt60, cache):
    cfg = ChannelConfig(distance_m=4.0, rt60_s=rt60)
    dim, src, mic = channel.room_geometry(cfg)
    rirs, info = channel.room_rirs(dim, src, mic, rt60, FS, cache_dir=cache)
    t30 = schroeder_t30(rirs[0], FS)
    assert abs(t30 / rt60 - 1) < 0.20, (t30, rt60)
    assert abs(channel.measure_rt60(rirs[0], FS) / rt60 - 1) < 0.20
    # a longer request really decays more slowly than a shorter one
    assert info["rt60_measured_s"] == pytest.approx(t30, rel=0.2)


def test_rir_cache_returns_the_same_response(cache):
    cfg = ChannelConfig(distance_m=2.0, rt60_s=0.25)
    dim, src, mic = channel.room_geometry(cfg)
    r1, i1 = channel.room_rirs(dim, src, mic, 0.25, FS, cache_dir=cache)
    r2, i2 = channel.room_rirs(dim, src, mic, 0.25, FS, cache_dir=cache)
    assert not i1["cached"] and i2["cached"]
    assert np.array_equal(r1[0], r2[0])
    # the direct path sits at distance / c
    assert i1["delay_s"] == pytest.approx(2.0 / 343.0 + 40 / FS, abs=1e-3)


def test_room_geometry_places_the_mic_at_the_distance():
    for d in (1.0, 6.1, 9.0):
        dim, src, mic = channel.room_geometry(ChannelConfig(distance_m=d))
        assert np.linalg.norm(mic - src[0]) == pytest.approx(d, abs=1e-6)
        assert np.all(mic > 0.1) and np.all(mic < dim - 0.1)
    with pytest.raises(ValueError, match="outside room"):
        channel.room_geometry(ChannelConfig(distance_m=6.1, room_dim_m=(4, 4, 2.7)))


def test_mic_azimuth_and_height_move_the_mic_on_the_same_sphere():
    base = ChannelConfig(distance_m=6.1)
    _, src, mic0 = channel.room_geometry(base)
    seen = [tuple(np.round(mic0, 6))]
    for az, h in ((-15.0, None), (0.0, 1.6), (18.0, 0.9)):
        _, s, mic = channel.room_geometry(base.replace(mic_azimuth_deg=az, mic_height_m=h))
        v = mic - s[0]
        assert np.linalg.norm(v) == pytest.approx(6.1, abs=1e-6)
        assert np.degrees(np.arctan2(v[1], v[0])) == pytest.approx(az, abs=1e-6)
        assert mic[2] == pytest.approx(s[0][2] + 0.2 if h is None else h, abs=1e-9)
        seen.append(tuple(np.round(mic, 6)))
    assert len(set(seen)) == len(seen)
    with pytest.raises(ValueError, match="outside room"):
        channel.room_geometry(base.replace(mic_azimuth_deg=-60.0))
    with pytest.raises(ValueError, match="mic_azimuth_deg"):
        base.replace(mic_azimuth_deg=120.0).validate()


def test_farther_is_quieter_and_more_reverberant(cache):
    x = music_like(3.0, FS)
    levels = []
    for d in (1.0, 6.1):
        cfg = ChannelConfig(distance_m=d, rt60_s=0.5, room_dim_m=(8.1, 5.7, 2.7), mic=False)
        y, info = simulate(x, FS, cfg, cache_dir=cache)
        levels.append((info["content_spl_db"], stage(info, "room")["drr_db_2p5ms"]))
    assert levels[1][0] < levels[0][0] - 3
    assert levels[1][1] < levels[0][1] - 5


# ------------------------------------------------------------------ noise

@pytest.mark.parametrize("kind", ["pink", "hvac", "tv", "babble"])
def test_noise_snr_within_1_db(kind, cache, request):
    if kind == "babble":
        request.getfixturevalue("espeak")  # babble is espeak-ng speech
    x = music_like(4.0, FS, seed=2)
    base = dict(distance_m=3.0, rt60_s=0.4, drift_ppm=0.0)
    clean, _ = simulate(x, FS, ChannelConfig(**base), seed=9, cache_dir=cache)
    for snr in (0.0, 10.0):
        noisy, info = simulate(x, FS, ChannelConfig(noise=kind, snr_db=snr, **base), seed=9,
                               cache_dir=cache)
        c = clean.astype(float)
        nz = noisy.astype(float) - c
        measured = rms_db(c - c.mean()) - rms_db(nz)
        assert abs(measured - snr) < 1.0, (kind, snr, measured)
    assert stage(info, "noise")["type"] == kind


def test_noise_types_sound_different():
    rng = np.random.default_rng(0)
    n = 4 * FS
    f, p_pink = signal.welch(channel.pink_noise(n, rng), FS, nperseg=2048)
    _, p_hvac = signal.welch(channel.hvac_noise(n, FS, rng), FS, nperseg=2048)
    lo, hi = (f > 100) & (f < 300), (f > 2000) & (f < 6000)
    # pink: about -10 dB per decade from 200 Hz to 4 kHz (13 dB); hvac: far steeper
    tilt_pink = 10 * np.log10(p_pink[lo].mean() / p_pink[hi].mean())
    tilt_hvac = 10 * np.log10(p_hvac[lo].mean() / p_hvac[hi].mean())
    assert 8 < tilt_pink < 18
    assert tilt_hvac > tilt_pink + 10


# ------------------------------------------------------------------ drift

@pytest.mark.parametrize("ppm", [250.0, -120.0])
def test_drift_measured_by_cross_correlation_within_10_ppm(ppm):
    x = music_like(16.0, FS, seed=3)
    ref, _ = simulate(x, FS, ChannelConfig.from_preset("digital"))
    y, info = simulate(x, FS, ChannelConfig.from_preset("digital", drift_ppm=ppm))
    assert len(y) == round(len(x) * (1 + ppm * 1e-6))
    est = measured_ppm(ref.astype(float), y.astype(float), FS)
    assert abs(est - ppm) < 10, est


def test_drift_survives_the_whole_room_channel(cache):
    x = music_like(16.0, FS, seed=4)
    base = dict(distance_m=3.0, rt60_s=0.4, noise="pink", snr_db=20.0)
    ref, _ = simulate(x, FS, ChannelConfig(drift_ppm=0.0, **base), seed=1, cache_dir=cache)
    y, _ = simulate(x, FS, ChannelConfig(drift_ppm=100.0, **base), seed=1, cache_dir=cache)
    est = measured_ppm(ref.astype(float), y.astype(float), FS)
    assert abs(est - 100.0) < 10, est


def test_drift_resampler_keeps_a_tone_clean():
    t = np.arange(4 * FS) / FS
    x = np.sin(2 * np.pi * 1000 * t)
    y = channel.drift_resample(x, 500.0)
    want = np.sin(2 * np.pi * 1000 / (1 + 500e-6) * np.arange(len(y)) / FS)
    err = y[200:-200] - want[200:-200]
    assert rms_db(err) < -60


# ------------------------------------------------------------------ codec

@needs_ffmpeg
@pytest.mark.parametrize("spec", ["mp3:128k", "aac:96k", "opus:64k"])
def test_codec_round_trip_changes_signal_keeps_loudness(spec):
    x = music_like(3.0, 44100, seed=5, channels=2)
    y, info = channel.codec_roundtrip(x, 44100, spec)
    assert y.shape == x.shape
    err_db = rms_db(y - x) - rms_db(x)
    assert -45 < err_db < -3, err_db  # changed, but still the same music
    assert abs(rms_db(y) - rms_db(x)) < 1.0
    assert info["codec"] == spec.split(":")[0] and info["bitrate"] == spec.split(":")[1]
    # aligned in time: the best lag is zero
    assert channel._best_lag(x[:, 0], y[:, 0], 2000) == 0


@needs_ffmpeg
def test_lower_bitrate_hurts_more():
    x = music_like(3.0, 44100, seed=6)
    errs = [rms_db(channel.codec_roundtrip(x, 44100, "mp3:%s" % b)[0] - x) for b in ("32k",
                                                                                     "192k")]
    assert errs[0] > errs[1] + 3


# ------------------------------------------------------------------ loudspeaker

def tone_gain_db(f, fs=44100):
    t = np.arange(fs) / fs
    x = 0.1 * np.sin(2 * np.pi * f * t)
    y, _ = channel.loudspeaker(x, fs)
    return rms_db(y[fs // 2:]) - rms_db(x[fs // 2:])


def test_loudspeaker_band_limits():
    mid = tone_gain_db(1000)
    assert tone_gain_db(50) < mid - 20
    assert tone_gain_db(15000) < mid - 10
    assert abs(tone_gain_db(400) - mid) < 6  # inside the band: within a few dB
    assert tone_gain_db(150) > mid - 6  # the box resonance holds up the low corner


def test_loudspeaker_soft_clips_only_at_high_level():
    x = np.linspace(-3, 3, 1001)
    y = channel.soft_clip(x, 0.7)
    assert np.max(np.abs(y)) <= 1.0
    small = np.abs(x) <= 0.7
    assert np.array_equal(y[small], x[small])
    assert np.all(np.diff(y) > 0)  # monotonic, no fold-back
    _, info = channel.loudspeaker(0.9 * np.ones(100), 44100)
    assert info["samples_over_knee"] == 100


# ------------------------------------------------------------------ microphone

def test_mic_quantises_to_int16_and_adds_dc_offset():
    rng = np.random.default_rng(0)
    p = np.zeros(FS)
    y, info = channel.mems_mic(p, FS, rng, gain_db=24.0, dc_offset=0.001)
    assert y.dtype == np.int16
    want_dc = 0.001 * 10 ** (24 / 20) * 32768
    assert np.mean(y) == pytest.approx(want_dc, abs=2)
    assert info["dc_offset_lsb"] == pytest.approx(want_dc, abs=0.1)
    # self-noise: -91 dBFS at 24 bit + 24 dB gain -> about -67 dBFS
    assert rms_db((y - y.mean()) / 32768) == pytest.approx(-26 - 65 + 24, abs=1.5)


def test_mic_24_bit_step_before_the_gain():
    # no self-noise, no DC, a 20 Hz sine well above a 1 Hz high-pass, 80 dB firmware gain:
    # one 24-bit step becomes 2^-23 * 10^4 * 32768 = 39 LSB at the output
    t = np.arange(FS) / FS
    step_pa = 2.0 ** -23 / 10 ** (-26 / 20)  # pressure of one 24-bit step
    kw = dict(snr_db=300, dc_offset=0.0, gain_db=80.0, hpf_hz=1.0)
    y, _ = channel.mems_mic(0.4 * step_pa * np.sin(2 * np.pi * 20 * t), FS,
                            np.random.default_rng(0), **kw)
    assert np.all(y == 0)  # less than half a step rounds away
    y2, _ = channel.mems_mic(3.4 * step_pa * np.sin(2 * np.pi * 20 * t), FS,
                             np.random.default_rng(0), **kw)
    levels = np.unique(y2[FS // 2:])
    assert 5 <= len(levels) <= 7
    assert np.all(np.abs(np.diff(levels) - 39.06) < 1.01)


def test_mic_high_pass_and_clipping():
    t = np.arange(FS) / FS
    rng = np.random.default_rng(0)
    lo, _ = channel.mems_mic(np.sin(2 * np.pi * 30 * t), FS, rng, dc_offset=0.0)
    mid, _ = channel.mems_mic(np.sin(2 * np.pi * 1000 * t), FS, rng, dc_offset=0.0)
    assert rms_db(lo[FS // 2:].astype(float)) < rms_db(mid[FS // 2:].astype(float)) - 15
    loud, info = channel.mems_mic(100 * np.sin(2 * np.pi * 1000 * t), FS, rng)
    assert info["clipped_samples"] > 0 and loud.max() == 32767 and loud.min() == -32768


# ------------------------------------------------------------------ spatial chain

def test_upmix_sends_mono_to_centre_and_keeps_side():
    rng = np.random.default_rng(1)
    m = 0.1 * rng.standard_normal(3 * 44100)
    lrc = channel.upmix_lrc(np.stack([m, m], axis=1), 44100)
    assert rms_db(lrc[:, 2]) == pytest.approx(rms_db(m), abs=0.5)
    assert rms_db(lrc[:, 0]) < rms_db(m) - 30
    left = np.stack([m, 0.0 * m], axis=1)
    lrc = channel.upmix_lrc(left, 44100)
    assert rms_db(lrc[:, 2]) < rms_db(m) - 10  # a hard-panned source is not centre content
    assert np.allclose(lrc[:, 0] - lrc[:, 1], m, atol=1e-6)  # side signal untouched


def test_centre_beamformer_has_nulls_at_90_degrees():
    fs = 48000
    _, _, beam = channel.spatial_filters(fs, spacing_m=0.08)
    h = np.fft.rfft(beam, axis=0)
    f = np.fft.rfftfreq(len(beam), 1 / fs)
    pos = channel.driver_offsets_m(0.08)

    def response(theta):
        k = 2 * np.pi * f / 343.0
        steer = np.exp(1j * k[:, None] * pos[None, :] * np.sin(theta))
        return np.abs(np.sum(h * steer, axis=1))

    band = (f > 500) & (f < 1800)
    on_axis = response(0.0)[band]
    side = response(np.pi / 2)[band]
    assert np.all(np.abs(20 * np.log10(on_axis)) < 1.0)
    assert np.mean(20 * np.log10(side / on_axis)) < -9
    assert np.min(20 * np.log10(response(np.pi / 4)[band] / on_axis)) > -7  # wide main lobe
    out = (f > 6000)  # above the band the centre driver plays alone: omnidirectional
    assert np.allclose(response(np.pi / 2)[out], response(0.0)[out], rtol=0.05)


def test_spatial_chain_energy_sensible_and_mono_still_heard(cache):
    rng = np.random.default_rng(2)
    sos = signal.butter(4, [200, 6000], "bandpass", fs=44100, output="sos")
    mono = 0.1 * signal.sosfilt(sos, rng.standard_normal(4 * 44100))
    side = 0.1 * signal.sosfilt(sos, rng.standard_normal((4 * 44100, 2)), axis=0)
    for x in (mono, side):
        # image sources only: the ray tracer's late tail is drawn afresh for every driver
        # position, which would swamp this waveform comparison
        base = dict(distance_m=3.0, rt60_s=0.4, drift_ppm=0.0, mic=False, scattering=0.0)
        plain, _ = simulate(x, 44100, ChannelConfig(spatial=False, **base), cache_dir=cache)
        spat, info = simulate(x, 44100, ChannelConfig(spatial=True, **base), cache_dir=cache)
        diff = rms_db(spat.astype(float)) - rms_db(plain.astype(float))
        assert -8 < diff < 10, diff
        assert [s["stage"] for s in info["stages"]][:2] == ["spatial", "loudspeaker"]
    # the mono source is still at the mic: the spatial output correlates with the plain one
    plain_m, _ = simulate(mono, 44100, ChannelConfig(spatial=False, **base), cache_dir=cache)
    spat_m, _ = simulate(mono, 44100, ChannelConfig(spatial=True, **base), cache_dir=cache)
    a, b = plain_m.astype(float), spat_m.astype(float)
    c = signal.correlate(b, a, mode="full") / (np.linalg.norm(a) * np.linalg.norm(b))
    assert np.max(c) > 0.5
    # In the default (hybrid) rooms the three drivers' tails differ, but the energy holds.
    hybrid = dict(base, scattering=channel.DEFAULT_SCATTERING)
    plain_h, _ = simulate(mono, 44100, ChannelConfig(spatial=False, **hybrid), cache_dir=cache)
    spat_h, info_h = simulate(mono, 44100, ChannelConfig(spatial=True, **hybrid), cache_dir=cache)
    assert -8 < rms_db(spat_h.astype(float)) - rms_db(plain_h.astype(float)) < 10
    room = [st for st in info_h["stages"] if st["stage"] == "room"][0]
    assert room["scattering"] == channel.DEFAULT_SCATTERING


# ------------------------------------------------------------------ CLI

def test_cli_simulate_writes_16k_int16_and_json(tmp_path, capsys, cache):
    from airmark.cli import main

    src = tmp_path / "in.wav"
    sf.write(str(src), music_like(2.0, 44100, channels=2), 44100)
    out = tmp_path / "out.wav"
    rc = main(["simulate", str(src), str(out), "--preset", "near-1m", "--snr", "15",
               "--drift-ppm", "-50", "--cache-dir", str(cache), "--json"])
    assert rc == 0
    cap = capsys.readouterr()
    info = json.loads(cap.out)
    assert info["config"]["snr_db"] == 15.0 and info["config"]["drift_ppm"] == -50.0
    data, fs = sf.read(str(out), dtype="int16")
    assert fs == 16000 and data.ndim == 1 and len(data) == info["frames"]
    assert cap.err == ""  # this room meets its RT60: no warning
    assert main(["simulate", str(src), str(out), "--seed", "-1"]) == 2
    assert "--seed" in capsys.readouterr().err
    rc = main(["simulate", str(tmp_path / "missing.wav"), str(out)])
    assert rc == 2
    assert "missing.wav" in capsys.readouterr().err


def test_cli_simulate_warns_when_the_room_misses_its_rt60():
    from airmark import cmd_simulate

    def info(measured):
        return {"stages": [{"stage": "loudspeaker"},
                           {"stage": "room", "rt60_s": 0.5, "rt60_measured_s": measured,
                            "room_dim_m": [102.0, 71.4, 2.7]}]}
    assert cmd_simulate.rt60_warning(info(0.52)) is None
    assert cmd_simulate.rt60_warning(info(0.45)) is None
    msg = cmd_simulate.rt60_warning(info(2.98))
    assert msg.startswith("this room could not be given RT60 0.50 s: it decays in 2.98 s")
    assert "102x71.4x2.7 m" in msg
    assert cmd_simulate.rt60_warning({"stages": [{"stage": "resample"}]}) is None


# ------------------------------------------------------------------ room model

def test_room_reverberant_level_follows_barron_near_and_far():
    # tools/room_check.py: energy from 5 ms after the direct path, re the direct path at 1 m
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "tools"))
    import room_check

    for dist in (1.0, 6.1):
        r = room_check.measure(dist, 0.5, channel.DEFAULT_SCATTERING)
        assert abs(r["reverberant_db"] - r["barron_db"]) < 2.5, r
        assert r["scattering"] == channel.DEFAULT_SCATTERING
    # The image sources alone leave the long 6.1 m room far too dry (the 3 m / 6.1 m
    # inversion of the eval grid), while the small room is close.
    r = room_check.measure(6.1, 0.5, 0.0)
    assert r["reverberant_db"] < r["barron_db"] - 3.0


def test_hybrid_room_is_reproducible_without_a_cache():
    cfg = ChannelConfig(distance_m=3.0, rt60_s=0.4)
    dim, src, mic = channel.room_geometry(cfg)
    a, ia = channel.room_rirs(dim, src, mic, 0.4, FS)
    b, ib = channel.room_rirs(dim, src, mic, 0.4, FS)
    assert np.array_equal(a[0], b[0]) and ia == ib
    c, _ = channel.room_rirs(dim, src, mic, 0.4, FS, scattering=0.5)
    assert not np.array_equal(a[0][:len(c[0])], c[0][:len(a[0])])
    with pytest.raises(ValueError, match="scattering must be within 0..1"):
        ChannelConfig(scattering=1.5).validate()
