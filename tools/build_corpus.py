#!/usr/bin/env python3
"""Build the evaluation corpus from real recordings shipped in Debian packages.

Three categories of 10 s mono 16-bit WAV clips, plus ``manifest.json``:

- music:  produced game soundtracks (supertux-data, neverball-data, xmoto-data,
          extremetuxracer-data), a random stretch of a random track, 44.1 kHz;
- drums:  steady 4/4 loops at 80-160 BPM assembled from hydrogen-drumkits samples (kick,
          snare, hi-hat; several kits, patterns and tempos), 44.1 kHz: the periodic
          transients that trip naive detectors;
- speech: espeak-ng voices reading short texts (several languages, pitches, speeds), at
          espeak-ng's 22.05 kHz.

Deterministic and idempotent: the plan (which source, which offset, which tempo) depends only
on ``--seed`` and the installed files; a clip that already exists is not rewritten, and the
same seed gives byte-identical files.

Missing sources: apt-get install supertux-data neverball-data xmoto-data extremetuxracer-data
hydrogen-drumkits espeak-ng
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from airmark import fsutil
from airmark.channel import BABBLE_TEXTS
from airmark.progress import progress_bar
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/, also when loaded by path
import toolcli  # noqa: E402

APT_PACKAGES = ("supertux-data neverball-data xmoto-data extremetuxracer-data "
                "hydrogen-drumkits espeak-ng")
GAMES_ROOT = "/usr/share/games"
DRUMKITS_ROOT = "/usr/share/hydrogen/data/drumkits"
GAME_PACKAGES = {"supertux2": "supertux-data", "neverball": "neverball-data",
                 "xmoto": "xmoto-data", "etr": "extremetuxracer-data"}
CATEGORIES = ("music", "drums", "speech")
CLIP_SECONDS = 10.0
OUT_RATE_HZ = 44100
MIN_TRACK_SECONDS = 30.0

# 16 steps of a 4/4 bar (sixteenth notes): velocity 0..1 per step for kick, snare, hat
PATTERNS = {
    "rock": ("1000000010100000", "0000100000001000", "1010101010101010"),
    "four-on-floor": ("1000100010001000", "0000100000001000", "0010001000100010"),
    "sixteenths": ("1000000010000000", "0000100000001000", "1111111111111111"),
    "half-time": ("1000000000100000", "0000000010000000", "1010101010101010"),
    "hip-hop": ("1000000100100000", "0000100000001001", "1010101010101010"),
    "disco": ("1000100010001000", "0000100000001000", "0110011001100110"),
}
INSTRUMENT_PATTERNS = {
    "kick": re.compile(r"kick|bass ?drum|\bbd\b", re.I),
    "snare": re.compile(r"snare(?!.*(roll|rim))", re.I),
    "hat": re.compile(r"(hi.?hat|\bhh\b|hat).*(clos|\bcl\b)|clos\w* (hh|hi.?hat)", re.I),
}

TEXTS = {
    "en": list(BABBLE_TEXTS),  # the channel's babble sentences: one list of English lines
    "de": ["Am Wochenende soll es mild werden, am Sonntag vielleicht ein wenig Regen.",
           "Der Zug fährt um sieben Uhr, aber wir sollten den Fahrplan noch einmal prüfen.",
           "Die Kinder haben vor dem Abendessen einen hohen Turm aus Holzklötzen gebaut.",
           "Im Garten wachsen Tomaten und Bohnen, und die Äpfel sind bald reif."],
    "fr": ["Le temps sera doux ce week-end, avec un peu de pluie dimanche après-midi.",
           "Tournez à gauche après la boulangerie, le musée sera sur votre droite.",
           "Les enfants ont construit une grande tour en bois avant le dîner.",
           "Il y a un concert dans le parc ce soir, s'il ne pleut pas."],
    "es": ["El fin de semana hará buen tiempo, aunque quizá llueva el domingo.",
           "Gira a la izquierda después de la panadería y verás el museo a la derecha.",
           "Los niños construyeron una torre muy alta con bloques de madera.",
           "La receta necesita dos huevos, una taza de harina y un poco de mantequilla."],
    "it": ["Questo fine settimana il tempo sarà mite, con un po' di pioggia domenica.",
           "Il treno parte alle sette, ma dovremmo controllare di nuovo l'orario.",
           "I bambini hanno costruito una torre alta con i blocchi di legno."],
    "nl": ["Het weer wordt dit weekend zacht, met zondag misschien wat regen.",
           "De kinderen bouwden voor het eten een hoge toren van houten blokken.",
           "Vergeet niet de planten water te geven terwijl wij op reis zijn."],
}
VOICES = (("en", "en"), ("en-us", "en"), ("en-gb-x-rp", "en"), ("en-gb-scotland", "en"),
          ("en-029", "en"), ("de", "de"), ("fr", "fr"), ("es", "es"), ("it", "it"),
          ("nl", "nl"))


class CorpusError(Exception):
    """A source is missing or unreadable; the message says what to install."""


# ----------------------------------------------------------------------------- helpers

def _rng(seed, category, index):
    cat = CATEGORIES.index(category)
    return np.random.default_rng([int(seed), cat, int(index)])


def _resample(x, fs_in, fs_out):
    if int(fs_in) == int(fs_out):
        return x
    frac = Fraction(int(fs_out), int(fs_in))
    return signal.resample_poly(x, frac.numerator, frac.denominator, axis=0)


def _mono(x):
    return x if x.ndim == 1 else x.mean(axis=1)


def _rms_db(x):
    return 10 * np.log10(np.mean(np.asarray(x, dtype=float) ** 2) + 1e-20)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def _write_clip(path, x, samplerate):
    """16-bit mono WAV, written to a temporary name and renamed (no half-written clips)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(np.asarray(x) * 32767), -32768, 32767).astype(np.int16)
    with toolcli.atomic_output(str(path)) as tmp:  # removed again on an error or Ctrl-C
        sf.write(tmp, pcm, int(samplerate), subtype="PCM_16", format="WAV")


