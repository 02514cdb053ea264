"""airmark quality ORIGINAL MARKED: how audible the mark is (ViSQOL, audio mode)."""

import json

import click

from . import quality
from .clitypes import FiniteFloat
from .progress import progress_bar


@click.command()
@click.argument("original", type=click.Path(dir_okay=False))
@click.argument("marked", type=click.Path(dir_okay=False))
@click.option("--windows", "max_windows", type=click.IntRange(1, 100), default=quality.MAX_WINDOWS,
              show_default=True, help="Windows measured: those where the mark is loudest "
                                      "against the host.")
@click.option("--min-visqol", "floor", type=FiniteFloat(1.0, 5.0), default=None,
              metavar="MOS", help="Exit 1 when the lowest window scores under MOS.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def command(original, marked, max_windows, floor, as_json):
    """ViSQOL (audio mode, 48 kHz) of MARKED against ORIGINAL.

    The marked segments come from MARKED's sidecar (MARKED.airmark.json) when it has one,
    otherwise the whole file. They are cut into 4 s windows; the --windows ones with the
    highest mark-to-host power ratio are measured (about 1.2 s of CPU per second of
    audio), and the lowest score is the verdict.
    """
    with progress_bar("ViSQOL", disable=as_json) as update:
        res = quality.measure_files(original, marked, max_windows=max_windows, progress=update)
    low = res["min_moslqo"]
    ok = floor is None or (low is not None and low >= floor)
    if as_json:
        res["floor"] = floor
        res["pass"] = ok
        click.echo(json.dumps(res))
    else:
        for w in res["windows"]:
            click.echo("%8.2f-%.2f s  mark %s dB under the host  ViSQOL %s" % (
                w["start_s"], w["end_s"],
                "n/a" if w["mhr_db"] is None else "%.1f" % -w["mhr_db"],
                "n/a (silent)" if w["moslqo"] is None else "%.3f" % w["moslqo"]))
        if low is None:
            click.echo("no score: every measured window of %s is silent" % original)
        else:
            click.echo("ViSQOL %.3f (lowest of %d of %d windows; mean %.3f)%s" % (
                low, len(res["windows"]), res["candidates"], res["mean_moslqo"],
                "" if floor is None else (", floor %.2f: %s" % (floor, "met" if ok else
                                                                 "NOT met"))))
    return 0 if ok else 1
