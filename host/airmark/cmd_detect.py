"""airmark detect IN --key KEYFILE: run the firmware detector over an audio file."""

import json
import os

import click

from . import detect as detect_lib
from . import keys
from .progress import progress_bar


@click.command()
@click.argument("infile", type=click.Path(dir_okay=False))
@click.option("--key", "keyfile", required=True, type=click.Path(dir_okay=False), help="Key file.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--micropython", "micropython", default=None, metavar="BIN",
              help="Run the board's replay loop under this MicroPython (viper kernels, or ulab) instead of CPython.")
@click.option("--per-hop", is_flag=True,
              help="Call the core once per 8 ms hop as the board does, instead of its vectorised "
                   "twin (same results, about 15x slower).")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False), metavar="PNG",
              help="Also draw the score over time, the threshold and the detections into PNG.")
@click.option("--line-enhancer", is_flag=True,
              help="Detect the key's mark with the line enhancer in front and its calibrated "
                   "threshold (docs/ALGORITHM.md §8), whether or not the key file asks for it.")
def command(infile, keyfile, as_json, micropython, per_hop, plot_path, line_enhancer):
    """Detect the watermark in IN as the board would (16 kHz mono int16).

    Exit code 0 with at least one detection, 1 with none, 2 on error.
    """
    if micropython is not None and not micropython.strip():
        raise click.BadParameter("empty path", param_hint="'--micropython'")
    if plot_path:
        if not plot_path.lower().endswith(".png"):
            raise click.BadParameter("%r: the plot is a PNG file; name it *.png" % plot_path,
                                     param_hint="'--plot'")
        for other in (infile, keyfile):
            if os.path.exists(plot_path) and os.path.exists(other) and \
                    os.path.samefile(plot_path, other):
                raise click.BadParameter("%s is an input; refusing to overwrite it" % plot_path,
                                         param_hint="'--plot'")
    key = keys.load(keyfile)
    if line_enhancer and not key.get("line_enhancer"):
        key = keys.enhancer_twin(key)
    if plot_path and micropython:
        raise click.UsageError("--plot needs the per-hop scores of the CPython run; drop --micropython")
    if micropython:  # the file goes to the replay as a 16 kHz WAV, written block by block
        res, _lines = detect_lib.detect_file_micropython(infile, key, micropython)
    else:
        with progress_bar("detecting", disable=as_json) as update:
            res = detect_lib.detect_file(infile, key, progress=update, per_hop=per_hop)
    _report(res, infile, as_json, micropython, per_hop, plot_path)
    return 0 if res.events else 1


def _report(res, infile, as_json, micropython, per_hop, plot_path):
    for ev in res.events:
        if as_json:
            click.echo(json.dumps({"event": "detection", "t": ev["t"], "score": ev["score"]}))
        else:
            click.echo("detection at %8.3f s  score %6.2f" % (ev["t"], ev["score"]))
    if plot_path:
        from .score_plot import plot_scores

        plot_scores(plot_path, [(os.path.basename(infile), res)], res.threshold,
                    title="airmark detect, key %s" % res.key_id)
    summ = res.summary()
    summ["runtime"] = "micropython" if micropython else "cpython"
    if not micropython:
        summ["path"] = "per-hop" if per_hop else "batch"
    if as_json:
        click.echo(json.dumps(summ))
    else:
        click.echo("%d detection(s) in %.1f s of audio; max score %.2f (threshold %.2f), key %s" % (
            summ["detections"], summ["duration_s"], summ["max_score"], summ["threshold"], summ["key"]))
