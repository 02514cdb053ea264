"""`airmark simulate IN OUT`: play a file through the simulated over-the-air channel."""

import dataclasses
import json
import math
import os
import warnings

import click

from . import audio, channel
from .clitypes import FINITE
from .errors import AirmarkError
from .evaluate import RT60_TOLERANCE, rt60_missed


_TRIPLES = ("room_dim_m", "source_pos_m", "mic_pos_m")  # null or [x, y, z] in metres
_OPTIONAL_NUMBERS = ("mic_azimuth_deg", "mic_height_m")  # null or a number
_OPTIONAL_TEXT = ("codec", "noise", "noise_source")  # null or text


def parse_setting(item):
    """`KEY=VALUE` from a `--set` option as (key, value); the value is JSON where it parses
    (numbers, true/false, null, lists), else the text, and must suit the ChannelConfig
    field KEY (a finite number, true/false, null or [x, y, z], text). ValueError otherwise
    (an unknown KEY is left to ChannelConfig, which names the known ones)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError("--set wants KEY=VALUE, not %r" % item)
    try:
        value = json.loads(text.strip())
    except ValueError:
        value = text.strip()
    return key, _check_setting(key, value)


def _number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_setting(key, value):
    kinds = {f.name: f.type for f in dataclasses.fields(channel.ChannelConfig)}
    if key not in kinds:
        return value
    if key in _TRIPLES:
        if value is None or (isinstance(value, list) and len(value) == 3
                             and all(_number(v) for v in value)):
            return None if value is None else [float(v) for v in value]
        raise ValueError("--set %s wants null or [x, y, z] in metres, not %r" % (key, value))
    if key in _OPTIONAL_NUMBERS:
        if value is None or _number(value):
            return None if value is None else float(value)
        raise ValueError("--set %s wants null or a number, not %r" % (key, value))
    if key in _OPTIONAL_TEXT:
        if value is None or isinstance(value, str):
            return value
        raise ValueError("--set %s wants null or text, not %r" % (key, value))
    if kinds[key] in (bool, "bool"):
        if isinstance(value, bool):
            return value
        raise ValueError("--set %s wants true or false, not %r" % (key, value))
    if kinds[key] in (float, "float"):
        if _number(value):
            return float(value)
        raise ValueError("--set %s wants a finite number, not %r" % (key, value))
    return value


def _parse_dims(text):
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        dims = [float(p) for p in parts]
    except ValueError:
        raise click.BadParameter("expected LxWxH in metres, e.g. 8x6x2.7, not %r" % text)
    if len(dims) != 3:
        raise click.BadParameter("expected 3 values LxWxH, not %r" % text)
    return dims


def build_config(preset, *, distance=None, rt60=None, snr=None, noise=None, noise_source=None,
                 drift_ppm=None, codec=None, spatial=None, room=None, loudspeaker=None, mic=None,
                 room_dim=None, spl=None, mic_gain=None, settings=()):
    """A ChannelConfig from a preset plus the command line's overrides."""
    over = {}
    for key, value in (("distance_m", distance), ("rt60_s", rt60), ("snr_db", snr),
                       ("noise_source", noise_source), ("drift_ppm", drift_ppm),
                       ("spatial", spatial), ("room", room), ("loudspeaker", loudspeaker),
                       ("mic", mic), ("room_dim_m", room_dim), ("spl_1m_db", spl),
                       ("mic_gain_db", mic_gain)):
        if value is not None:
            over[key] = value
    if noise is not None:
        over["noise"] = None if noise == "none" else noise
    if codec is not None:
        over["codec"] = None if codec.lower() == "none" else codec
    for item in settings:
        try:
            key, value = parse_setting(item)
        except ValueError as exc:
            raise click.BadParameter(str(exc))
        over[key] = value
    try:
        return channel.ChannelConfig.from_preset(preset, **over)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc))


@click.command()
@click.argument("infile", type=click.Path(dir_okay=False))
@click.argument("outfile", type=click.Path(dir_okay=False, writable=True))
@click.option("--preset", default="living-room-6m", show_default=True,
              type=click.Choice(list(channel.PRESETS)), help="Starting point for every knob.")
@click.option("--distance", type=FINITE, help="Speaker-to-mic distance, metres.")
@click.option("--rt60", type=FINITE, help="Reverberation time, seconds.")
@click.option("--room-dim", help="Room size LxWxH in metres (default: sized to the distance).")
@click.option("--snr", type=FINITE, help="Noise SNR in dB, relative to the received content.")
@click.option("--noise", type=click.Choice(list(channel.NOISE_TYPES) + ["none"]),
              help="Ambient noise type.")
@click.option("--noise-source", type=click.Path(exists=True, dir_okay=False),
              help="Audio file for the tv/babble noise (default: generated).")
