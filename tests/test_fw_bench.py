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
