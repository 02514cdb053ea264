"""tools/bench.py runs against the real detector and reports every figure it promises."""

import json
import os
import subprocess
import sys

import fw_helpers as h


def test_bench_json():
    r = subprocess.run([sys.executable, os.path.join(h.TOOLS, "bench.py"), "--seconds", "0.5", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["ops_per_hop"]["corr_calls"] == d["npairs"]
    for k in ("rp2040_125mhz_viper_us", "rp2040_125mhz_ulab_only_us"):
        assert 0 < d[k]["share_low_pct"] <= d[k]["share_typical_pct"]
    assert d["arrays_bytes"] == d["state_bytes"] + d["capture_bytes_rp2"]
