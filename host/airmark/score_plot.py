"""PNG of the detector's score over time: traces, the key's threshold and the detections."""

from . import fsutil
from .errors import AirmarkError, ToolMissing


def score_figure(traces, threshold, *, title=None, marks=()):
    """The matplotlib figure :func:`plot_scores` saves (Agg backend); close it when done.

    traces: list of (label, DetectResult) with per-hop scores (from `detect_samples`);
    marks: list of (start_s, end_s) spans to shade, e.g. where a mark was embedded.
    """
    try:
        import matplotlib
    except ImportError:
        raise ToolMissing("plots need matplotlib: pip install 'airmark[room]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 3.6))
    for start, end in marks:
        ax.axvspan(start, end, color="0.9", zorder=0, label="mark")
    for i, (label, res) in enumerate(traces):
        t = (np.arange(len(res.scores)) + 1) * res.hop_s
        color = "C%d" % (i % 10)
        ax.plot(t, res.scores, lw=0.9, color=color, label=label)
        if res.events:
            ax.plot([e["t"] for e in res.events], [e["score"] for e in res.events], "v",
                    color=color, ms=8)
    ax.axhline(threshold, color="C3", ls="--", lw=1, label="threshold %.2f" % threshold)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    seen = {}
    for hnd, lab in zip(handles, labels):
        seen.setdefault(lab, hnd)
    ax.legend(seen.values(), seen.keys(), loc="upper left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_scores(path, traces, threshold, *, title=None, marks=()):
    """Write the PNG of :func:`score_figure` to `path` (atomically)."""
    import matplotlib.pyplot as plt

    fig = score_figure(traces, threshold, title=title, marks=marks)
    try:
        with fsutil.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    except OSError as exc:
        raise AirmarkError("cannot write the plot %s: %s" % (path, exc.strerror or exc)) from None
    finally:
        plt.close(fig)
    return path
