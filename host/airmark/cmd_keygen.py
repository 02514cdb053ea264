"""airmark keygen KEYFILE: write a new key."""

import json

import click

from . import flashing, keys
from .clitypes import FiniteFloat


@click.command()
@click.argument("keyfile", type=click.Path(dir_okay=False))
@click.option("--seed", type=click.IntRange(0, None), default=None,
              help="Seed for a reproducible key (default: random).")
@click.option("--seconds", "key_seconds", type=FiniteFloat(0.0, None, min_open=True), default=None,
              help="Mark length the key spans (default 2.0 s).")
@click.option("--lag-periods", type=click.IntRange(1, 8), default=None,
              help="Pattern periods the detector compares (default 6 for keys up to 2 s, 3 for "
                   "longer ones; for a 2 s key, 3 finds about 0.65x the marks for 0.8x the CPU).")
@click.option("--threshold", type=FiniteFloat(1.0, 1000.0), default=None,
              help="Detection threshold (default: the calibrated one for this key's shape).")
@click.option("--line-enhancer/--no-line-enhancer", default=None,
              help="Put the line enhancer in front of the detector (or not): about 1.6x the "
                   "marks found over the eval grid's rooms, for about 23 % of an RP2040's CPU "
                   "(20 % with --lag-periods 3) instead of 12.6 % (docs/ALGORITHM.md §8). "
                   "Default: no, unless --board runs it.")
@click.option("--board", default=None, metavar="NAME",
              help="Make the key for this board (boards/NAME.json or a .json path): the line "
                   "enhancer goes in front where the board runs it well (MicroPython on RP2040 "
                   "and RP2350), not on ESP32 boards (--line-enhancer still adds it there) "
                   "nor on CircuitPython boards (which cannot run it).")
@click.option("--from", "from_key", default=None, type=click.Path(dir_okay=False), metavar="KEY",
              help="Copy KEY (the same mark) and change only detector settings: "
                   "--line-enhancer/--no-line-enhancer or --board, --lag-periods (up to the "
                   "key's own), --threshold.")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
@click.option("--json", "as_json", is_flag=True, help="Print the key record as JSON.")
def command(keyfile, seed, key_seconds, lag_periods, threshold, line_enhancer, board, from_key,
            force, as_json):
    """Generate a key file: the binary inversion sequence, noise seed and threshold."""
    why = None
    if board is not None:
        spec = flashing.load_board(board)
        runs, why = flashing.line_enhancer_choice(spec)
        if line_enhancer and not flashing.line_enhancer_possible(spec):
            raise click.UsageError("--line-enhancer: board %s cannot run it (%s)" % (board, why))
        if line_enhancer is None:
            line_enhancer = runs
    if from_key:
        if seed is not None or key_seconds is not None:
            raise click.UsageError("--from keeps the key's mark: --seed and --seconds do not "
                                   "apply")
        record = keys.load(from_key)
        new_front = (line_enhancer is not None
                     and bool(line_enhancer) != bool(record.get("line_enhancer")))
        if new_front or (lag_periods is not None and lag_periods != record["lag_periods"]):
            record = keys.detector_twin(record, line_enhancer=line_enhancer,
                                        lag_periods=lag_periods, threshold=threshold)
        elif threshold is not None:
            record = keys.with_threshold(record, threshold)
    else:
        record = keys.generate(seed, key_seconds=key_seconds, lag_periods=lag_periods,
                               threshold=threshold, line_enhancer=bool(line_enhancer))
    keys.save(record, keyfile, force=force)
    if as_json:
        click.echo(json.dumps(record))
    else:
        click.echo("wrote %s: key %s, %d key bits (%.2f s), pattern %d x %d samples, "
                   "%d lag periods, threshold %.2f%s" % (
                       keyfile, record["key_id"], len(record["key_bits"]),
                       keys.key_seconds(record),
                       record["pattern_blocks"], record["block_samples"], record["lag_periods"],
                       record["threshold"], ", line enhancer" if record.get("line_enhancer") else ""))
        if why:
            click.echo("for board %s: %s line enhancer (%s)" % (
                board, "with the" if record.get("line_enhancer") else "without the", why))
    return 0
