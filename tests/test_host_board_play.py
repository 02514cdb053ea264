"""airmark play: sidecar reading, segment scoring, and end to end -- the samples go through the
simulated room (airmark.channel.simulate) into a virtual board running the real firmware loop."""

import json
import sys
import time

import numpy as np
import pytest

import signals
from airmark import cli, detect, keys
from airmark import monitor as mon
from airmark import play as P
from virtual_board import ScaledClock, SimulatedRoomOutput, VirtualBoard

FS = 16000


# ---------------------------------------------------------------- sidecar


def write(path, obj):
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def test_sidecar_defensive(tmp_path):
    s = P.load_sidecar(write(tmp_path / "a.json", {
        "format": "airmark-embed", "version": 1, "key_id": "k1", "samplerate": 44100,
        "segments": [[12.0, 14.0], [2.0, 4.0]], "whr_db": -20.1, "future_field": {"x": 1}}))
    assert s.key_id == "k1" and s.samplerate == 44100 and s.segments == [(2.0, 4.0), (12.0, 14.0)]
    s = P.load_sidecar(write(tmp_path / "b.json", {"key_id": 7, "samplerate": "44.1k",
                                                   "segments": [{"start_s": 1, "end_s": 3}]}))
    assert s.key_id == "7" and s.samplerate is None and s.segments == [(1.0, 3.0)]
    bad = [("c.json", "{not json", "unreadable sidecar"),
           ("d.json", [1, 2], "must be a JSON object"),
           ("e.json", {"key_id": "k"}, "no 'segments' list"),
           ("f.json", {"segments": [[3.0, 1.0]]}, "ends (1 s) before it starts"),
           ("g.json", {"segments": [[1.0]]}, "must be [start_s, end_s]"),
           ("h.json", {"segments": [["a", 2]]}, "non-negative number"),
           ("i.json", {"segments": [[float("nan"), 2]]}, "non-negative number"),
           ("j.json", {"segments": [{"begin": 1}]}, "needs start_s and end_s")]
    for name, content, msg in bad:
        with pytest.raises(P.PlayError, match=msg.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            P.load_sidecar(write(tmp_path / name, content))
    with pytest.raises(P.PlayError, match="no sidecar"):
        P.default_sidecar(str(tmp_path / "x.wav"))


def test_sidecar_written_by_embed_file(tmp_path):
    import soundfile as sf

    from airmark import embed

    key = signals.key_record(seed=2)
    src = tmp_path / "host.wav"
    sf.write(str(src), signals.music_like(8.0, seed=1), FS, subtype="PCM_16")
    info = embed.embed_file(str(src), str(tmp_path / "marked.wav"), key, start_s=3.0, duration_s=2.0)
    s = P.default_sidecar(str(tmp_path / "marked.wav"))
    assert s.path == info["sidecar"] and s.key_id == key["key_id"] and s.samplerate == FS
    assert len(s.segments) == 1 and abs(s.segments[0][0] - 3.0) < 0.05 and abs(s.segments[0][1] - 5.0) < 0.05


# ---------------------------------------------------------------- scoring


def det(t, loop=0, score=9.0):
    return P.Detection(loop, t, score, "k1")


def test_score_segments_windows():
    segs = [(2.0, 4.0), (8.0, 10.0), (14.0, 16.0), (20.0, 22.0)]
    dets = [det(3.49), det(3.6), det(4.2), det(11.5), det(11.6), det(18.0)]
    res, unexpected = P.score_segments(segs, dets)
    assert [r.hit for r in res] == [True, True, False, False]
    assert res[0].latency_s == -0.4 and res[0].t_s == 3.6       # 3.49 is before end - 0.5
    assert res[1].latency_s == 1.5                               # the window's far edge counts
    assert [d.t_s for d in unexpected] == [11.6, 18.0]          # 3.49 and 4.2 are inside a mark
    s = P.summarize(res, unexpected)
    assert (s["segments"], s["hits"], s["misses"], s["hit_rate"], s["unexpected"]) == (4, 2, 2, 0.5, 2)
    assert s["latency_s_median"] == 0.55 and s["latency_s_min"] == -0.4 and s["latency_s_max"] == 1.5
    # one detection serves one segment, even where windows overlap
    res, unexpected = P.score_segments([(0.0, 2.0), (1.0, 3.0)], [det(2.5)])
    assert [r.hit for r in res] == [True, False] and not unexpected
    assert P.summarize([], [])["hit_rate"] is None
    # a whole marked song: detected every few seconds, scored once at its end
    res, unexpected = P.score_segments([(0.0, 30.0)], [det(t) for t in (2.1, 6.3, 10.4, 29.9, 31.0, 32.0)])
    assert res[0].hit and res[0].t_s == 29.9 and [d.t_s for d in unexpected] == [32.0]


# ---------------------------------------------------------------- no PortAudio


def test_missing_sounddevice_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)        # import raises ImportError
    with pytest.raises(P.AudioOutputMissing, match="needs sounddevice and the PortAudio library"):
        P.SoundDeviceOutput().start(np.zeros((100, 1)), FS)
    import soundfile as sf

    wav = tmp_path / "m.wav"
    sf.write(str(wav), np.zeros(FS), FS)
    write(str(wav) + ".airmark.json", {"key_id": "k1", "segments": [[0.1, 0.5]], "samplerate": FS})
    assert cli.main(["play", str(wav), "--port", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("airmark: airmark play needs sounddevice")


def test_an_unusable_output_device_fails_before_anything_starts(tmp_path, monkeypatch, capsys):
    """A device PortAudio does not know is one line, exit 2, before the board's port is
    opened and before the "playing ..." line (real sounddevice, `make deps` installs it)."""
    import soundfile as sf

    wav = tmp_path / "m.wav"
    sf.write(str(wav), np.zeros(FS), FS)
    write(str(wav) + ".airmark.json", {"key_id": "k1", "segments": [[0.1, 0.5]], "samplerate": FS})
    opened = []
    monkeypatch.setattr(mon, "serial_connector", lambda *a, **k: opened.append(a))
    assert cli.main(["play", str(wav), "--device", "no-such-device-airmark"]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("airmark: cannot open audio output 'no-such-device-airmark'")
    assert cap.out == "" and opened == []


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def key_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("key") / "key.json")
    keys.save(keys.generate(1), path)
    return path


def marked_file(key, n_marks, *, gap_s=4.0, lead_s=2.0, whr_db=-6.0, seed=3):
    """Music with `n_marks` 2 s reference marks; returns (float audio, segments)."""
    total = lead_s + n_marks * (2.0 + gap_s) + 1.0
    y = signals.music_like(total, seed=seed)
    segs = []
    for i in range(n_marks):
        y, seg = signals.embed_reference(y, key, lead_s + i * (2.0 + gap_s), whr_db)
        segs.append(seg)
    return y, segs


def run_play(key_path, workdir, y, segs, preset, *, loops=1, speed=3.0):
    key = keys.load(key_path)
    side = P.Sidecar(path="test", key_id=key["key_id"], segments=segs, samplerate=FS)
    clock = ScaledClock(speed)
    records = []
    with VirtualBoard(key_path, workdir, clock=clock) as board:
        m = mon.Monitor(mon.serial_connector(board.port), clock=clock, sleep=clock.sleep)
        out = SimulatedRoomOutput(board, preset, cache_dir=str(workdir / "rir-cache"))
        try:
            rep = P.play_and_score(y[:, None], FS, side, m, out, loops=loops, gap_s=1.0,
                                   on_record=lambda r, t: records.append((r, t)), wait_board_s=60)
        finally:
            m.close()
    return rep, out, records


def test_play_near_1m_all_hits_with_loop(tmp_path, key_path):
    key = keys.load(key_path)
    y, segs = marked_file(key, 2)
    rep, out, records = run_play(key_path, tmp_path, y, segs, "near-1m", loops=2)
    s = rep.summary
    assert (s["loops"], s["segments"], s["hits"], s["misses"], s["unexpected"]) == (2, 4, 4, 0, 0)
    assert s["board_key"] == s["file_key"] == key["key_id"] and not rep.warnings
    assert [(r.loop, r.index) for r in rep.results] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # the board's detection time on the file's axis agrees with the detector run offline
    # over the very samples the microphone got (same hop grid: within two hops + USB)
    offline = detect.detect_samples(out.clip.samples, key).events
    assert len(offline) == 2
    for r, ev in zip(rep.results[2:], offline):
        assert abs(r.t_s - ev["t"]) < 0.05
        assert -0.5 <= r.latency_s <= 1.5
    plays = [t for r, t in records if r["event"] == "detection"]
    assert len(plays) == 4 and all(t is not None for t in plays)
    recs = rep.to_records()
    assert [x["event"] for x in recs] == ["segment"] * 4 + ["summary"]
    assert json.loads(json.dumps(recs))[0]["hit"] is True


def test_play_living_room_6m_matches_offline(tmp_path, key_path):
    """Through the 6.1 m room (RT60 0.5 s, pink noise at 10 dB SNR, 100 ppm drift): whatever the
    detector can do there, the board via play must score the same (within one segment)."""
    key = keys.load(key_path)
    y, segs = marked_file(key, 3, gap_s=3.0)
    rep, out, _ = run_play(key_path, tmp_path, y, segs, "living-room-6m", speed=3.0)
    assert out.infos[0]["config"]["distance_m"] == 6.1 and out.infos[0]["delay_s"] > 0.015
    offline = detect.detect_samples(out.clip.samples, key).events
    off_res, _ = P.score_segments(segs, [det(e["t"]) for e in offline])
    # this seed's room leaves the marks findable (3 of 3 offline): both sides must find them
    assert sum(r.hit for r in off_res) >= 2 and rep.summary["hits"] >= 2
    assert abs(rep.summary["hits"] - sum(r.hit for r in off_res)) <= 1
    for r, o in zip(rep.results, off_res):
        if r.hit and o.hit:
            assert abs(r.t_s - o.t_s) < 0.05
    assert rep.summary["segments"] == 3 and rep.summary["disconnects"] == 0


def test_play_warns_on_key_mismatch(tmp_path, key_path):
    key = keys.load(key_path)
    y, segs = marked_file(key, 1, gap_s=1.0)
    side = P.Sidecar(path="test", key_id="other-key", segments=segs)
    clock = ScaledClock(4.0)
    with VirtualBoard(key_path, tmp_path, clock=clock) as board:
        m = mon.Monitor(mon.serial_connector(board.port), clock=clock, sleep=clock.sleep)
        try:
            rep = P.play_and_score(y[:, None], FS, side, m, SimulatedRoomOutput(board, "digital"),
                                   wait_board_s=60)
        finally:
            m.close()
    assert rep.summary["hits"] == 1
    assert rep.warnings == ["the board listens for key %s but the file is marked with key other-key"
                            % key["key_id"]]


def test_play_survives_unplug_replug(tmp_path, key_path):
    """The board is unplugged and replugged between two marks; the sound keeps playing."""
    import threading

    key = keys.load(key_path)
    y, segs = marked_file(key, 3, gap_s=8.0)
    side = P.Sidecar(path="test", key_id=key["key_id"], segments=segs)
    clock = ScaledClock(3.0)
    events = []
    with VirtualBoard(key_path, tmp_path, clock=clock) as board:
        out = SimulatedRoomOutput(board, "digital")

        def power_cycle():
            while out.clip is None or out.clip.pos < 5.0 * FS:    # after the first mark
                if out.clip is not None and out.clip.finished.is_set():
                    return
                time.sleep(0.01)
            board.unplug()
            events.append("unplugged at %.2f s" % (out.clip.pos / FS))
            board.plug()

        t = threading.Thread(target=power_cycle, daemon=True)
        m = mon.Monitor(mon.serial_connector(board.port), clock=clock, sleep=clock.sleep)
        t.start()
        try:
            rep = P.play_and_score(y[:, None], FS, side, m, out, wait_board_s=60)
        finally:
            m.close()
            t.join(5)
        hellos = m.stats.events["hello"]
    assert len(events) == 1 and board.boots == 2
    s = rep.summary
    assert s["disconnects"] == 1 and hellos == 2
    # the first mark was heard before the unplug, the last by the rebooted board (the middle
    # one too unless the reboot took more than 8 s of audio)
    assert rep.results[0].hit and rep.results[2].hit and s["unexpected"] == 0


def test_play_cli_json(tmp_path, key_path, monkeypatch, capsys):
    """`airmark play FILE --json` with the sound card swapped for the room + virtual board."""
    import soundfile as sf

    key = keys.load(key_path)
    y, segs = marked_file(key, 1, gap_s=0.5, lead_s=1.0)
    wav = str(tmp_path / "marked.wav")
    sf.write(wav, y, FS, subtype="PCM_16")
    write(P.sidecar_path(wav), {"format": "airmark-embed", "version": 1, "key_id": key["key_id"],
                                "segments": segs, "samplerate": FS})
    with VirtualBoard(key_path, tmp_path) as board:
        monkeypatch.setattr(P, "SoundDeviceOutput", lambda device: SimulatedRoomOutput(board, "digital"))
        rc = cli.main(["play", wav, "--port", board.port, "--json", "--log", str(tmp_path / "p.jsonl")])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rc == 0
    dets = [x for x in lines if x["event"] == "detection"]
    assert len(dets) == 1 and abs(dets[0]["play_t"] - segs[0][1]) < 0.5
    seg = [x for x in lines if x["event"] == "segment"]
    assert len(seg) == 1 and seg[0]["hit"] and seg[0]["latency_s"] == round(dets[0]["play_t"] - segs[0][1], 3)
    assert lines[-1]["event"] == "summary" and lines[-1]["hits"] == 1 and lines[-1]["board_key"] == key["key_id"]
    with open(tmp_path / "p.jsonl") as f:
        assert [json.loads(x)["event"] for x in f].count("detection") == 1
