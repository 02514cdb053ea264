"""airmark monitor [--port P] [--json] [--log FILE]: watch what the board hears."""

import json
import sys

import click

from . import monitor as mon
from .clitypes import FiniteFloat


@click.command()
@click.option("--port", default=None, help="Serial port (default: the one port that looks like a board; "
              "re-detected after each unplug).")
@click.option("--json", "as_json", is_flag=True, help="Pass the board's JSON lines through, with host_t added.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), default=None,
              help="Append every record (JSON lines) to FILE, flushed line by line.")
@click.option("--duration", "duration_s", type=FiniteFloat(0.0, None, min_open=True), default=None, metavar="S",
              help="Stop after S seconds (default: run until Ctrl-C).")
def command(port, as_json, log_path, duration_s):
    """Show the board's detections, status and errors live; survive unplug/replug.

    Exit code 0 after --duration, 130 after Ctrl-C (a summary is printed either way).
    """
    log = mon.open_log(log_path)
    out = click.get_text_stream("stdout")
    sink = None
    if as_json:
        def sink(rec, _t):
            out.write(json.dumps(rec) + "\n")
            out.flush()
    elif not sys.stdout.isatty():
        def sink(rec, _t):
            out.write(mon.format_record(rec) + "\n")
            out.flush()
    m = mon.Monitor(mon.serial_connector(port), sink=sink, log=log)
    until = m.clock() + duration_s if duration_s is not None else None
    interrupted = False
    said = {"waiting": False}

    def on_step(_records):
        # the live view shows the waiting state itself; the line modes say it once on stderr
        if m.transport is None and m.stats.connect_failures and not said["waiting"]:
            click.echo("airmark monitor: waiting for the board (%s)" % m.waiting_reason, err=True)
            said["waiting"] = True
        elif m.transport is not None:
            said["waiting"] = False

    try:
        if sink is None:
            from rich.live import Live

            with Live(mon.LiveView(m), refresh_per_second=4, transient=False):
                m.run(until=until)
        else:
            m.run(until=until, on_step=on_step)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        m.close()
        m.sinks = []  # the summary is printed below, once
        summary = m.summary()
        if log is not None:
            log.close()
    if as_json:
        out.write(json.dumps(summary) + "\n")
    else:
        click.echo(("interrupted: " if interrupted else "") + mon.format_summary(summary))
    return 130 if interrupted else 0
