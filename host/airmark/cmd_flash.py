"""airmark flash --board NAME --key KEYFILE [--port P] [--drive PATH] [--dry-run] [--json]."""

import json

import click

from . import flashing, keys


@click.command()
@click.option("--board", "board_name", required=True,
              help="Board definition: a name from boards/ (e.g. pico-inmp441) or a .json path.")
@click.option("--key", "keyfile", required=True, type=click.Path(dir_okay=False), help="Key file.")
@click.option("--port", default=None, help="Serial port (default: the one port that looks like the board).")
@click.option("--drive", default=None, type=click.Path(file_okay=False),
              help="CircuitPython: the CIRCUITPY drive (default: the mounted one).")
@click.option("--dry-run", is_flag=True, help="Print the file plan; touch no device.")
@click.option("--force", is_flag=True, help="Rewrite files even when the device already has them.")
@click.option("--no-check", "no_check", is_flag=True,
              help="CircuitPython only: copy without checking the runtime and ulab over serial.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable plan / report.")
def command(board_name, keyfile, port, drive, dry_run, force, no_check, as_json):
    """Put the firmware, the board definition and the key on a board.

    MicroPython boards: .mpy files compiled for the board's architecture, copied with
    mpremote's transport. CircuitPython boards: .py sources copied to the CIRCUITPY
    drive. Before copying, the device's runtime and ulab are checked over the raw REPL;
    every file is verified by its SHA-256 read back from the device; then the board resets.
    """
    board = flashing.load_board(board_name)
    key = keys.load(keyfile)
    if no_check and board["runtime"] == "micropython":
        raise click.UsageError("--no-check applies to CircuitPython boards only "
                               "(MicroPython boards are always checked over the raw REPL)")
    if drive and board["runtime"] == "micropython":
        raise click.UsageError("--drive applies to CircuitPython boards only")
    plan = flashing.build_plan(board, key)
    if not as_json and not key.get("line_enhancer") and flashing.line_enhancer_choice(board)[0]:
        click.echo("hint: %s runs the line enhancer, which finds about 1.6x the marks: "
                   "airmark keygen twin.json --from %s --board %s makes this key's twin with it"
                   % (board["name"], keyfile, board["name"]), err=True)
    if dry_run:
        if as_json:
            click.echo(json.dumps(plan.to_dict()))
        else:
            _print_plan(plan)
        return 0

    def progress(res):
        if not as_json:
            click.echo("  %-24s %-9s %6s B  %s" % (res.dest, res.action, res.bytes or "",
                                                   "sha256 ok" if res.verified else ""))

    if not as_json:
        click.echo("flashing %s (%s) with key %s" % (board["name"], board["title"], key["key_id"]))
    report = flashing.flash(board, key, port=port, drive=drive, force=force, check=not no_check,
                            progress=progress, plan=plan)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        written = sum(1 for f in report.files if f.action == "written")
        same = sum(1 for f in report.files if f.action == "unchanged")
        removed = sum(1 for f in report.files if f.action == "removed")
        dev = report.device.describe() if report.device else "device not checked"
        click.echo("done: %s via %s; %d written, %d unchanged, %d removed, all verified; reset: %s"
                   % (dev, report.target, written, same, removed, report.reset))
        click.echo("next: airmark monitor%s" % ("" if port is None else " --port " + port))
    return 0


def _print_plan(plan):
    click.echo("%s: %s, %s, key %s" % (plan.board["name"], plan.runtime,
                                       ".mpy for " + plan.arch if plan.arch else ".py sources",
                                       plan.key_id))
    click.echo("  %-26s %7s  %-12s  %s" % ("device file", "bytes", "sha256", "from"))
    for f in plan.files:
        click.echo("  %-26s %7d  %-12s  %s" % (f.dest, len(f.data), f.sha256[:12], f.source))
    click.echo("other airmark_*.py / airmark_*.mpy files on the device are removed")
