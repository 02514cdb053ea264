"""airmark play FILE [--port P] [--device N] [--loop N] [--json]: play marked audio, score the board."""

import json

import click

from . import monitor as mon
from . import play as play_lib
from .clitypes import FiniteFloat


def _fmt(v, spec="%.3f"):
    return "-" if v is None else spec % v


@click.command()
@click.argument("infile", type=click.Path(dir_okay=False, exists=True))
@click.option("--port", default=None, help="The board's serial port (default: auto-detect).")
@click.option("--device", default=None, help="Sound output device: index or name (see "
              "`python -m sounddevice`).")
@click.option("--loop", "loops", type=click.IntRange(1), default=1, show_default=True,
              help="Play the file N times (soak test); every pass is scored.")
@click.option("--gap", "gap_s", type=FiniteFloat(0.0, None), default=2.0, show_default=True,
              help="Seconds of silence between passes.")
@click.option("--sidecar", default=None, type=click.Path(dir_okay=False),
              help="Segments file (default: FILE.airmark.json written by `airmark embed`).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), default=None,
              help="Append every board record (JSON lines) to FILE.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: board records, segments, summary.")
def command(infile, port, device, loops, gap_s, sidecar, log_path, as_json):
    """Play FILE through the sound card while the board listens; score every marked segment.

    A segment [start, end] is a hit when the board reports a detection between
    end - 0.5 s and end + 1.5 s after playback started; latency = detection - end.
    Exit code 0 when every segment was hit, 1 when any was missed.
    """
    side = play_lib.default_sidecar(infile, sidecar)
    data, rate = play_lib.read_audio(infile)
    output = play_lib.SoundDeviceOutput(device)
    output.check(rate, data.shape[1])  # fail now, in one line, before connecting and announcing
    log = mon.open_log(log_path)
    m = mon.Monitor(mon.serial_connector(port), log=log)

    def on_record(rec, t_play):
        if as_json:
            r = dict(rec)
            if t_play is not None:
                r["play_t"] = round(t_play, 3)
            click.echo(json.dumps(r))
        elif rec.get("event") in ("detection", "error", "hello", "connected", "disconnected", "garbage"):
            prefix = "%8.3f s " % t_play if t_play is not None else "           "
            click.echo(prefix + mon.format_record(rec))

    if not as_json:
        click.echo("playing %s: %.1f s, %d marked segment(s), key %s, %d pass(es)"
                   % (infile, data.shape[0] / rate, len(side.segments), side.key_id, loops))
    try:
        report = play_lib.play_and_score(data, rate, side, m, output, loops=loops, gap_s=gap_s,
                                         on_record=on_record)
    finally:
        m.close()
        if log is not None:
            log.close()
    if as_json:
        for rec in report.to_records():
            click.echo(json.dumps(rec))
    else:
        _print_table(report)
    return 0 if report.summary["misses"] == 0 else 1


def _print_table(report):
    from rich.console import Console
    from rich.table import Table

    table = Table(title="segments", title_justify="left")
    for col, just in (("pass", "right"), ("#", "right"), ("start s", "right"), ("end s", "right"),
                      ("result", "left"), ("latency s", "right"), ("score", "right")):
        table.add_column(col, justify=just)
    for r in report.results:
        table.add_row(str(r.loop + 1), str(r.index + 1), "%.2f" % r.start_s, "%.2f" % r.end_s,
                      "[green]hit[/green]" if r.hit else "[red]miss[/red]",
                      _fmt(r.latency_s), _fmt(r.score, "%s"))
    con = Console()
    con.print(table)
    s = report.summary
    con.print("%d/%d hit (%s), latency median %s s (min %s, max %s), %d unexpected detection(s)" % (
        s["hits"], s["segments"], "-" if s["hit_rate"] is None else "%.0f %%" % (100 * s["hit_rate"]),
        _fmt(s["latency_s_median"]), _fmt(s["latency_s_min"]), _fmt(s["latency_s_max"]),
        s["unexpected"]))
    for w in report.warnings:
        con.print("[yellow]warning:[/yellow] " + w)
