"""`airmark eval`: detection rate, false alarms, latency and quality over simulated rooms."""

import json
import os
import shlex
import sys

import click

from . import channel, eval_report, evaluate, keys
from .clitypes import FINITE, finite_floats
from .errors import AirmarkError
from .progress import progress_bar


def _floats(text):
    try:
        return finite_floats(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _codecs(text):
    out = []
    for v in text.split(","):
        v = v.strip()
        if not v:
            continue
        if v.lower() == "none":
            out.append(None)
            continue
        try:
            channel.parse_codec(v)
        except ValueError as exc:
            raise click.BadParameter(str(exc))
        out.append(v)
    return out


def _spatial(text):
    table = {"off": False, "on": True, "no": False, "yes": True}
    try:
        return [table[v.strip().lower()] for v in text.split(",") if v.strip()]
    except KeyError:
        raise click.BadParameter("expected off,on; not %r" % text)


def _noises(text):
    out = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in out if v not in channel.NOISE_TYPES]
    if bad:
        raise click.BadParameter("noise must be among %s" % ", ".join(channel.NOISE_TYPES))
    return out


def _check_out_dir(out_dir):
    """Fail before the grid runs, not after, when the report cannot be written there; the
    probe leaves nothing behind (directories it made are removed again)."""
    made = []
    d = os.path.abspath(out_dir)
    while not os.path.exists(d):
        made.append(d)
        d = os.path.dirname(d)
    try:
        os.makedirs(out_dir, exist_ok=True)
        probe = os.path.join(out_dir, ".airmark-write-test")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise AirmarkError("%s: cannot write the report there (%s)"
                           % (out_dir, exc.strerror or exc)) from None
    finally:
        for m in made:  # leaf first
            try:
                os.rmdir(m)
            except OSError:
                pass


@click.command()
@click.option("--corpus", "corpus_dir", required=True, type=click.Path(file_okay=False),
              help="Corpus directory (tools/build_corpus.py; make corpus).")
@click.option("--key", "keyfile", required=True, type=click.Path(dir_okay=False),
              help="Key file.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Where report.md, results.json and the PNGs go.")
@click.option("--quick", is_flag=True,
              help="Small grid (1, 6.1, 9 m; RT60 0.5 s; SNR 10 dB), 3 clips per category.")
@click.option("--distance", help="Distances, m, comma-separated (default 1,3,6.1,9).")
@click.option("--rt60", help="RT60s, s (default 0.3,0.5,0.8).")
@click.option("--snr", help="SNRs, dB (default 20,10,5).")
@click.option("--drift", help="Drifts, ppm (default 100).")
@click.option("--codec", help="Codecs, e.g. none,mp3:128k,opus:64k (default none).")
@click.option("--spatial", help="off,on (default off).")
@click.option("--noise", help="Noise types: pink,babble,hvac,tv (default pink).")
@click.option("--mark-seconds", type=click.FloatRange(0.1, 60.0), default=2.0, show_default=True)
@click.option("--strength-db", type=FINITE, default=4.0, show_default=True,
              help="Mark strength, dB over the masking threshold (the embedder default is +4).")
@click.option("--clips-per-category", type=click.IntRange(1, None), default=None,
              help="Use only the first N clips of each category.")
@click.option("--categories", default=None,
              help="Only these corpus categories, comma-separated (e.g. speech,drums).")
@click.option("--visqol-clips", type=click.IntRange(0, None), default=None,
              help="Clips for ViSQOL (default 6, --quick 1; 0 skips).")
@click.option("--positions", type=click.IntRange(0, 64), default=4, show_default=True,
              help="Mic placements per grid point, taken in turn by each category's clips "
                   "(0: the preset's single placement).")
@click.option("--jobs", type=click.IntRange(0, None), default=0,
              help="Worker processes (default: all cores).")
@click.option("--seed", type=click.IntRange(0, None), default=0, show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Channel-output and RIR cache (default: $AIRMARK_CACHE_DIR or ./cache).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(corpus_dir, keyfile, out_dir, quick, distance, rt60, snr, drift, codec, spatial,
            noise, mark_seconds, strength_db, clips_per_category, categories, visqol_clips, positions,
            jobs, seed, cache_dir, as_json):
    """Embed marks in corpus clips, play them through simulated rooms, count detections.

    Grid: the cartesian product of the value lists; each clip is run marked and unmarked
    through the same seeded channel. Writes OUT/report.md, OUT/results.json and PNG plots.
    """
    key = keys.load(keyfile)
    _check_out_dir(out_dir)
    grid = evaluate.Grid.quick() if quick else evaluate.Grid()
    for attr, text, parse in (("distance_m", distance, _floats), ("rt60_s", rt60, _floats),
                              ("snr_db", snr, _floats), ("drift_ppm", drift, _floats),
                              ("codec", codec, _codecs), ("spatial", spatial, _spatial),
                              ("noise", noise, _noises)):
        if text is not None:
            values = parse(text)
            if not values:
                raise click.BadParameter("empty list for --%s" % attr.split("_")[0])
            setattr(grid, attr, values)
    if categories is not None:
        categories = [c.strip() for c in categories.split(",") if c.strip()]
        if not categories:
            raise click.BadParameter("empty list for --categories")
    if clips_per_category is None and quick:
        clips_per_category = 3
    if visqol_clips is None:
        visqol_clips = 1 if quick else 6
    opts = evaluate.EvalOptions(mark_s=mark_seconds, strength_db=strength_db,
                                clips_per_category=clips_per_category, categories=categories,
                                visqol_clips=visqol_clips, seed=seed, jobs=jobs,
                                positions=positions)
    cache = cache_dir if cache_dir is not None else channel.default_cache_dir()
    with progress_bar("eval", disable=as_json) as update:
        summary = evaluate.run_eval(corpus_dir, key, grid=grid, opts=opts, cache_dir=cache,
                                    progress=update)
    misses = summary.get("rt60_misses") or []
    if misses:
        m = max(misses, key=lambda m: abs(m["rt60_measured_s"] / m["rt60_s"] - 1))
        click.echo("airmark: warning: %d of the grid's rooms missed their RT60 by more than "
                   "%d %% (worst: %g m, %.2f s for %.2f s); results.json lists them under "
                   "rt60_misses" % (len(misses), round(100 * evaluate.RT60_TOLERANCE),
                                    m["point"]["distance_m"], m["rt60_measured_s"], m["rt60_s"]),
                   err=True)
    clips = evaluate.load_corpus(corpus_dir, clips_per_category, categories)
    summary["visqol"] = evaluate.visqol_subset(clips, key, opts, n_clips=visqol_clips)
    cmdline = "airmark eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 2 and sys.argv[1] == "eval" else None
    report = eval_report.write_report(summary, out_dir, command=cmdline)
    if as_json:
        slim = {k: v for k, v in summary.items() if k not in ("runs", "curve", "latencies_s")}
        click.echo(json.dumps(slim, indent=1, default=str))
    else:
        o = summary["overall"]
        click.echo("%s: %d/%d detected (%.1f %%), %d false alarms in %.2f h; report %s" % (
            summary["key_id"], o["detected"], o["n"], 100 * (o["rate"] or 0), o["false_alarms"],
            o["unmarked_hours"], report))
        t = summary.get("target_result")
        if t:
            click.echo("target point: %.1f %% detected, %.2f false alarms/h" % (
                100 * t["rate"], t["fa_per_hour"]))
    return 0
