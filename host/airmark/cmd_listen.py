"""airmark listen --key KEY: the board's detector on this computer's microphone, live."""

import json
import sys

import click

from . import keys
from . import listen as listen_lib
from .clitypes import FiniteFloat


@click.command()
@click.option("--key", "keyfile", required=True, type=click.Path(dir_okay=False), help="Key file.")
@click.option("--device", default=None,
              help="Input device: index or name (see `python -m sounddevice`).")
@click.option("--duration", "duration_s", type=FiniteFloat(0.0, None, min_open=True),
              default=None, metavar="S", help="Stop after S seconds of audio (default: Ctrl-C).")
@click.option("--status-every", "status_s", type=FiniteFloat(0.5, None), default=5.0,
              show_default=True, metavar="S", help="Seconds of audio between status lines.")
@click.option("--line-enhancer", is_flag=True,
              help="Detect with the line enhancer in front (the key's enhancer twin).")
@click.option("--json", "as_json", is_flag=True,
              help="JSON lines: detection, status, and a final summary.")
def command(keyfile, device, duration_s, status_s, line_enhancer, as_json):
    """Detect the key's watermark in what this computer's microphone hears, live.

    The audio goes to 16 kHz mono int16 and hop by hop through the board's own detector
    core, so a laptop can stand in for a board. Exit code 0 after a detection, 1 without
    one (after --duration), 2 on error, 130 on Ctrl-C.
    """
    key = keys.load(keyfile)
    if line_enhancer and not key.get("line_enhancer"):
        key = keys.enhancer_twin(key)
    source = listen_lib.MicSource(device)

    def on_event(ev):
        if as_json:
            click.echo(json.dumps(dict({"event": "detection"}, **ev)))
        else:
            click.echo("detection at %8.3f s  score %6.2f" % (ev["t"], ev["score"]))

    def on_status(st):
        if as_json:
            click.echo(json.dumps(dict({"event": "status"}, **st)))
        else:
            click.echo("%8.1f s  level %s dBFS  max score %.2f (threshold %.2f)%s" % (
                st["t"], "-inf" if st["level_dbfs"] is None else "%.1f" % st["level_dbfs"],
                st["max_score"], key["threshold"],
                "  overflows %d" % st["overflows"] if st["overflows"] else ""), err=True)

    if not as_json:
        click.echo("listening on %s (%d Hz%s) for key %s, threshold %.2f%s; Ctrl-C stops"
                   % (source.name, source.rate, "" if source.rate == 16000 else
                      ", resampled to 16 kHz", key["key_id"], key["threshold"],
                      ", line enhancer" if key.get("line_enhancer") else ""), err=True)
    summ = listen_lib.listen(key, source, duration_s=duration_s, on_event=on_event,
                             on_status=on_status, status_every_s=status_s,
                             stop=lambda: getattr(sys.stdout, "reader_gone", False))
    if as_json:
        click.echo(json.dumps(summ))
    else:
        click.echo("%d detection(s) in %.1f s of audio; max score %.2f (threshold %.2f), key %s"
                   % (summ["detections"], summ["duration_s"], summ["max_score"],
                      summ["threshold"], summ["key"]))
    if summ["interrupted"]:
        return 130
    return 0 if summ["detections"] else 1
