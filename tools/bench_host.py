#!/usr/bin/env python3
"""Host speed in x real time: embed, detect under CPython, detect under MicroPython; and
the host's peak memory for short and long files (Linux).

    python tools/bench_host.py [--seconds S] [--micropython BIN] [--memory-minutes M] [--json]

All three are timed in one run on the same machine, best of 3 (other processes
only ever slow a run down):

- embed: `embed.embed_file` on S seconds of 44.1 kHz stereo PCM_16 (read, mark,
  limit, write, sidecar), CPU and wall time;
- detect (CPython): `detect.detect_samples` on S seconds of 16 kHz int16, through the
  core's vectorised twin `airmark_batch` (what `airmark detect` runs), with the key and
  with its line-enhancer twin (docs/ALGORITHM.md §8), and, for comparison, through the
  core's per-hop array-ops path (`--per-hop`);
- detect (MicroPython): `detect.detect_file_micropython`, the board's replay loop
  with the viper kernels, wall time including interpreter start, the WAV write and
  JSON parsing (`airmark detect --micropython BIN`).

Memory: `airmark embed` and `airmark detect` run as separate processes on 1 minute and on
M minutes (default 10; 0 skips) of 44.1 kHz stereo PCM_16, and each one's peak resident
memory (the kernel's maxrss) is reported: both stream, so the long file needs what the
short one does.

The issue's targets: embed >= 100x, detect >= 300x real time on one core.
"""

import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import toolcli
from airmark import detect, embed, keys
from airmark.progress import progress_bar


def best_of(fn, runs=3):
    walls, cpus = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def bench(seconds, micropython, progress=None):
    import soundfile as sf
    steps = 5 if micropython else 4

    def step(done):
        if progress is not None:
            progress(done, steps)

    key = keys.generate(seed=1)
    rng = np.random.default_rng(0)
    out = {"seconds": seconds}
    with tempfile.TemporaryDirectory(prefix="airmark-bench-") as tmp:
        fs = 44100
        n = int(seconds * fs)
        t = np.arange(n) / fs
        x = 0.2 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.05 * rng.standard_normal((n, 2))
        src = os.path.join(tmp, "in.wav")
        sf.write(src, x.astype(np.float32), fs, subtype="PCM_16")
        wall, cpu = best_of(lambda: embed.embed_file(src, os.path.join(tmp, "out.wav"), key,
                                                     overwrite=True))
        out["embed"] = {"x_realtime": round(seconds / wall, 1),
                        "x_realtime_cpu": round(seconds / cpu, 1)}
    step(1)
    x16 = (rng.standard_normal(int(seconds * 16000)) * 3000).astype(np.int16)
    wall, cpu = best_of(lambda: detect.detect_samples(x16, key))
    out["detect_cpython"] = {"x_realtime": round(seconds / wall, 1),
                             "x_realtime_cpu": round(seconds / cpu, 1)}
    step(2)
    twin = keys.enhancer_twin(key)
    wall, cpu = best_of(lambda: detect.detect_samples(x16, twin))
    out["detect_cpython_line_enhancer"] = {"x_realtime": round(seconds / wall, 1),
                                           "x_realtime_cpu": round(seconds / cpu, 1)}
    step(3)
    wall, cpu = best_of(lambda: detect.detect_samples(x16, key, per_hop=True))
    out["detect_cpython_per_hop"] = {"x_realtime": round(seconds / wall, 1),
                                     "x_realtime_cpu": round(seconds / cpu, 1)}
    step(4)
    if micropython:
        wall, _ = best_of(lambda: detect.detect_file_micropython(x16, key, micropython))
        out["detect_micropython"] = {"x_realtime": round(seconds / wall, 1),
                                     "binary": os.path.basename(micropython)}
        step(5)
    return out


# The child reports its own high-water mark (VmHWM, Linux): the kernel's maxrss of a child
# starts from its parent's when it is spawned, so wait4 would report the bench's own size.
_HWM = ("import sys\n"
        "from airmark.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "kb = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "sys.stderr.write('VMHWM_KB %s\\n' % kb[0])\n"
        "sys.exit(rc)\n")


