#!/usr/bin/env python3
"""Study of a line enhancer in front of the detector (docs/ALGORITHM.md §7). Not the product.

    python tools/enhancer_study.py [--delay 2] [--forgetting 0.9] [--fixed-q 7] eval ARGS...
    python tools/enhancer_study.py [options] calibrate ARGS...

Runs `airmark eval ARGS` or `tools/calibrate.py ARGS` with every detection going through
`enhance()` first. Per bin of a 256-point STFT (hop 128, the detector's hop), the enhancer
subtracts the part predictable from the same bin `--delay` hops earlier: a one-tap complex
predictor a = R_xy / R_xx, recursive with `--forgetting`. A room makes the host's partials
ring, and a sinusoid resembles itself at any lag; the mark changes pattern block and key sign
every block, so one block back (2 hops) nothing of it is predictable. The result is
resynthesised by overlap-add and scaled to a 20 000 peak before the unchanged detector.

`--fixed-q Q` computes both transforms as the board would: a radix-2 FFT with twiddles
rounded to Q bits, products rounded back by Q bits and every stage halved with rounding
(with Q = 7 every value stays exact in float32). Without it the transforms are float.

The eval's channel outputs are cached as usual; only the detection is new, so after a
normal `airmark eval` over the same grid a study run is quick.
"""

import argparse
import os
import runpy
import sys

import numpy as np

N = 256
HOP = 128
PEAK = 20000.0
# sqrt-Hann: analysis times synthesis is a Hann window, which sums to 1 at hop N/2
WINDOW = np.sqrt(np.hanning(N + 1)[:N])
_REV = np.array([int(format(i, "08b")[::-1], 2) for i in range(N)])


def _round_shift(a, bits):
    return (a + (1 << (bits - 1))) >> bits


def fft_fixed(re, im, q, inverse=False):
    """Rows of integer (re, im), length 256 -> their DFT / 256, in fixed point.

    Radix-2 decimation in time; twiddles round(2**q - 1) * e^(-+i pi j / half); each
    butterfly rounds the product back by q bits and halves the sum with rounding, so complex
    magnitudes never grow (a component stays within the input's peak magnitude)."""
    re = np.asarray(re, dtype=np.int64)[:, _REV]
    im = np.asarray(im, dtype=np.int64)[:, _REV]
    rows = re.shape[0]
    one = (1 << q) - 1
    half = 1
    while half < N:
        ang = (1.0 if inverse else -1.0) * np.pi * np.arange(half) / half
        wr = np.round(np.cos(ang) * one).astype(np.int64)
        wi = np.round(np.sin(ang) * one).astype(np.int64)
        re = re.reshape(rows, -1, 2 * half)
        im = im.reshape(rows, -1, 2 * half)
        ur, ui, vr, vi = re[..., :half], im[..., :half], re[..., half:], im[..., half:]
        tr = _round_shift(vr * wr - vi * wi, q)
        ti = _round_shift(vr * wi + vi * wr, q)
        re = np.concatenate([_round_shift(ur + tr, 1), _round_shift(ur - tr, 1)], axis=2)
        im = np.concatenate([_round_shift(ui + ti, 1), _round_shift(ui - ti, 1)], axis=2)
        re = re.reshape(rows, -1)
        im = im.reshape(rows, -1)
        half *= 2
    return re, im


def enhance(x, delay_hops=2, forgetting=0.9, fixed_q=None):
    """16 kHz samples -> int16 samples with the host's ringing partials taken out."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < N:
        return np.zeros(len(x), dtype=np.int16)
    frames = (len(x) - N) // HOP + 1
    idx = np.arange(N)[None, :] + HOP * np.arange(frames)[:, None]
    seg = x[idx] * WINDOW
    if fixed_q is None:
        spec = np.fft.fft(seg, axis=1) / N
    else:
        re, im = fft_fixed(np.round(seg), np.zeros(seg.shape), fixed_q)
        spec = re + 1j * im
    out = spec.copy()
    rxy = np.zeros(N, dtype=complex)
    rxx = np.full(N, 1e-9)
    for b in range(delay_hops, frames):
        past = spec[b - delay_hops]
        out[b] = spec[b] - (rxy / rxx) * past
        rxy = forgetting * rxy + spec[b] * np.conj(past)
        rxx = forgetting * rxx + np.abs(past) ** 2
    if fixed_q is None:
        frames_out = np.fft.ifft(out * N, axis=1).real
    else:
        # The inverse's input is the enhanced DFT / 256 times 16, well inside int16 for
        # int16 audio; its output is 16 * frame / 256. The peak scaling below sets the level.
        gain = 16.0
        frames_out, _ = fft_fixed(np.round(out.real * gain), np.round(out.imag * gain),
                                  fixed_q, inverse=True)
    y = np.zeros(len(x))
    for b in range(frames):
        y[b * HOP:b * HOP + N] += frames_out[b] * WINDOW
    peak = np.max(np.abs(y))
    if peak == 0:
        return np.zeros(len(x), dtype=np.int16)
    return np.round(y * (PEAK / peak)).astype(np.int16)


def install(delay_hops=2, forgetting=0.9, fixed_q=None):
    """Route airmark's detections (detect_samples, the eval's default detector) through
    enhance(). Returns the wrapped function."""
    import multiprocessing

    from airmark import detect, evaluate

    # The eval's worker processes must inherit the patch: fork them (the default on Linux
    # before Python 3.14, which moves to forkserver).
    if "fork" in multiprocessing.get_all_start_methods():
        multiprocessing.set_start_method("fork", force=True)
    original = detect.detect_samples

    def detect_samples(samples, key, **kwargs):
        return original(enhance(samples, delay_hops, forgetting, fixed_q), key, **kwargs)

    detect.detect_samples = detect_samples
    evaluate._default_detect = lambda: detect_samples
    return detect_samples


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay", type=int, default=2, help="hops back (default 2: one block)")
    ap.add_argument("--forgetting", type=float, default=0.9)
    ap.add_argument("--fixed-q", type=int, default=None, help="fixed-point twiddle bits")
    ap.add_argument("command", choices=("eval", "calibrate"))
    ap.add_argument("args", nargs=argparse.REMAINDER)
    opts = ap.parse_args(argv)
    if opts.delay < 1 or not 0.0 < opts.forgetting < 1.0 or \
            (opts.fixed_q is not None and not 2 <= opts.fixed_q <= 15):
        print("enhancer_study: need --delay >= 1, 0 < --forgetting < 1, 2 <= --fixed-q <= 15",
              file=sys.stderr)
        return 2
    install(opts.delay, opts.forgetting, opts.fixed_q)
    if opts.command == "eval":
        from airmark import cli

        return cli.main(["eval"] + opts.args)
    sys.argv = ["calibrate.py"] + opts.args
    here = os.path.dirname(os.path.abspath(__file__))
    runpy.run_path(os.path.join(here, "calibrate.py"), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
