"""The line enhancer (firmware/airmark_enhancer.py): what it removes, what it keeps, its
integer bounds, and the same integers on its numpy and viper paths."""

import importlib.util
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import signals as sg

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIRMWARE = os.path.join(ROOT, "firmware")
MICROPYTHON = shutil.which("micropython")
FS = 16000


@pytest.fixture(scope="module")
def enh():
    spec = importlib.util.spec_from_file_location("airmark_enhancer_t",
                                                  os.path.join(FIRMWARE, "airmark_enhancer.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert not mod.ULAB
    return mod


def run(enh, x, per_hop=False):
    """Enhanced output, aligned with the input (the enhancer lags one hop), and the state."""
    st = enh.LineEnhancer(use_kernels=False)
    m = len(x) // enh.HOP
    x = np.asarray(x[:m * enh.HOP], dtype=np.int64)
    if per_hop:
        out = np.zeros(enh.HOP, dtype=np.int64)
        ys = []
        for i in range(m):
            st.process(x[i * enh.HOP:(i + 1) * enh.HOP], out)
            ys.append(out.copy())
        y = np.concatenate(ys)
    else:
        y = enh.process_block(st, x.reshape(m, enh.HOP)).reshape(-1)
        st.hops += m
    return y[enh.HOP:], x[:-enh.HOP], st


def awkward_signal(seconds=3.0, seed=1):
    """A tone in noise that drops 40 dB (gain steps up), then a clipped burst (steps down)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    x = 3000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 800, n)
    x[n // 3:2 * n // 3] *= 0.01
    x[2 * n // 3:2 * n // 3 + 2000] *= 9
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def test_a_steady_tone_is_removed_and_noise_kept(enh):
    t = np.arange(2 * FS) / FS
    tone = np.round(8000 * np.sin(2 * np.pi * 1000.3 * t)).astype(np.int16)
    y, x, st = run(enh, tone)
    gain = 16.0 / 2 ** st.head[enh.EH_G]  # the output is (input * 2**g) / 16
    settled = slice(FS // 2, None)
    assert np.std(y[settled]) * gain < 0.02 * np.std(x[settled])  # > 34 dB down
    noise = np.random.default_rng(0).normal(0, 3000, 2 * FS).astype(np.int16)
    y, x, _ = run(enh, noise)
    assert np.corrcoef(y[settled], x[settled])[0, 1] > 0.95


def test_quiet_input_is_scaled_up_before_the_transforms(enh):
    """At -64 dBFS the AGC raises the gain: the tone still goes, the noise still stays."""
    rng = np.random.default_rng(2)
    t = np.arange(3 * FS) / FS
    noise = rng.normal(0, 10, len(t))
    x = np.round(30 * np.sin(2 * np.pi * 700 * t) + noise).astype(np.int16)
    y, _, st = run(enh, x)
    assert st.head[enh.EH_G] >= 7  # peak ~70: 70 * 2**7 < 2**14
    settled = slice(FS, None)
    ref = np.round(noise).astype(np.int64)[:-enh.HOP][settled]
    assert np.corrcoef(y[settled], ref)[0, 1] > 0.8


def test_per_hop_and_block_paths_give_the_same_integers(enh):
    x = awkward_signal(seconds=6.0)  # 750 hops: process_block runs it in two chunks
    assert len(x) // enh.HOP > enh.BLOCK_HOPS
    y1, _, s1 = run(enh, x)
    y2, _, s2 = run(enh, x, per_hop=True)
    assert np.array_equal(y1, y2)
    for name in ("head", "xin", "past", "rxy", "rxx", "tail"):
        assert list(getattr(s1, name)) == list(getattr(s2, name)), name
    gains = []  # the vector does move the gain both ways
    st = enh.LineEnhancer(use_kernels=False)
    for i in range(len(x) // enh.HOP):
        st.process(x[i * enh.HOP:(i + 1) * enh.HOP], np.zeros(enh.HOP, dtype=np.int64))
        gains.append(st.head[enh.EH_G])
    assert max(np.diff(gains)) == 1 and min(np.diff(gains)) < 0


def test_the_hosts_vectorised_gain_fit_equals_the_loop(enh):
    """process_block fits the AGC's gains for many hops at once from bit lengths; that
    must equal fit_gain's loop (the viper kernel's) for every peak an int16 hop can have."""
    peaks = np.arange(0, 32769)
    assert enh._fit_gains(peaks) == [enh.fit_gain(int(p)) for p in peaks]


def test_state_stays_inside_its_proven_bounds_on_worst_case_input(enh):
    """Full-scale square waves, clicks and clipped noise: every value under 2**31 and the
    documented bounds (docs/ALGORITHM.md §8)."""
    rng = np.random.default_rng(4)
    n = 4 * FS
    sq = np.where(np.sin(2 * np.pi * 250 * np.arange(n) / FS) >= 0, 32767, -32768)
    clicks = np.zeros(n)
    clicks[::997] = 32767
    noise = np.clip(rng.normal(0, 30000, n), -32768, 32767)
    for x in (sq, clicks, noise, -sq):
        x = x.astype(np.int16)
        st = enh.LineEnhancer(use_kernels=False)
        m = len(x) // enh.HOP
        worst = {"rxy": 0, "rxx": 0, "past": 0}
        for i in range(m):
            enh.process_block(st, x[i * enh.HOP:(i + 1) * enh.HOP].astype(np.int64).reshape(1, -1))
            st.hops += 1
            for k in worst:
                worst[k] = max(worst[k], max(abs(v) for v in getattr(st, k)))
        assert worst["past"] < 2 ** 14 + 16
        assert worst["rxy"] < enh.R_BOUND and worst["rxx"] < enh.R_BOUND
        assert max(abs(v) for v in st.tail) < 2 ** 31


def test_the_detector_refuses_an_enhancer_key_on_ulab_alone(core_ulab):
    key = sg.key_record(seed=3, threshold=6.0, line_enhancer=True)
    with pytest.raises(ValueError, match="line enhancer"):
        core_ulab.Detector(key)


def test_enhancer_key_detects_a_mark_and_reports_its_time(core_numpy):
    """The enhancer lags a hop; the detector takes it back, so both keys agree on t."""
    host = sg.music_like(5.0, seed=7)
    plain = sg.key_record(seed=2024, threshold=6.0)
    enhanced = sg.key_record(seed=2024, threshold=6.0, line_enhancer=True)
    y, _ = sg.embed_reference(host, plain, 1.5, -7.0)
    x = sg.to_int16(y, peak=0.4)
    times = []
    for key in (plain, enhanced):
        det = core_numpy.Detector(key)
        h = det.hop_samples
        evs = [det.feed(x[i * h:(i + 1) * h]) for i in range(len(x) // h)]
        times.append([e[0] for e in evs if e])
    assert len(times[1]) == 1 and abs(times[1][0] - times[0][0]) <= 2 * 128
    det = core_numpy.Detector(enhanced)
    h = det.hop_samples
    assert not any(det.feed(sg.to_int16(host, peak=0.4)[i * h:(i + 1) * h])
                   for i in range(len(host) // h))


@pytest.mark.usefixtures("micropython")
def test_viper_kernel_matches_numpy_under_real_micropython(enh, tmp_path):
    x = awkward_signal()
    y, _, st = run(enh, x)
    (tmp_path / "in.bin").write_bytes(x.tobytes())
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, array\n"
        "sys.path.insert(0, %r)\n"
        "import airmark_enhancer as E\n"
        "st = E.LineEnhancer()\n"
        "assert st.kernels is not None\n"
        "x = array.array('h', open(%r, 'rb').read())\n"
        "out = array.array('h', [0] * 128)\n"
        "res = array.array('h')\n"
        "for i in range(len(x) // 128):\n"
        "    st.process(x[i * 128:(i + 1) * 128], out)\n"
        "    res.extend(out)\n"
        "open(%r, 'wb').write(res)\n"
        "print(list(st.head), sum(st.rxx), sum(st.rxy))\n"
        % (FIRMWARE, str(tmp_path / "in.bin"), str(tmp_path / "out.bin")))
    out = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), dtype=np.int16)[enh.HOP:]
    assert np.array_equal(got, y)
    assert out.stdout.split() == (str(list(st.head)).split()
                                  + [str(sum(st.rxx)), str(sum(st.rxy))])


def test_key_field_is_validated_and_in_the_checksum():
    from airmark import keys
    from airmark.errors import AirmarkError

    rec = keys.generate(9, line_enhancer=True)
    assert rec["line_enhancer"] == 1 and rec["threshold"] == keys.ENHANCED_THRESHOLD
    plain = keys.generate(9)
    assert "line_enhancer" not in plain
    # the same seed makes the same mark: files marked with one detect with the other
    assert [plain[f] for f in ("key_bits", "noise_seed", "key_id")] == \
        [rec[f] for f in ("key_bits", "noise_seed", "key_id")]
    for bad in (True, 2, "1"):
        r = dict(rec, line_enhancer=bad)
        with pytest.raises(AirmarkError, match="line_enhancer must be 0 or 1"):
            keys.validate(r)
    r = dict(rec, line_enhancer=0)
    with pytest.raises(AirmarkError, match="bad checksum"):
        keys.validate(r)
    r = dict(rec, block_samples=512)
    with pytest.raises(AirmarkError, match="line_enhancer needs block_samples 256"):
        keys.validate(r)
    # every calibrated shape has its own enhancer threshold
    j3 = keys.generate(9, line_enhancer=True, lag_periods=3)
    assert j3["threshold"] == keys.ENHANCED_J3_THRESHOLD
    long_key = keys.generate(9, key_seconds=6, line_enhancer=True)
    assert long_key["lag_periods"] == 3
    assert long_key["threshold"] == keys.ENHANCED_LONG_KEY_THRESHOLD
    assert keys.enhancer_twin(keys.generate(9, lag_periods=3))["threshold"] == \
        keys.ENHANCED_J3_THRESHOLD
    assert keys.threshold_constant(2.0, 4, line_enhancer=1) is None


def test_the_enhancer_works_only_in_the_keys_band(enh):
    """band_bins covers the band with whole 62.5 Hz bins, and the enhanced signal keeps
    almost nothing outside them: against the full-band enhancer, tones below and above
    the band drop by more than 20 dB while one inside keeps its level (it is not steady:
    its level changes every 20 ms, so the predictor cannot take it). The out-of-band
    bins' statistics stay 0."""
    assert enh.band_bins((150, 6000)) == (2, 96)
    assert enh.band_bins((0, 8000)) == (0, 128)
    t = np.arange(3 * FS) / FS
    env = 1 + 0.8 * np.sign(np.sin(2 * np.pi * 25 * t))
    inside = 3000 * env * np.sin(2 * np.pi * 1000 * t)
    outside = 3000 * env * (np.sin(2 * np.pi * 40 * t) + np.sin(2 * np.pi * 7200 * t))
    x = np.round(inside + outside).astype(np.int16)
    m = len(x) // enh.HOP
    levels = []
    for band in ((150, 6000), (0, 8000)):
        st = enh.LineEnhancer(use_kernels=False, band_hz=band)
        y = enh.process_block(st, x[:m * enh.HOP].astype(np.int64).reshape(m, -1)).reshape(-1)
        spec = np.abs(np.fft.rfft(y[FS:].astype(float) * np.hanning(len(y) - FS)))
        f = np.fft.rfftfreq(len(y) - FS, 1 / FS)
        levels.append([spec[(f > hz - 10) & (f < hz + 10)].max() for hz in (40, 1000, 7200)])
        if band[0]:
            assert list(st.rxx)[:2] == [0, 0] and not any(list(st.rxx)[97:])
    (lo, mid, hi), (flo, fmid, fhi) = levels
    assert lo < 0.1 * flo and hi < 0.1 * fhi
    assert 0.9 < mid / fmid < 1.1


def test_keygen_line_enhancer_option(tmp_path):
    from airmark import cli

    path = tmp_path / "k.json"
    rc = cli.main(["keygen", str(path), "--seed", "4", "--line-enhancer"])
    assert rc == 0
    rec = json.loads(path.read_text())
    assert rec["line_enhancer"] == 1


def test_thumb_fft_tables_and_walk_match_the_fft(enh):
    """The Thumb module's stage tables and the order its fft walks them (modelled here
    in Python; the machine code itself runs in tests/test_thumb_emu.py) give the
    enhancer's FFT, forward and inverse."""
    import sys

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import thumb_emu

    thumb = thumb_emu.load_thumb_module()

    def fft_model(z, stw):
        """The assembly's walk: seven stages, half = 1..64, one twiddle pointer running
        through `stw` from stage to stage."""
        t = 0
        half = 1
        while half < enh.M:
            for k in range(half):
                wr, wi = stw[t], stw[t + 1]
                t += 2
                i = 2 * k
                while i < 2 * enh.M:
                    j = i + 2 * half
                    tr = (z[j] * wr - z[j + 1] * wi + 64) >> 7
                    ti = (z[j] * wi + z[j + 1] * wr + 64) >> 7
                    ur, ui = z[i], z[i + 1]
                    z[i], z[i + 1] = (ur + tr + 1) >> 1, (ui + ti + 1) >> 1
                    z[j], z[j + 1] = (ur - tr + 1) >> 1, (ui - ti + 1) >> 1
                    i += 4 * half
            half *= 2
        assert t == len(stw)

    st = enh.LineEnhancer(use_kernels=False)
    rng = np.random.default_rng(8)
    for inverse in (False, True):
        re = rng.integers(-2 ** 14, 2 ** 14, (1, enh.M))
        im = rng.integers(-2 ** 14, 2 ** 14, (1, enh.M))
        z = [0] * (2 * enh.M)
        rev = list(st.bitrev)
        for n in range(enh.M):
            z[2 * rev[n]] = int(re[0, n])
            z[2 * rev[n] + 1] = int(im[0, n])
        fft_model(z, thumb.stage_twiddles(st.twiddles, inverse))
        wr, wi = enh.fft_rows(st, re, im, inverse)
        assert z[0::2] == list(wr[0]) and z[1::2] == list(wi[0])
    # the frame's table: win[n] in the low half, above it the byte offset of sample n in
    # the packed, bit-reversed input (pair rev[n >> 1], re for even n, im for odd)
    wrev = thumb.window_table(st.window, st.bitrev)
    for n in (0, 1, 37, 128, 255):
        assert wrev[n] & 0xFFFF == st.window[n]
        assert wrev[n] >> 16 == 8 * st.bitrev[n >> 1] + 4 * (n & 1)
    # the split and the merge read W^k, k = 0..128, as int32 pairs
    assert list(thumb.split_twiddles(st.twiddles)) == list(st.twiddles)
    assert len(st.twiddles) == 2 * enh.BINS and st.twiddles[2 * 128] == -127


def test_the_thumb_predictors_division_scheme_is_floor_then_clamp():
    """The Thumb predictor divides n = 128 R_xy by den = R_xx + 1 with an 8-bit restoring
    division whose steps compare the remainder with den << 7 and shift their carry in at
    the bottom, so the low 8 bits end up holding the quotient; a negative n is divided as
    n + 256 den (the quotient + 256), and it saturates when n >= 256 den or n < -256 den
    (docs/ALGORITHM.md §8). Modelled here step by step on 32-bit registers, it equals the
    numpy and viper paths' min(max(n // den, -256), 256) for every sign and size."""
    def div_model(n, den):
        d8 = den << 8
        d7 = den << 7
        assert d8 <= 1 << 31
        if n >= 0:
            if n >= d8:
                return 256
            r = n
        else:
            if n + d8 < 0:
                return -256
            r = n + d8
        for _ in range(8):
            c = 1 if r >= d7 else 0
            if c:
                r -= d7
            r = 2 * r + c
            assert r < 1 << 32
        q = r & 255
        return q if n >= 0 else q - 256

    rng = np.random.default_rng(11)
    dens = np.concatenate([[1, 2, 3, 255, 256, 257, 2 ** 23], rng.integers(1, 2 ** 23, 300)])
    for den in dens:
        den = int(den)
        for n in list(rng.integers(-2 ** 30, 2 ** 30, 20)) + [0, 1, -1, den, -den, den - 1,
                                                              -den + 1, 255 * den + 1,
                                                              -255 * den - 1, 256 * den,
                                                              -256 * den, 256 * den - 1,
                                                              -256 * den - 1, -256 * den + 1]:
            n = int(n)
            assert div_model(n, den) == min(max(n // den, -256), 256), (n, den)


def test_keygen_from_makes_the_enhancer_twin_of_an_existing_key(tmp_path, capsys):
    from airmark import cli, keys
    from airmark.errors import AirmarkError

    plain = tmp_path / "plain.json"
    assert cli.main(["keygen", str(plain), "--seed", "6"]) == 0
    twin = tmp_path / "twin.json"
    assert cli.main(["keygen", str(twin), "--from", str(plain), "--line-enhancer"]) == 0
    seeded = tmp_path / "seeded.json"
    assert cli.main(["keygen", str(seeded), "--seed", "6", "--line-enhancer"]) == 0
    assert json.loads(twin.read_text()) == json.loads(seeded.read_text())
    assert cli.main(["keygen", str(tmp_path / "x.json"), "--from", str(plain), "--seed", "1"]) == 2
    assert not (tmp_path / "x.json").exists()
    # keys made before diff_weight 2 have no calibrated enhancer threshold
    old = {k: v for k, v in keys.generate(6, diff_weight=1).items()}
    with pytest.raises(AirmarkError, match="an older key.*--from KEY --threshold T"):
        keys.enhancer_twin(old)
    assert keys.enhancer_twin(old, threshold=6.5)["threshold"] == 6.5
    # a twin with fewer lag periods: the same mark, the J = 3 enhancer's threshold
    j3 = tmp_path / "j3.json"
    assert cli.main(["keygen", str(j3), "--from", str(plain), "--line-enhancer",
                     "--lag-periods", "3"]) == 0
    rec = json.loads(j3.read_text())
    src = json.loads(plain.read_text())
    assert rec["lag_periods"] == 3 and rec["line_enhancer"] == 1
    assert rec["threshold"] == keys.ENHANCED_J3_THRESHOLD
    assert [rec[f] for f in ("key_bits", "noise_seed", "key_id")] == \
        [src[f] for f in ("key_bits", "noise_seed", "key_id")]
    # but not more periods than the key's bits were chosen for
    capsys.readouterr()
    assert cli.main(["keygen", str(tmp_path / "j6.json"), "--from", str(j3),
                     "--lag-periods", "6"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chosen for 3 lag periods" in err[0]
    assert not (tmp_path / "j6.json").exists()


def test_detect_line_enhancer_flag_runs_the_keys_twin(tmp_path, capsys):
    import soundfile as sf

    from airmark import cli, embed, keys

    key = keys.generate(6)
    path = tmp_path / "key.json"
    keys.save(key, str(path))
    host = sg.music_like(6.0, seed=3)
    y, _ = embed.embed_array(host, FS, key, start_s=2.0, duration_s=2.0)
    wav = tmp_path / "m.wav"
    sf.write(wav, y, FS, subtype="PCM_16")
    capsys.readouterr()
    rc = cli.main(["detect", str(wav), "--key", str(path), "--line-enhancer", "--json"])
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert rc == 0 and lines[-1]["threshold"] == keys.ENHANCED_THRESHOLD
    assert lines[-1]["line_enhancer"] is True
    assert [ln for ln in lines if ln["event"] == "detection"]


def test_the_line_enhancer_finds_a_mark_on_a_lone_pure_tone():
    """One sine leaves the default detector's signs to its own zero crossings (docs/ALGORITHM.md
    §6), so a mark on it stays under the default threshold even digitally; the enhancer
    takes the tone out and finds it, and finds nothing on the unmarked tone."""
    from airmark import audio, embed, keys
    from airmark.detect import detect_samples
    key = keys.generate(5)
    twin = keys.enhancer_twin(key)
    fs = 44100
    x = 0.125 * np.sin(2 * np.pi * 440.0 * np.arange(6 * fs) / fs)
    y, info = embed.embed_array(x, fs, key, start_s=2.0, duration_s=2.0)
    assert -9.0 < info["whr_db"] < -6.0
    marked, plain = audio.to_detector_int16(y, fs), audio.to_detector_int16(x, fs)
    found = detect_samples(marked, twin)
    assert [round(e["t"]) for e in found.events] == [4]
    assert found.scores.max() > 3 * twin["threshold"]
    assert not detect_samples(plain, twin).events
    assert detect_samples(marked, key).scores.max() < key["threshold"]