def _peak_rss_mb(args):
    """Run `airmark ARGS` in a fresh interpreter; its peak resident memory in MB."""
    import subprocess
    r = subprocess.run([sys.executable, "-c", _HWM] + args, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    lines = r.stderr.strip().splitlines()
    if r.returncode not in (0, 1) or not lines or not lines[-1].startswith("VMHWM_KB "):
        raise toolcli.ToolError("airmark %s failed: %s" % (args[0], lines[-1:] or r.returncode))
    return round(int(lines[-1].split()[1]) / 1024.0, 1)


def memory(minutes, progress=None):
    """Peak RSS of embed and detect, each in its own process, on 1 and `minutes` minutes."""
    import soundfile as sf
    key = keys.generate(seed=1)
    rng = np.random.default_rng(0)
    fs = 44100
    out = {"minutes": [1, minutes]}
    lengths = (1, minutes)
    with tempfile.TemporaryDirectory(prefix="airmark-mem-") as tmp:
        keyfile = os.path.join(tmp, "key.json")
        keys.save(key, keyfile)
        for k, mins in enumerate(lengths):
            src = os.path.join(tmp, "in%d.wav" % mins)
            with sf.SoundFile(src, "w", fs, 2, subtype="PCM_16") as f:
                for i in range(mins * 6):  # 10 s at a time
                    t = (np.arange(10 * fs) + i * 10 * fs) / fs
                    x = 0.2 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.05 * rng.standard_normal((10 * fs, 2))
                    f.write(x.astype(np.float32))
            dst = os.path.join(tmp, "out%d.wav" % mins)
            out.setdefault("embed_peak_rss_mb", []).append(
                _peak_rss_mb(["embed", src, dst, "--key", keyfile]))
            out.setdefault("detect_peak_rss_mb", []).append(
                _peak_rss_mb(["detect", dst, "--key", keyfile, "--json"]))
            for p in (src, dst, dst + ".airmark.json"):
                if os.path.exists(p):
                    os.unlink(p)
            if progress is not None:
                progress(k + 1, len(lengths))
    return out


def main(argv=None):
    ap = toolcli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=toolcli.finite_float, default=60.0)
    ap.add_argument("--micropython", default=shutil.which("micropython"),
                    help="MicroPython binary (default: `micropython` on PATH; '' skips)")
    ap.add_argument("--memory-minutes", type=int, default=10, metavar="M",
                    help="peak memory of embed and detect on 1 and M minutes of audio (0 skips)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.memory_minutes < 0:
        ap.error("--memory-minutes must be >= 0")
    if args.seconds < 5:
        ap.error("--seconds must be at least 5")
    if args.micropython and shutil.which(args.micropython) is None:
        ap.error("--micropython: no such program %r ('' skips it)" % args.micropython)
    with progress_bar("bench", disable=args.json) as update:
        r = bench(args.seconds, args.micropython or None, progress=update)
    if args.memory_minutes:
        with progress_bar("memory", disable=args.json) as update:
            r["memory"] = memory(args.memory_minutes, progress=update)
    if args.json:
        print(json.dumps(r))
        return 0
    print("host speed over %.0f s of audio (best of 3), x real time" % r["seconds"])
    print("  embed 44.1 kHz stereo     %7.1f wall  %7.1f cpu   (target >= 100)"
          % (r["embed"]["x_realtime"], r["embed"]["x_realtime_cpu"]))
    print("  detect, CPython + numpy   %7.1f wall  %7.1f cpu   (target >= 300)"
          % (r["detect_cpython"]["x_realtime"], r["detect_cpython"]["x_realtime_cpu"]))
    print("  detect, line enhancer     %7.1f wall  %7.1f cpu   (target >= 300)"
          % (r["detect_cpython_line_enhancer"]["x_realtime"],
             r["detect_cpython_line_enhancer"]["x_realtime_cpu"]))
    print("  detect, CPython --per-hop %7.1f wall  %7.1f cpu"
          % (r["detect_cpython_per_hop"]["x_realtime"], r["detect_cpython_per_hop"]["x_realtime_cpu"]))
    if "detect_micropython" in r:
        print("  detect, --micropython     %7.1f wall               (target >= 300)"
              % r["detect_micropython"]["x_realtime"])
    else:
        print("  detect, --micropython     skipped (no micropython binary)")
    if "memory" in r:
        m = r["memory"]
        print("peak memory (RSS, MB) of one process, 44.1 kHz stereo: %d min / %d min"
              % tuple(m["minutes"]))
        print("  airmark embed             %7.1f / %.1f" % tuple(m["embed_peak_rss_mb"]))
        print("  airmark detect            %7.1f / %.1f" % tuple(m["detect_peak_rss_mb"]))
    return 0


if __name__ == "__main__":
    sys.exit(toolcli.run("bench_host", main))
