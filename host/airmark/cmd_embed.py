"""airmark embed IN OUT --key KEYFILE: watermark an audio file."""

import json

import click

from . import embed as embed_lib
from . import keys, quality
from .clitypes import FINITE, FiniteFloat
from .progress import progress_bar, progress_bars


@click.command()
@click.argument("infile", type=click.Path(dir_okay=False))
@click.argument("outfile", type=click.Path(dir_okay=False))
@click.option("--key", "keyfile", required=True, type=click.Path(dir_okay=False), help="Key file.")
@click.option("--start", "start_s", type=FINITE, default=None, metavar="SEC",
              help="Mark only from this time (default: the whole file).")
@click.option("--duration", "duration_s", type=FINITE, default=None, metavar="SEC",
              help="Mark this long from --start (rounded up to whole 16 ms blocks).")
@click.option("--strength", "strength_db", type=FINITE, default=embed_lib.DEFAULT_STRENGTH_DB, show_default=True,
              metavar="DB", help="Mark level relative to the masking threshold.")
@click.option("--min-visqol", "min_visqol", type=FiniteFloat(1.0, 5.0), default=None,
              metavar="MOS", help="Quality floor: lower the strength in 2 dB steps until "
                                  "ViSQOL (audio mode) reaches MOS; slow (see `airmark quality`).")
@click.option("--min-strength", "min_strength_db", type=FiniteFloat(-40.0, 40.0),
              default=quality.MIN_STRENGTH_DB, show_default=True, metavar="DB",
              help="With --min-visqol: the lowest strength tried before giving up.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists (never IN).")
def command(infile, outfile, keyfile, start_s, duration_s, strength_db, min_visqol,
            min_strength_db, as_json, force):
    """Embed the watermark of KEYFILE into IN and write OUT (same rate, channels, format).

    Also writes OUT.airmark.json (key, marked segments, strength, watermark-to-host ratio,
    blocks turned down by the level cap), which `airmark play` uses.
    """
    key = keys.load(keyfile)
    if min_visqol is None:
        with progress_bar("embedding", disable=as_json) as update:
            info = embed_lib.embed_file(infile, outfile, key, start_s=start_s,
                                        duration_s=duration_s, strength_db=strength_db,
                                        overwrite=force, progress=update)
    else:
        info = _embed_to_quality(infile, outfile, key, min_visqol, start_s, duration_s,
                                 strength_db, min_strength_db, force, as_json)
    if info["whr_cap_db"] > 0:
        click.echo("airmark: warning: at --strength %+.1f the level cap lets the mark reach "
                   "%.1f dB over its host: expect it to be audible" % (info["strength_db"],
                                                                        info["whr_cap_db"]),
                   err=True)
    if info["segments"] and info["whr_db"] is None:
        click.echo("airmark: warning: no mark went into %s: the host is silent over the marked "
                   "segment, and the mark is held under the host's own level" % outfile, err=True)
    key_s = len(key["key_bits"]) * key["block_samples"] / float(key["sample_rate_hz"])
    short = [(a, b) for a, b in info["segments"] if b - a < key_s - 1e-6]
    if short:
        a, b = short[0]
        click.echo("airmark: warning: the mark at %.3f-%.3f s lasts %.3f s, under the key's "
                   "%.2f s: the detector sums over the whole key, so a shorter mark scores "
                   "lower and may go unfound" % (a, b, b - a, key_s), err=True)
    if as_json:
        click.echo(json.dumps(info))
    else:
        segs = ", ".join("%.3f-%.3f s" % (a, b) for a, b in info["segments"]) or "none"
        click.echo("wrote %s: key %s, marked %s, strength %+.1f dB, WHR %s dB (in band %s dB)"
                   % (outfile, info["key_id"], segs, info["strength_db"],
                      _fmt(info["whr_db"]), _fmt(info["whr_band_db"])))
        if info["capped_blocks"]:
            cap = info["whr_cap_db"]
            click.echo("level cap: %d of %d blocks turned down to keep the mark %g dB %s the host"
                       % (info["capped_blocks"], info["blocks"], abs(cap),
                          "under" if cap <= 0 else "over"))
        if "visqol" in info:
            click.echo("quality: ViSQOL %s (floor %.2f) at strength %+.1f dB, %d tr%s"
                       % (_fmt3(info["visqol"]["min_moslqo"]), min_visqol, info["strength_db"],
                          len(info["tries"]), "y" if len(info["tries"]) == 1 else "ies"))
        if info["limited_samples"]:
            click.echo("limiter: %d samples softly limited to stay within full scale"
                       % info["limited_samples"])
    return 0


def _embed_to_quality(infile, outfile, key, floor, start_s, duration_s, strength_db,
                      min_strength_db, force, as_json):
    def on_try(s, res):
        if not as_json and (res["min_moslqo"] is not None and res["min_moslqo"] < floor):
            click.echo("strength %+.1f dB: ViSQOL %.3f, under %.2f" % (s, res["min_moslqo"], floor),
                       err=True)

    with progress_bars("embedding", "ViSQOL", disable=as_json) as (update, vq_update):
        return quality.embed_to_quality(infile, outfile, key, floor, start_s=start_s,
                                        duration_s=duration_s, strength_db=strength_db,
                                        min_strength_db=min_strength_db, overwrite=force,
                                        on_try=on_try, progress=update,
                                        visqol_progress=vq_update)


def _fmt3(v):
    return "n/a (silent host)" if v is None else "%.3f" % v


def _fmt(v):
    return "n/a" if v is None else "%.1f" % v
