"""Markdown report, JSON and PNG plots from an :func:`airmark.evaluate.run_eval` summary."""

import json
from pathlib import Path

import numpy as np

from .evaluate import POINT_KEYS, RT60_TOLERANCE

PLOTS = {"distance": "detection_vs_distance.png", "roc": "detection_vs_false_alarms.png",
         "latency": "latency_hist.png"}


def _varying(points):
    return [k for k in POINT_KEYS if len({json.dumps(p[k]) for p in points}) > 1]


def _fmt_point(p, keys):
    names = {"distance_m": "%.1f m", "rt60_s": "RT60 %.2f s", "snr_db": "SNR %g dB",
             "drift_ppm": "%+g ppm", "codec": "%s", "spatial": "%s", "noise": "%s"}
    out = []
    for k in keys:
        v = p[k]
        if k == "codec":
            out.append(v or "no codec")
        elif k == "spatial":
            out.append("spatial" if v else "mono speaker")
        else:
            out.append(names[k] % v)
    return ", ".join(out)


def plot_all(summary, out_dir):
    """Write the PNGs; returns {name: filename}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    points = summary["points"]
    made = {}

    # detection rate vs distance, one line per combination of the other varying knobs
    others = [k for k in _varying(points) if k != "distance_m"]
    groups = {}
    for p in points:
        groups.setdefault(json.dumps([p[k] for k in others]), []).append(p)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for gk, ps in sorted(groups.items()):
        ps = sorted(ps, key=lambda p: p["distance_m"])
        d = [p["distance_m"] for p in ps]
        r = np.array([p["rate"] for p in ps]) * 100
        lo = np.maximum(r - np.array([p["wilson95"][0] for p in ps]) * 100, 0)
        hi = np.maximum(np.array([p["wilson95"][1] for p in ps]) * 100 - r, 0)
        label = _fmt_point(ps[0], others) if others else "all"
        ax.errorbar(d, r, yerr=[lo, hi], marker="o", capsize=3, label=label)
    ax.axvline(6.1, color="grey", ls=":", lw=1)
    ax.axhline(99, color="grey", ls="--", lw=1)
    ax.set_xlabel("speaker-to-mic distance (m)")
    ax.set_ylabel("detection rate (%), Wilson 95 % interval")
    ax.set_ylim(-2, 102)
    ax.set_title("%.1f s marks, key %s, threshold %.2f" % (
        summary["options"]["mark_s"], summary["key_id"], summary["threshold"]))
    if len(groups) > 1:
        ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS["distance"], dpi=110)
    plt.close(fig)
    made["distance"] = PLOTS["distance"]

    # detection rate against false alarms per hour as the threshold moves
    c = summary["curve"]
    fa = np.array(c["fa_per_hour"])
    det = np.array(c["detection"]) * 100
    floor = 1.0 / max(summary["overall"]["unmarked_hours"], 1e-9)  # one event in the run
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(np.maximum(fa, floor / 10), det, "-", lw=1.5)
    th = np.array(c["threshold"])
    i = int(np.argmin(np.abs(th - summary["threshold"])))
    ax.plot(max(fa[i], floor / 10), det[i], "o", color="C3",
            label="threshold %.2f: %.1f %%, %.2f FA/h" % (th[i], det[i], fa[i]))
    ax.axvline(0.1, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("false alarms per hour (unmarked audio, same channels)")
    ax.set_ylabel("detection rate (%)")
    ax.set_title("Threshold sweep over all grid points (%.2f h unmarked)"
                 % summary["overall"]["unmarked_hours"])
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS["roc"], dpi=110)
    plt.close(fig)
    made["roc"] = PLOTS["roc"]

    lat = summary["latencies_s"]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    if lat:
        ax.hist(lat, bins=30, color="C2")
        ax.axvline(float(np.median(lat)), color="k", ls="--", lw=1,
                   label="median %.2f s" % np.median(lat))
        ax.legend()
    ax.set_xlabel("latency: detection event minus end of mark (s)")
    ax.set_ylabel("detections")
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS["latency"], dpi=110)
    plt.close(fig)
    made["latency"] = PLOTS["latency"]
    return made


def _pct(x):
    return "—" if x is None else "%.1f %%" % (100 * x)


def _num(x, f="%.2f"):
    return "—" if x is None else f % x


def markdown(summary, plots, command=None):
    """The report as markdown text."""
    pts = summary["points"]
    var = _varying(pts) or ["distance_m"]
    fixed = [k for k in POINT_KEYS if k not in var]
    o = summary["options"]
    lines = ["# airmark over-the-air evaluation", ""]
    if command:
        lines += ["Made with:", "", "```", command, "```", ""]
    lines += ["Key `%s`%s, threshold %.2f; %.1f s marks at strength %+.1f dB, a random start in "
              "each clip; a detection counts from the start of the mark to %.1f s after its "
              "end. Corpus: %d clips (%s). %d grid points, %d marked and %d unmarked clips "
              "through the channel, %.2f h of unmarked audio; %.0f s."
              % (summary["key_id"],
                 " with the line enhancer" if summary.get("line_enhancer") else "",
                 summary["threshold"], o["mark_s"], o["strength_db"],
                 o["max_latency_s"], summary["corpus"]["clips"],
                 ", ".join("%s %d" % kv for kv in summary["corpus"]["categories"].items()),
                 len(pts), summary["overall"]["n"], summary["overall"]["n"],
                 summary["overall"]["unmarked_hours"], summary["elapsed_s"]), ""]
    if fixed:
        lines += ["Same for every point: %s (channel preset `%s` for the rest)."
                  % (_fmt_point(pts[0], fixed), o["base_preset"]), ""]
    misses = summary.get("rt60_misses") or []
    if misses:
        lines += ["**%d of the rooms missed their RT60 by more than %d %%** (in large, low "
                  "rooms the simulated decay strays from the target; their rows describe other "
                  "rooms than they say): %s."
                  % (len(misses), round(100 * RT60_TOLERANCE), "; ".join(
                      "%g m, RT60 %.2f s measured %.2f s" % (m["point"]["distance_m"],
                                                             m["rt60_s"], m["rt60_measured_s"])
                      for m in misses[:6]) + ("; …" if len(misses) > 6 else "")), ""]
    if o.get("positions"):
        lines += ["Microphone: %d seeded placements per point at its distance (azimuth within "
                  "±30° as the room allows, height 0.9–1.6 m), taken in turn by each "
                  "category's clips; `--positions 0` uses the preset's single spot."
                  % o["positions"], ""]
    else:
        lines += ["Microphone: the preset's single placement at every distance.", ""]
    t = summary.get("target_result")
    if t:
        tg = summary["target"]
        drifts = t.get("drifts_ppm")
        drift = ("/".join("%+g" % d for d in drifts) if drifts
                 else "±%g" % tg["drift_abs_ppm"])
        lines += ["## Target: %.1f m, RT60 %.1f s, SNR %g dB, %s ppm" % (
            tg["distance_m"], tg["rt60_s"], tg["snr_db"], drift), "",
            "Detection %s (Wilson 95 %%: %s–%s, %d/%d; target ≥ %s): **%s**. "
            "False alarms %s per hour (%d in %.2f h, 95 %% upper bound %s/h; target ≤ %g): "
            "**%s**." % (
                _pct(t["rate"]), _pct(t["wilson95"][0]), _pct(t["wilson95"][1]),
                t["detected"], t["n"], _pct(tg["detection"]),
                "met" if t["meets_detection"] else "missed",
                _num(t["fa_per_hour"]), t["false_alarms"], t["unmarked_hours"],
                _num(t["fa_per_hour_upper95"]), tg["fa_per_hour"],
                "met" if t["meets_false_alarms"] else "missed"), ""]
    lines += ["## Detection by channel", "",
              "| " + " | ".join(_head(k) for k in var) +
              " | detected | rate | Wilson 95 % | FA/h | median latency | WHR dB |",
              "|" + "---|" * (len(var) + 6)]
    for p in pts:
        cells = [_cell(k, p[k]) for k in var]
        cells += ["%d/%d" % (p["detected"], p["n"]), _pct(p["rate"]),
                  "%s–%s" % (_pct(p["wilson95"][0]), _pct(p["wilson95"][1])),
                  "%s (%d)" % (_num(p["fa_per_hour"]), p["false_alarms"]),
                  _num(p["latency_median_s"], "%.2f s"), _num(p["whr_db_mean"], "%.1f")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## By category (all grid points)", "",
              "| category | detected | rate | Wilson 95 % | false alarms | FA/h | WHR dB |",
              "|---|---|---|---|---|---|---|"]
    for c, a in summary["by_category"].items():
        lines.append("| %s | %d/%d | %s | %s–%s | %d | %s | %s |" % (
            c, a["detected"], a["n"], _pct(a["rate"]), _pct(a["wilson95"][0]),
            _pct(a["wilson95"][1]), a["false_alarms"], _num(a["fa_per_hour"]),
            _num(a["whr_db_mean"], "%.1f")))
    by_rt60 = summary.get("by_rt60") or []
    if len(by_rt60) > 1:
        cats = list(summary["by_category"])
        lines += ["", "## By RT60 (every other grid axis pooled)", "",
                  "| RT60 | " + " | ".join(cats) + " | all |",
                  "|" + "---|" * (len(cats) + 2)]
        for row in by_rt60:
            cells = ["%d/%d" % (row["by_category"][c]["detected"], row["by_category"][c]["n"])
                     for c in cats]
            lines.append("| %g s | %s | %d/%d (%s) |" % (
                row["rt60_s"], " | ".join(cells), row["detected"], row["n"], _pct(row["rate"])))
    v = summary.get("visqol")
    if v and "error" not in v:
        lines += ["", "## Quality (ViSQOL audio mode, embedded vs original)", "",
                  "MOS-LQO on %.0f s around the mark, %d clips: mean %.2f, lowest %.2f." % (
                      v["segment_s"], len(v["clips"]), v["mean_moslqo"], v["min_moslqo"]),
                  "", "| clip | category | MOS-LQO |", "|---|---|---|"]
        lines += ["| %s | %s | %.2f |" % (r["clip"], r["category"], r["moslqo"])
                  for r in v["clips"]]
    elif v:
        lines += ["", "ViSQOL: %s" % v["error"]]
    lines += ["", "## Plots", ""]
    titles = {"distance": "Detection rate vs distance", "roc":
              "Detection rate vs false alarms per hour (threshold sweep)",
              "latency": "Latency from the end of the mark to the event"}
    for name, fn in plots.items():
        lines += ["![%s](%s)" % (titles[name], fn), ""]
    return "\n".join(lines) + "\n"


def _head(k):
    return {"distance_m": "distance", "rt60_s": "RT60", "snr_db": "SNR", "drift_ppm": "drift",
            "codec": "codec", "spatial": "spatial", "noise": "noise"}[k]


def _cell(k, v):
    if k == "distance_m":
        return "%.1f m" % v
    if k == "rt60_s":
        return "%.2f s" % v
    if k == "snr_db":
        return "%g dB" % v
    if k == "drift_ppm":
        return "%+g ppm" % v
    if k == "codec":
        return v or "none"
    if k == "spatial":
        return "on" if v else "off"
    return str(v)


def write_report(summary, out_dir, command=None):
    """report.md, results.json and the PNGs into out_dir; returns the report path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = plot_all(summary, out_dir)
    summary["plots"] = plots
    (out_dir / "results.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    path = out_dir / "report.md"
    path.write_text(markdown(summary, plots, command))
    return path