@click.option("--drift-ppm", type=FINITE, help="Mic clock drift, ppm (+-500).")
@click.option("--codec", help="Codec round trip before playback, e.g. mp3:128k, aac:96k, "
              "opus:64k, or none.")
@click.option("--spatial/--no-spatial", default=None, help="Smart-speaker spatial chain.")
@click.option("--room/--no-room", default=None, help="Room acoustics.")
@click.option("--loudspeaker/--no-loudspeaker", default=None, help="Small-speaker model.")
@click.option("--mic/--no-mic", default=None, help="MEMS microphone model (off: ideal mic).")
@click.option("--spl", type=FINITE, help="Playback level, dB SPL at 1 m.")
@click.option("--mic-gain", type=FINITE, help="Firmware gain before 16-bit, dB.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Any other ChannelConfig field (repeatable), e.g. --set mic_snr_db=60.")
@click.option("--seed", type=click.IntRange(0, None), default=0, show_default=True,
              help="Seed of the noises.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="RIR/speech cache (default: $AIRMARK_CACHE_DIR or ./cache).")
@click.option("--json", "as_json", is_flag=True, help="Print what was applied as JSON.")
def command(infile, outfile, preset, distance, rt60, room_dim, snr, noise, noise_source,
            drift_ppm, codec, spatial, room, loudspeaker, mic, spl, mic_gain, settings, seed,
            cache_dir, as_json):
    """Play INFILE through a simulated room into the board's mic; write OUTFILE.

    OUTFILE is a 16 kHz mono 16-bit WAV: what the board's I2S path sees. Presets:
    digital, near-1m, living-room-6m, spatial-speaker-1m, spatial-speaker-6m, far-9m; any
    knob on top.
    """
    cfg = build_config(preset, distance=distance, rt60=rt60, snr=snr, noise=noise,
                       noise_source=noise_source, drift_ppm=drift_ppm, codec=codec,
                       spatial=spatial, room=room, loudspeaker=loudspeaker, mic=mic,
                       room_dim=_parse_dims(room_dim), spl=spl, mic_gain=mic_gain,
                       settings=settings)
    _check_paths(infile, outfile, noise_source)
    cache = cache_dir if cache_dir is not None else channel.default_cache_dir()
    try:
        with warnings.catch_warnings():
            # a large room: pyroomacoustics says it traces many rays (slow, not wrong)
            warnings.filterwarnings("ignore", message="The number of rays", category=UserWarning)
            info = channel.simulate_file(infile, outfile, cfg, seed=seed, cache_dir=cache)
    except ValueError as exc:  # a room the geometry cannot hold, and the like
        raise AirmarkError("cannot simulate: %s" % exc) from None
    except OSError as exc:
        raise AirmarkError("%s: %s" % (getattr(exc, "filename", None) or outfile,
                                       exc.strerror or exc)) from None
    info["output"] = outfile
    info["preset"] = preset
    warning = rt60_warning(info)
    if warning:
        click.echo("airmark: warning: " + warning, err=True)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(describe(info))
    return 0


def _check_paths(infile, outfile, noise_source):
    if not outfile.lower().endswith(".wav"):
        raise click.BadParameter("%r: simulate writes a 16 kHz mono WAV; name it *.wav"
                                 % outfile, param_hint="'OUTFILE'")
    if os.path.realpath(infile) == os.path.realpath(outfile) or (
            os.path.exists(infile) and os.path.exists(outfile)
            and os.path.samefile(infile, outfile)):
        raise AirmarkError("output %s is the input file; refusing to overwrite it" % outfile)
    if noise_source is not None and not audio.audio_info(noise_source).get("frames", 1):
        raise AirmarkError("%s: the noise source holds no audio" % noise_source)


def rt60_warning(info, tolerance=RT60_TOLERANCE):
    """A sentence when the simulated room missed its RT60 by more than `tolerance`, else None
    (in large, low rooms the hybrid model's decay strays from the target, either way)."""
    for st in info["stages"]:
        want, got = st.get("rt60_s"), st.get("rt60_measured_s")
        if st["stage"] == "room" and rt60_missed(want, got, tolerance):
            return ("this room could not be given RT60 %.2f s: it decays in %.2f s (%s m; in "
                    "large, low rooms the simulated decay strays from the target)"
                    % (want, got, "x".join("%g" % d for d in st["room_dim_m"])))
    return None


def describe(info):
    """A few human lines about a simulate() info dict."""
    lines = ["%s -> %s: %.2f s at %d Hz, %.1f dBFS RMS" % (
        info.get("input", "?"), info.get("output", "?"), info["duration_s"], info["samplerate"],
        info["output_rms_dbfs"])]
    for st in info["stages"]:
        name = st["stage"]
        rest = ", ".join("%s=%s" % (k, v) for k, v in st.items() if k != "stage")
        lines.append("  %-12s %s" % (name, rest))
    return "\n".join(lines)
