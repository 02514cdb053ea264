#!/usr/bin/env python3
"""`airmark play` end to end without hardware: marked music -> simulated room -> virtual board.

Makes a music file with N marks of one key length (2 s) each, embedded with
``airmark.embed.embed_array`` (or, with ``--reference WHR_DB``, the test suite's
reference mark at that watermark-to-host ratio), writes it with its sidecar, and
plays it with ``airmark.play.play_and_score`` into the virtual board of the tests
(tests/virtual_board.py: the real firmware loop, tools/replay.py, on a pty) through
``airmark.channel.simulate`` with the chosen preset. Prints the segment table and the
summary, and the detector run offline over the very samples the microphone got.

    python tools/virtual_play.py --preset living-room-6m --marks 10 [--speed 1] [--json]

The WAV and its sidecar are kept in --out, so the same file can be played to a real
board with `airmark play OUT/marked.wav`.
"""

import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "tests"))

import toolcli  # noqa: E402
from airmark import channel, keys  # noqa: E402
from airmark.progress import progress_bar  # noqa: E402


FS = 16000


def make_file(key, marks, gap_s, lead_s, strength_db, reference_whr_db, seed):
    import signals

    mark_s = keys.key_seconds(key)
    total = lead_s + marks * (mark_s + gap_s) + 2.0
    host = signals.music_like(total, seed=seed)
    y = host.copy()
    segs = []
    for i in range(marks):
        start = lead_s + i * (mark_s + gap_s)
        if reference_whr_db is not None:
            y, seg = signals.embed_reference(y, key, start, reference_whr_db)
            segs.append(list(seg))
            continue
        from airmark import embed

        a = int((start - 1.0) * FS)
        b = int((start + mark_s + 1.0) * FS)
        kw = {} if strength_db is None else {"strength_db": strength_db}
        yi, info = embed.embed_array(host[a:b], FS, key, start_s=1.0, duration_s=mark_s, **kw)
        y[a:b] += yi - host[a:b]
        s, e = info["segments"][0]
        segs.append([round(a / FS + s, 6), round(a / FS + e, 6)])
    return y, segs


def main(argv=None):
    ap = toolcli.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="living-room-6m", choices=sorted(channel.PRESETS))
    ap.add_argument("--marks", type=toolcli.positive_int, default=10)
    ap.add_argument("--gap", type=toolcli.finite_float, default=4.0,
                    help="seconds of unmarked music between marks")
    ap.add_argument("--strength-db", type=toolcli.finite_float, default=None,
                    help="embedder strength (default: the embedder's own default)")
    ap.add_argument("--reference", type=toolcli.finite_float, default=None, metavar="WHR_DB",
                    help="use the tests' reference mark at this WHR instead of the embedder")
    ap.add_argument("--key-seed", type=int, default=1)
    ap.add_argument("--seed", type=int, default=3, help="music seed")
    ap.add_argument("--room-seed", type=int, default=0)
    ap.add_argument("--speed", type=toolcli.positive_float, default=1.0,
                    help="clock speed-up (1 = real time)")
    ap.add_argument("--out", default=None, help="directory for the WAV, sidecar and key")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.gap < 0:
        ap.error("--gap must be >= 0")

    import soundfile as sf

    from airmark import detect, fsutil
    from airmark import monitor as mon
    from airmark import play as P
    from virtual_board import ScaledClock, SimulatedRoomOutput, VirtualBoard

    out = args.out or tempfile.mkdtemp(prefix="airmark-vplay-")
    toolcli.make_dir(out)
    key = keys.generate(args.key_seed)
    key_path = os.path.join(out, "key.json")
    keys.save(key, key_path, force=True)
    y, segs = make_file(key, args.marks, args.gap, 2.0, args.strength_db, args.reference, args.seed)
    wav = os.path.join(out, "marked.wav")
    # the WAV and its sidecar appear whole (temporary names, then renamed), the sidecar first
    fsutil.write_json_atomic(P.sidecar_path(wav), {
        "format": "airmark-embed", "version": 1, "key_id": key["key_id"], "segments": segs,
        "samplerate": FS, "made_by": "tools/virtual_play.py"})
    with toolcli.atomic_output(wav) as tmp:
        sf.write(tmp, y, FS, subtype="PCM_16")
    side = P.load_sidecar(P.sidecar_path(wav))
    data, rate = P.read_audio(wav)
    clock = ScaledClock(args.speed)
    t_wall = time.monotonic()
    with VirtualBoard(key_path, out, clock=clock) as board:
        m = mon.Monitor(mon.serial_connector(board.port), clock=clock, sleep=clock.sleep)
        room = SimulatedRoomOutput(board, args.preset, seed=args.room_seed,
                                   cache_dir=os.path.join(out, "cache"))
        duration_s = data.shape[0] / rate
        try:
            with progress_bar("playing", disable=args.json) as update:
                def playing(rec, t_play):  # the bar follows the file's time axis
                    if t_play is not None:
                        update(min(t_play, duration_s), duration_s)

                rep = P.play_and_score(data, rate, side, m, room, wait_board_s=60,
                                       on_record=playing)
        finally:
            m.close()
    wall_s = time.monotonic() - t_wall
    offline = detect.detect_samples(room.clip.samples, key)
    off_res, off_unexp = P.score_segments(side.segments, [P.Detection(0, e["t"], e["score"], key["key_id"])
                                                          for e in offline.events])
    summary = dict(rep.summary, preset=args.preset, speed=args.speed, wall_s=round(wall_s, 1),
                   embedder="reference %g dB" % args.reference if args.reference is not None
                   else "embed_array strength %s" % ("default" if args.strength_db is None
                                                     else "%g dB" % args.strength_db),
                   offline_hits=sum(r.hit for r in off_res), offline_unexpected=len(off_unexp),
                   offline_max_score=round(offline.max_score, 3), threshold=key["threshold"],
                   room_delay_s=room.infos[0]["delay_s"])
    if args.json:
        for r in rep.to_records()[:-1]:
            print(json.dumps(r))
        print(json.dumps(summary))
        return 0
    print("%-4s %8s %8s  %-5s %9s %7s   offline: %-5s %9s %7s" % (
        "#", "start", "end", "board", "latency", "score", "hit", "latency", "score"))
    for r, o in zip(rep.results, off_res):
        print("%-4d %8.2f %8.2f  %-5s %9s %7s            %-5s %9s %7s" % (
            r.index + 1, r.start_s, r.end_s, "hit" if r.hit else "miss",
            "-" if r.latency_s is None else "%+.3f" % r.latency_s, "-" if r.score is None else r.score,
            "hit" if o.hit else "miss", "-" if o.latency_s is None else "%+.3f" % o.latency_s,
            "-" if o.score is None else o.score))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(toolcli.run("virtual_play", main))
