"""tools/bench.py runs against the real detector and reports every figure it promises."""

import json
import os
import subprocess
import sys

import fw_helpers as h
from conftest import require_tool


def test_bench_json():
    """The memory figures against their sources: the detector's own state_bytes() and the
    Pico board definition's capture buffers (raw 32-bit words, plus one dense int16 hop)."""
    from airmark import fw
    root = os.path.dirname(h.TOOLS)
    key_path = os.path.join(root, "tests", "golden", "key.json")
    r = subprocess.run([sys.executable, os.path.join(h.TOOLS, "bench.py"), key_path,
                        "--seconds", "0.5", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    key = json.load(open(key_path))
    det = fw.module("airmark_detector").Detector(key)
    assert d["npairs"] == det.npairs and d["ops_per_hop"]["corr_calls"] == det.npairs
    for k in ("rp2040_125mhz_viper_us", "rp2040_125mhz_ulab_only_us"):
        assert 0 < d[k]["share_low_pct"] <= d[k]["share_typical_pct"]
    assert d["state_bytes"] == det.state_bytes()
    pico = json.load(open(os.path.join(root, "boards", "pico-inmp441.json")))
    buf = pico["buffers"]
    assert d["capture_bytes_rp2"] == buf["n_bufs"] * buf["hop_samples"] * 4 + 2 * det.hop_samples
    assert d["arrays_bytes"] == d["state_bytes"] + d["capture_bytes_rp2"]


def test_bench_viper_reports_the_hop_and_its_kernels():
    """tools/bench_viper.py under real MicroPython: the hop, its three kernels, the load."""
    require_tool("micropython")
    root = os.path.dirname(h.TOOLS)
    r = subprocess.run([h.micropython_bin(), os.path.join(h.TOOLS, "bench_viper.py"),
                        os.path.join(root, "tests", "golden", "key.json")],
                       capture_output=True, text=True, timeout=120, cwd=root)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert d["lag_pairs"] == 9 and d["hop_samples"] == 128
    assert d["kernels"] == "viper"  # the unix port has no Thumb assembler
    parts = [d[k] for k in ("features_over_dot1024", "pairs_over_dot1024", "best_over_dot1024")]
    assert all(p > 0 for p in parts)
    assert d["hop_over_dot1024"] > 0
    assert d["rp2040_125mhz_load_pct"] > d["esp32_240mhz_load_pct_clock_scaled"] > 0
    # The second reference: the same dot in bytecode, which is tens of times the viper
    # dot on any port (14x on an RP2040); the glue is what the kernels leave of the hop.
    assert d["bytecode_dot1024_over_dot1024"] > 3
    assert d["glue_over_bytecode_dot1024"] >= 0
    assert d["rp2040_125mhz_load_pct_viper_scaled"] > 0


def test_bench_viper_main_takes_a_path_without_argv():
    """Boards without sys.argv (the rp2 port) call main(path); off a board no board fields."""
    require_tool("micropython")
    root = os.path.dirname(h.TOOLS)
    code = ("import sys; sys.path.insert(0, 'tools'); import bench_viper; "
            "bench_viper.main('tests/golden/key.json')")
    r = subprocess.run([h.micropython_bin(), "-c", code], capture_output=True, text=True,
                       timeout=120, cwd=root)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert d["lag_pairs"] == 9 and "board_hop_us" not in d


def test_bench_viper_times_the_thumb_calls_and_the_enhancer(tmp_path):
    """Where the Thumb module loads (ARM boards), bench_viper times the Thumb calls feed
    makes in place of features and hop_pairs, and says so; with an enhancer key it times the enhancer
    as a kernel, not as glue. Unix MicroPython has no Thumb assembler, so a stand-in
    module that counts its calls takes airmark_viper_thumb's place."""
    require_tool("micropython")
    import shutil
    root = os.path.dirname(h.TOOLS)
    fw_dir = tmp_path / "firmware"
    tools_dir = tmp_path / "tools"
    fw_dir.mkdir()
    tools_dir.mkdir()
    for name in ("airmark_detector", "airmark_viper", "airmark_key", "airmark_enhancer",
                 "airmark_enhancer_viper"):
        shutil.copy(os.path.join(h.FIRMWARE, name + ".py"), fw_dir)
    shutil.copy(os.path.join(h.TOOLS, "bench_viper.py"), tools_dir)
    (fw_dir / "airmark_viper_thumb.py").write_text(
        "calls = [0, 0, 0]\n"
        "def pair_stats(st, feat, d, ctl):\n    calls[0] += 1\n"
        "def matched_filters(st, d, pos, ctl):\n    calls[1] += 1\n"
        "def hop_features(x, xa, bits, fctl):\n    calls[2] += 1\n")
    code = ("import sys; sys.path.insert(0, 'tools'); import bench_viper, airmark_viper_thumb as t; "
            "bench_viper.main(%r); print(*t.calls)")
    runs = {}
    for name in ("golden", "golden-enh"):
        key = os.path.join(root, "tests", name, "key.json")
        r = subprocess.run([h.micropython_bin(), "-c", code % key], capture_output=True,
                           text=True, timeout=120, cwd=str(tmp_path))
        assert r.returncode == 0, r.stderr
        lines = r.stdout.strip().splitlines()
        runs[name] = (json.loads(lines[-2]), [int(v) for v in lines[-1].split()])
    d, calls = runs["golden"]
    assert d["kernels"] == "viper+thumb"
    # feed: 300 warm-up + 5 x 200 timed hops; each kernel alone: 5 x 200 more calls
    assert calls == [2300, 2300, 2300]
    assert d["pairs_over_dot1024"] > 0 and d["enhancer_over_dot1024"] == 0
    d, calls = runs["golden-enh"]
    assert d["kernels"] == "viper+thumb,enhancer:viper"
    assert d["enhancer_over_dot1024"] > d["features_over_dot1024"] > 0
