"""Score plots: `airmark detect --plot` and the demo's per-room PNGs."""

import json
import os
import sys

import numpy as np
import soundfile as sf

import signals as sg
from airmark import cli, detect, keys
from airmark.score_plot import plot_scores

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _marked_wav(tmp_path, key):
    host = sg.music_like(7.0, seed=2)
    y, seg = sg.embed_reference(host, key, 2.0, -8.0)
    wav = tmp_path / "m.wav"
    sf.write(str(wav), sg.to_int16(y), 16000, subtype="PCM_16")
    keyfile = tmp_path / "k.json"
    keys.save(key, str(keyfile))
    return wav, keyfile, seg


def test_detect_plot_writes_a_png_and_leaves_no_temporary(tmp_path, key, capsys):
    wav, keyfile, _ = _marked_wav(tmp_path, key)
    png = tmp_path / "scores.png"
    assert cli.main(["detect", str(wav), "--key", str(keyfile), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".airmark-")] == []
    assert "detection at" in capsys.readouterr().out


def test_detect_plot_errors_are_one_line(tmp_path, key, capsys):
    wav, keyfile, _ = _marked_wav(tmp_path, key)
    rc = cli.main(["detect", str(wav), "--key", str(keyfile), "--plot", str(tmp_path / "no" / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("airmark: cannot write the plot")
    rc = cli.main(["detect", str(wav), "--key", str(keyfile), "--micropython", "mp",
                   "--plot", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "--plot" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_plot_marks_the_threshold_and_detections(tmp_path, key):
    """The figure holds the result's per-hop scores against time, a line at the threshold,
    a marker at each detection and the shaded mark; the PNG is that figure."""
    from airmark.score_plot import score_figure
    wav, _keyfile, seg = _marked_wav(tmp_path, key)
    x, _ = sf.read(str(wav), dtype="int16")
    res = detect.detect_samples(x, key)
    assert res.events
    fig = score_figure([("marked", res)], key["threshold"], marks=[seg])
    try:
        ax = fig.axes[0]
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        trace = lines["marked"]
        assert np.array_equal(trace.get_ydata(), res.scores)
        assert np.allclose(trace.get_xdata(), (np.arange(len(res.scores)) + 1) * res.hop_s)
        thr = lines["threshold %.2f" % key["threshold"]]
        assert list(thr.get_ydata()) == [key["threshold"]] * 2
        markers = [ln for ln in ax.get_lines() if ln.get_marker() == "v"]
        assert len(markers) == 1
        assert list(markers[0].get_xdata()) == [e["t"] for e in res.events]
        assert list(markers[0].get_ydata()) == [e["score"] for e in res.events]
        span = ax.patches[0].get_extents()  # the shaded mark, in display units
        x0, x1 = ax.transData.inverted().transform([[span.x0, 0], [span.x1, 0]])[:, 0]
        assert abs(x0 - seg[0]) < 0.01 and abs(x1 - seg[1]) < 0.01
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)
    png = tmp_path / "a.png"
    plot_scores(str(png), [("marked", res)], key["threshold"], marks=[seg])
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_demo_runs_end_to_end_and_draws_each_room(tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import demo
    finally:
        sys.path.remove(os.path.join(ROOT, "tools"))
    assert demo.main(["--out", str(tmp_path), "--preset", "near-1m"]) == 0
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "result.json").read_text())
    room = res["rooms"][0]
    assert room["preset"] == "near-1m" and room["detected"] and room["unmarked_events"] == []
    assert (tmp_path / "scores-near-1m.png").read_bytes()[:8] == PNG_MAGIC
    assert "scores-near-1m.png" in out and "DETECTED" in out
    # the same mark through the detector with its line enhancer: found, unmarked quiet
    enh = room["line_enhancer"]
    assert len(enh["events"]) == 1 and enh["unmarked_max_score"] < 6.0 < enh["max_score"]