def _relative_source(path, root):
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- music

def find_tracks(games_root=GAMES_ROOT):
    """Sorted list of (package, path, seconds) for soundtrack .ogg files of >= 30 s."""
    root = Path(games_root)
    tracks = []
    for game in sorted(GAME_PACKAGES):
        base = root / game
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*.ogg")):
            if "speech" in p.parts or "sounds" in p.parts:
                continue
            try:
                info = sf.info(str(p))
            except (RuntimeError, sf.LibsndfileError):
                continue
            if info.duration >= MIN_TRACK_SECONDS and info.samplerate >= 22050:
                tracks.append((GAME_PACKAGES[game], p, float(info.duration)))
    return tracks


def plan_music(n_clips, seed, games_root=GAMES_ROOT):
    tracks = find_tracks(games_root)
    if not tracks:
        raise CorpusError("no game soundtracks (.ogg of >= %d s) under %s; apt-get install "
                          "supertux-data neverball-data xmoto-data extremetuxracer-data"
                          % (MIN_TRACK_SECONDS, games_root))
    # interleave the games (each shuffled) so a small corpus still spans all soundtracks
    rng0 = np.random.default_rng([int(seed), 100])
    by_game = {}
    for t in tracks:
        by_game.setdefault(t[0], []).append(t)
    queues = [[g[j] for j in rng0.permutation(len(g))] for _, g in sorted(by_game.items())]
    order = []
    for j in range(max(len(q) for q in queues)):
        order += [q[j] for q in queues if j < len(q)]
    plans = []
    for i in range(n_clips):
        pkg, path, dur = order[i % len(order)]
        rng = _rng(seed, "music", i)
        offsets = rng.uniform(0, dur - CLIP_SECONDS - 0.5, size=8)
        plans.append({"category": "music", "source_package": pkg, "source_path": path,
                      "source_root": games_root, "offsets": [round(float(o), 3)
                                                            for o in offsets]})
    return plans


def render_music(plan):
    """The first of the planned offsets whose 10 s are not near-silent (> -45 dBFS)."""
    path = plan["source_path"]
    info = sf.info(str(path))
    for off in plan["offsets"]:
        start = int(off * info.samplerate)
        x, fs = sf.read(str(path), start=start, frames=int(CLIP_SECONDS * info.samplerate),
                        dtype="float64", always_2d=True)
        x = _resample(_mono(x), fs, OUT_RATE_HZ)[:int(CLIP_SECONDS * OUT_RATE_HZ)]
        if len(x) == int(CLIP_SECONDS * OUT_RATE_HZ) and _rms_db(x) > -45:
            return x, OUT_RATE_HZ, {"offset_s": off}
    raise CorpusError("%s: no audible 10 s stretch at the planned offsets" % path)


# ----------------------------------------------------------------------------- drums

def _xml_children(elem, name):
    return [c for c in elem if c.tag.split("}")[-1] == name]


def kit_instruments(kit_dir):
    """{'kick': path, 'snare': path, 'hat': path} from a Hydrogen drumkit.xml, or None."""
    xml = Path(kit_dir) / "drumkit.xml"
    if not xml.exists():
        return None
    try:
        root = ET.parse(str(xml)).getroot()
    except ET.ParseError:
        return None
    found = {}
    for inst in root.iter():
        if inst.tag.split("}")[-1] != "instrument":
            continue
        names = _xml_children(inst, "name")
        name = (names[0].text or "") if names else ""
        files = [e.text for e in inst.iter() if e.tag.split("}")[-1] == "filename" and e.text]
        files = [f for f in files if (Path(kit_dir) / f).exists()]
        if not files:
            continue
        for role, rx in INSTRUMENT_PATTERNS.items():
            if role not in found and rx.search(name):
                found[role] = Path(kit_dir) / sorted(files)[len(files) // 2]
    return found if len(found) == 3 else None


def find_kits(drumkits_root=DRUMKITS_ROOT):
    root = Path(drumkits_root)
    if not root.is_dir():
        return []
    kits = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        inst = kit_instruments(d)
        if inst is not None:
            kits.append((d, inst))
    return kits


def plan_drums(n_clips, seed, drumkits_root=DRUMKITS_ROOT):
    kits = find_kits(drumkits_root)
    if not kits:
        raise CorpusError("no Hydrogen drum kits with kick, snare and closed hi-hat under %s; "
                          "apt-get install hydrogen-drumkits" % drumkits_root)
    order = np.random.default_rng([int(seed), 200]).permutation(len(kits))
    names = sorted(PATTERNS)
    plans = []
    for i in range(n_clips):
        kit_dir, inst = kits[order[i % len(kits)]]
        rng = _rng(seed, "drums", i)
        plans.append({"category": "drums", "source_package": "hydrogen-drumkits",
                      "source_path": kit_dir, "source_root": drumkits_root,
                      "instruments": inst, "tempo_bpm": int(rng.integers(80, 161)),
                      "pattern": names[(i + i // len(kits) + int(seed)) % len(names)]})
    return plans


def _load_sample(path):
    x, fs = sf.read(str(path), dtype="float64", always_2d=True)
    x = _resample(_mono(x), fs, OUT_RATE_HZ)
    peak = np.max(np.abs(x)) if len(x) else 0.0
    return x / peak if peak > 0 else x


def render_drums(plan):
    """A steady loop: the pattern repeated bar after bar at exactly tempo_bpm."""
    n = int(CLIP_SECONDS * OUT_RATE_HZ)
    step_s = 60.0 / plan["tempo_bpm"] / 4
    kick, snare, hat = PATTERNS[plan["pattern"]]
    out = np.zeros(n + OUT_RATE_HZ)
    gains = {"kick": 1.0, "snare": 0.8, "hat": 0.35}
    for role, steps in (("kick", kick), ("snare", snare), ("hat", hat)):
        s = _load_sample(plan["instruments"][role])[:OUT_RATE_HZ] * gains[role]
        k = 0
        while True:
            t = k * step_s
            if t >= CLIP_SECONDS:
                break
            if steps[k % 16] == "1":
                i0 = int(round(t * OUT_RATE_HZ))
                accent = 1.0 if k % 4 == 0 else 0.85
                out[i0:i0 + len(s)] += accent * s[:len(out) - i0]
            k += 1
    out = out[:n]
    return out * (0.89 / max(np.max(np.abs(out)), 1e-9)), OUT_RATE_HZ, {}


# ----------------------------------------------------------------------------- speech

def plan_speech(n_clips, seed):
    if shutil.which("espeak-ng") is None:
        raise CorpusError("espeak-ng is not installed; apt-get install espeak-ng")
    plans = []
    for i in range(n_clips):
        rng = _rng(seed, "speech", i)
        voice, lang = VOICES[i % len(VOICES)]
        texts = TEXTS[lang]
        order = rng.permutation(len(texts))
        plans.append({"category": "speech", "source_package": "espeak-ng",
                      "source_path": "espeak-ng -v %s" % voice, "voice": voice,
                      "pitch": int(rng.integers(25, 80)), "speed": int(rng.integers(130, 185)),
                      "texts": [texts[j] for j in order]})
    return plans


def render_speech(plan):
    """Sentences read one after another with short pauses until 10 s are filled."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise CorpusError("espeak-ng is not installed; apt-get install espeak-ng")
    parts, fs, total = [], None, 0
    with tempfile.TemporaryDirectory(prefix="corpus-espeak-") as tmp:
        k = 0
        while fs is None or total < CLIP_SECONDS * fs:
            text = plan["texts"][k % len(plan["texts"])]
            out = os.path.join(tmp, "s%d.wav" % k)
            proc = subprocess.run([exe, "-v", plan["voice"], "-p", str(plan["pitch"]),
                                   "-s", str(plan["speed"]), "-w", out, text],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if proc.returncode != 0:
                raise CorpusError("espeak-ng -v %s failed: %s" % (
                    plan["voice"], proc.stderr.decode("utf-8", "replace").strip()))
            x, fs = sf.read(out, dtype="float64")
            parts += [_mono(x), np.zeros(int(0.35 * fs))]
            total += len(x) + int(0.35 * fs)
            k += 1
    x = np.concatenate(parts)[:int(CLIP_SECONDS * fs)]
    return x * (0.5 / max(np.max(np.abs(x)), 1e-9)), fs, {}


# ----------------------------------------------------------------------------- the corpus

def plan_corpus(clips_per_category, seed, *, games_root=GAMES_ROOT,
                drumkits_root=DRUMKITS_ROOT, categories=CATEGORIES):
    plans = []
    for cat in categories:
        if cat == "music":
            cat_plans = plan_music(clips_per_category, seed, games_root)
        elif cat == "drums":
            cat_plans = plan_drums(clips_per_category, seed, drumkits_root)
        else:
            cat_plans = plan_speech(clips_per_category, seed)
        for i, p in enumerate(cat_plans):
            p["file"] = "%s/%s_%04d.wav" % (cat, cat, i)
        plans += cat_plans
    return plans


RENDER = {"music": render_music, "drums": render_drums, "speech": render_speech}


def build_corpus(out_dir, *, clips_per_category, seed=0, games_root=GAMES_ROOT,
                 drumkits_root=DRUMKITS_ROOT, categories=CATEGORIES, progress=None):
    """Write the clips and manifest.json under out_dir; returns the manifest dict.

    Existing clips are kept (their manifest entry is rebuilt from the same plan).
    """
    out_dir = Path(out_dir)
    plans = plan_corpus(clips_per_category, seed, games_root=games_root,
                        drumkits_root=drumkits_root, categories=categories)
    entries = []
    written = 0
    for k, plan in enumerate(plans):
        path = out_dir / plan["file"]
        entry = {"file": plan["file"], "category": plan["category"],
                 "source_package": plan["source_package"],
                 "source_path": _relative_source(plan["source_path"], plan.get("source_root",
                                                                              "/"))}
        if plan["category"] == "drums":
            entry.update(tempo_bpm=plan["tempo_bpm"], pattern=plan["pattern"],
                         kit=Path(plan["source_path"]).name,
                         samples={r: Path(p).name for r, p in plan["instruments"].items()})
        if plan["category"] == "speech":
            entry.update(voice=plan["voice"], pitch=plan["pitch"], speed=plan["speed"])
        if not path.exists():
            x, fs, extra = RENDER[plan["category"]](plan)
            _write_clip(path, x, fs)
            written += 1
            entry.update(extra)
        elif plan["category"] == "music":
            entry.update(RENDER["music"](plan)[2])  # the offset: a cheap decode, no write
        info = sf.info(str(path))
        entry.update(samplerate=int(info.samplerate), duration_s=round(info.duration, 4),
                     sha256=_sha256(path))
        entries.append(entry)
        if progress is not None:
            progress(k + 1, len(plans), plan["file"])
    manifest = {"version": 1, "seed": int(seed), "clip_seconds": CLIP_SECONDS,
                "clips_per_category": int(clips_per_category),
                "categories": {c: sum(e["category"] == c for e in entries) for c in categories},
                "clips": entries}
    out_dir.mkdir(parents=True, exist_ok=True)
    fsutil.write_json_atomic(str(out_dir / "manifest.json"), manifest, indent=1, sort_keys=True)
    manifest["written"] = written
    return manifest


def main(argv=None):
    ap = toolcli.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Sources come from Debian packages: apt-get install %s" % APT_PACKAGES)
    ap.add_argument("out_dir", help="corpus directory (created; existing clips are kept)")
    ap.add_argument("--minutes-per-category", type=toolcli.positive_float, default=10.0,
                    help="audio per category, minutes (default 10: 60 clips each)")
    ap.add_argument("--clips-per-category", type=toolcli.positive_int, default=None,
                    help="exact number of 10 s clips per category (overrides minutes)")
    ap.add_argument("--quick", action="store_true", help="3 clips per category")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--categories", default=",".join(CATEGORIES),
                    help="comma-separated subset of music,drums,speech")
    ap.add_argument("--games-root", default=GAMES_ROOT, help=argparse.SUPPRESS)
    ap.add_argument("--drumkits-root", default=DRUMKITS_ROOT, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.clips_per_category is not None:
        n = args.clips_per_category
    elif args.quick:
        n = 3
    else:
        n = max(1, int(round(args.minutes_per_category * 60 / CLIP_SECONDS)))
    cats = tuple(c.strip() for c in args.categories.split(",") if c.strip())
    bad = [c for c in cats if c not in CATEGORIES]
    if bad:
        ap.error("unknown categories %s" % ", ".join(bad))
    if not cats:
        ap.error("--categories names none of %s" % ",".join(CATEGORIES))
    try:
        with progress_bar("corpus") as update:
            m = build_corpus(args.out_dir, clips_per_category=n, seed=args.seed,
                             games_root=args.games_root, drumkits_root=args.drumkits_root,
                             categories=cats, progress=lambda done, total, name: update(done, total))
    except CorpusError as exc:
        sys.stderr.write("build_corpus: %s\n" % exc)
        return 2
    print("%s: %d clips (%s), %d written" % (
        args.out_dir, len(m["clips"]), ", ".join("%s %d" % kv for kv in m["categories"].items()),
        m["written"]))
    return 0


if __name__ == "__main__":
    sys.exit(toolcli.run("build_corpus", main))
