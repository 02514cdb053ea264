"""Hard inputs on the command line: one line on stderr, the documented exit code, and no
file lost or half-written. Each case was once a traceback, a silent overwrite or a
misleading exit code."""

import errno
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from airmark import cli, embed, keys
from embed_helpers import make_key, music_like

FS = 16000


@pytest.fixture(scope="module")
def key():
    return make_key(1234)


@pytest.fixture()
def files(tmp_path, key):
    keyfile = str(tmp_path / "key.json")
    keys.save(key, keyfile)
    src = str(tmp_path / "in.wav")
    sf.write(src, music_like(3.0, FS), FS, subtype="PCM_16")
    return tmp_path, keyfile, src


def one_line_error(capsys, argv, code=2, text=None):
    rc = cli.main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == code, err
    assert len(lines) == 1 and lines[0].startswith("airmark: "), err
    if text is not None:
        assert text in lines[0], err
    return lines[0]


def listing(d):
    return sorted(os.listdir(d))


def test_detect_plot_never_overwrites_an_input(files, capsys):
    d, keyfile, src = files
    before = open(src, "rb").read()
    one_line_error(capsys, ["detect", src, "--key", keyfile, "--plot", src], text="*.png")
    png = str(d / "in.png")
    os.symlink(src, png)
    one_line_error(capsys, ["detect", src, "--key", keyfile, "--plot", png],
                   text="is an input")
    assert open(src, "rb").read() == before


def test_detect_micropython_that_is_not_one(files, capsys):
    d, keyfile, src = files
    one_line_error(capsys, ["detect", src, "--key", keyfile, "--micropython", ""],
                   text="empty path")
    script = d / "notexec.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    one_line_error(capsys, ["detect", src, "--key", keyfile, "--micropython", str(script)],
                   text="cannot run")
    one_line_error(capsys, ["detect", src, "--key", keyfile, "--micropython", str(d)],
                   text="cannot run")
    script.chmod(0o755)  # runs, prints no replay lines: an error, not "no watermark" (1)
    one_line_error(capsys, ["detect", src, "--key", keyfile, "--micropython", str(script)],
                   text="printed no replay output")


def test_detect_exit_code_survives_a_closed_pipe(files, key):
    """`airmark detect ... --json | head -1`: the reader goes away, the marks were found,
    so the exit code is 0 (click would make it 1, "none found")."""
    d, keyfile, src = files
    y, _ = embed.embed_array(music_like(6.0, FS), FS, key, start_s=1.0, duration_s=2.0)
    marked = str(d / "marked.wav")
    sf.write(marked, y, FS, subtype="PCM_16")
    code = "import sys; from airmark.cli import main; sys.exit(main())"
    for path, want in ((marked, 0), (src, 1)):
        p = subprocess.Popen([sys.executable, "-c", code, "detect", path, "--key", keyfile,
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()  # before the command writes anything
        err = p.stderr.read().decode()
        assert p.wait(timeout=120) == want, err
        assert "Traceback" not in err and "Broken pipe" not in err


LISTEN_ON_A_STAND_IN_MIC = """
import os, sys
import numpy as np
from airmark import cli, listen

class Mic:  # the microphone: the samples of an .npy file, 1024 at a time, then the end
    name, rate, overflows, finished = "test mic", 16000, 0, False

    def __init__(self, device=None):
        self.x, self.pos = np.load(os.environ["AIRMARK_TEST_MIC"]), 0

    def start(self):
        pass

    def read(self, timeout_s):
        if os.environ.get("AIRMARK_TEST_MIC_LOOP") and self.pos >= len(self.x):
            self.pos = 0  # a microphone that never stops
        self.finished = self.pos >= len(self.x)
        self.pos += 1024
        return None if self.finished else self.x[self.pos - 1024:self.pos]

    def stop(self):
        pass

listen.MicSource = Mic
sys.exit(cli.main())
"""


def test_listen_exit_code_survives_a_closed_pipe(files, key):
    """`airmark listen --json | head -1`: the same for a live command; the reader is gone
    before the first line (the detection, for the marked clip), so the exit code is 0 for
    the mark and 1 for the plain clip, whose only line is the summary."""
    from airmark import audio
    d, keyfile, _ = files
    y, _ = embed.embed_array(music_like(6.0, FS), FS, key, start_s=1.0, duration_s=2.0)
    for name, x, want in (("marked", y, 0), ("plain", music_like(6.0, FS), 1)):
        mic = str(d / (name + ".npy"))
        np.save(mic, audio.to_detector_int16(x, FS))
        p = subprocess.Popen([sys.executable, "-c", LISTEN_ON_A_STAND_IN_MIC, "listen", "--key",
                              keyfile, "--json", "--status-every", "1000"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(os.environ, AIRMARK_TEST_MIC=mic))
        p.stdout.close()  # before the command writes anything
        err = p.stderr.read().decode()
        assert p.wait(timeout=120) == want, err
        assert "Traceback" not in err and "Broken pipe" not in err


def test_listen_stops_when_its_reader_has_gone(files, key):
    """`airmark listen --json | head -1` on a microphone that never stops: once the line
    is read and the reader has gone there is nothing left to do, so listen ends (exit 0:
    it heard the mark) instead of listening on into /dev/null until Ctrl-C."""
    from airmark import audio
    d, keyfile, _ = files
    y, _ = embed.embed_array(music_like(6.0, FS), FS, key, start_s=1.0, duration_s=2.0)
    mic = str(d / "loop.npy")
    np.save(mic, audio.to_detector_int16(y, FS))
    p = subprocess.Popen([sys.executable, "-c", LISTEN_ON_A_STAND_IN_MIC, "listen", "--key",
                          keyfile, "--json", "--status-every", "1000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, AIRMARK_TEST_MIC=mic, AIRMARK_TEST_MIC_LOOP="1"))
    p.stdout.close()
    try:
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read().decode()
    assert rc == 0, err
    assert "Traceback" not in err


def test_detect_refuses_nan_audio(files, capsys):
    d, keyfile, _ = files
    x = music_like(3.0, FS)
    x[100] = np.nan
    bad = str(d / "nan.wav")
    sf.write(bad, x, FS, subtype="FLOAT")
    one_line_error(capsys, ["detect", bad, "--key", keyfile], text="NaN")


def test_embed_bad_input_leaves_no_output(files, capsys):
    d, keyfile, src = files
    x = music_like(3.0, FS)
    x[20000:20010] = np.inf
    bad = str(d / "inf.wav")
    sf.write(bad, x, FS, subtype="FLOAT")
    line = one_line_error(capsys, ["embed", bad, str(d / "o.wav"), "--key", keyfile])
    assert "inf.wav: the audio has a NaN or infinite sample at 1.250 s" in line
    # a FLAC that breaks off mid-stream
    flac = str(d / "ok.flac")
    sf.write(flac, music_like(20.0, FS), FS)
    data = open(flac, "rb").read()
    trunc = str(d / "trunc.flac")
    open(trunc, "wb").write(data[:len(data) // 3])
    one_line_error(capsys, ["embed", trunc, str(d / "o.wav"), "--key", keyfile],
                   text="cannot read past")
    one_line_error(capsys, ["detect", trunc, "--key", keyfile], text="cannot read past")
    # OUT in a directory that does not exist
    one_line_error(capsys, ["embed", src, str(d / "nodir" / "o.wav"), "--key", keyfile],
                   text="cannot write")
    assert listing(d) == ["in.wav", "inf.wav", "key.json", "ok.flac", "trunc.flac"]


def test_embed_publishes_out_only_with_its_sidecar(files, capsys, monkeypatch):
    from airmark import fsutil
    d, keyfile, src = files
    os.mkdir(str(d / "o.wav.airmark.json"))  # the sidecar cannot be written
    one_line_error(capsys, ["embed", src, str(d / "o.wav"), "--key", keyfile],
                   text="cannot write")
    assert not (d / "o.wav").exists()
    assert not [f for f in listing(d) if f.startswith(".airmark-")]
    os.rmdir(str(d / "o.wav.airmark.json"))

    # OUT itself cannot be published (disk full when AudioWriter closes): no sidecar either
    real_publish = fsutil.publish

    def publish_fails_for(suffix):
        def publish(tmp, path):
            if str(path).endswith(suffix):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_publish(tmp, path)
        monkeypatch.setattr(fsutil, "publish", publish)

    out = d / "o.wav"
    publish_fails_for(".wav")
    one_line_error(capsys, ["embed", src, str(out), "--key", keyfile], text="cannot write")
    assert listing(d) == ["in.wav", "key.json"]
    # with --force over an older OUT: the old OUT and the sidecar that describes it stay
    monkeypatch.setattr(fsutil, "publish", real_publish)
    assert cli.main(["embed", src, str(out), "--key", keyfile, "--strength", "0"]) == 0
    capsys.readouterr()
    old = (out.read_bytes(), (d / "o.wav.airmark.json").read_bytes())
    publish_fails_for(".wav")
    one_line_error(capsys, ["embed", src, str(out), "--key", keyfile, "--force"],
                   text="cannot write")
    assert (out.read_bytes(), (d / "o.wav.airmark.json").read_bytes()) == old
    assert listing(d) == ["in.wav", "key.json", "o.wav", "o.wav.airmark.json"]
    # the sidecar fails after OUT was published: OUT is put back as it was
    publish_fails_for(".airmark.json")
    one_line_error(capsys, ["embed", src, str(out), "--key", keyfile, "--force"],
                   text="o.wav left as it was")
    assert (out.read_bytes(), (d / "o.wav.airmark.json").read_bytes()) == old
    assert listing(d) == ["in.wav", "key.json", "o.wav", "o.wav.airmark.json"]
    one_line_error(capsys, ["embed", src, str(d / "new.wav"), "--key", keyfile],
                   text="new.wav not written")
    assert listing(d) == ["in.wav", "key.json", "o.wav", "o.wav.airmark.json"]


def test_embed_start_past_a_decoded_end_writes_nothing(files, capsys, ffmpeg):
    """ffprobe's duration of an AAC file is an estimate; a start between the real end and
    the estimate used to fail after OUT was published."""
    from airmark import audio
    d, keyfile, src = files
    aac = str(d / "in.aac")  # raw ADTS: ffprobe estimates its duration from the bit rate
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", src, "-c:a", "aac", aac], check=True)
    est = audio.audio_info(aac)["frames"] / FS
    real = audio.read_audio(aac)[0].shape[0] / FS
    assert est > real  # the encoder's padding: the case this test is about
    start = (real + est) / 2
    out = d / "late.wav"
    one_line_error(capsys, ["embed", aac, str(out), "--key", keyfile, "--start", "%.4f" % start],
                   text="after the end")
    assert not out.exists()


def test_embed_warns_when_the_mark_is_shorter_than_the_key(files, capsys):
    d, keyfile, src = files
    assert cli.main(["embed", src, str(d / "o.wav"), "--key", keyfile, "--start", "2.5"]) == 0
    err = capsys.readouterr().err
    assert "lasts 0.500 s, under the key's 2.00 s" in err
    assert cli.main(["embed", src, str(d / "o2.wav"), "--key", keyfile, "--start", "0.5",
                     "--duration", "2"]) == 0
    assert "under the key" not in capsys.readouterr().err


def test_keygen_paths_and_values(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, ["keygen", ""], text="not a file name")
    one_line_error(capsys, ["keygen", "nodir/k.json"], text="cannot write")
    for bad, text in ((["--seconds", "nan"], "'nan' is not a finite number"),
                      (["--seconds", "inf"], "'inf' is not a finite number"),
                      (["--seconds", "0"], "0.0 is not in the range x>0.0"),
                      (["--threshold", "nan"], "'nan' is not a finite number")):
        line = one_line_error(capsys, ["keygen", "k.json"] + bad, text=text)
        assert "'%s'" % bad[0] in line, line
    assert listing(tmp_path) == []
    assert cli.main(["keygen", "k.json", "--seed", "1"]) == 0
    assert oct(os.stat("k.json").st_mode & 0o777) == oct(0o666 & ~_umask())
    open("audio.wav", "wb").write(b"RIFF\x80\x81\xfe\xff" * 10)
    one_line_error(capsys, ["detect", "audio.wav", "--key", "audio.wav"],
                   text="not a key file (not UTF-8 text)")


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_simulate_guards_its_input_and_its_knobs(files, capsys):
    d, keyfile, src = files
    before = open(src, "rb").read()
    one_line_error(capsys, ["simulate", src, src, "--preset", "digital"],
                   text="is the input file")
    assert open(src, "rb").read() == before
    one_line_error(capsys, ["simulate", src, str(d / "o.mp3"), "--preset", "digital"],
                   text="*.wav")
    one_line_error(capsys, ["simulate", src, str(d / "o.wav"), "--distance", "100",
                            "--room-dim", "5x4x3"], text="outside room")
    for setting, text in (("mic_snr_db=abc", "wants a finite number"),
                          ("spatial=maybe", "wants true or false"),
                          ('room_dim_m=["a","b","c"]', "wants null or [x, y, z]"),
                          ("distance_m=nan", "wants a finite number")):
        one_line_error(capsys, ["simulate", src, str(d / "o.wav"), "--set", setting], text=text)
    for opt in ("--snr", "--distance", "--drift-ppm", "--spl"):
        one_line_error(capsys, ["simulate", src, str(d / "o.wav"), opt, "nan"],
                       text="not a finite number")
    one_line_error(capsys, ["simulate", src, str(d / "nodir" / "o.wav"), "--preset",
                            "digital"], text="cannot write")
    assert listing(d) == ["in.wav", "key.json"]
    assert cli.main(["simulate", src, str(d / "o.wav"), "--preset", "digital"]) == 0
    assert listing(d) == ["in.wav", "key.json", "o.wav"]
    assert sf.info(str(d / "o.wav")).samplerate == FS


def test_eval_fails_before_the_grid(files, capsys, tmp_path):
    d, keyfile, src = files
    corpus = d / "corpus"
    (corpus / "music").mkdir(parents=True)
    base = ["eval", "--corpus", str(corpus), "--key", keyfile, "--jobs", "1",
            "--visqol-clips", "0", "--cache-dir", str(d / "cache")]
    one_line_error(capsys, base + ["--out", str(d / "o"), "--distance", "1,nan"],
                   text="finite numbers")
    blocker = d / "file"
    blocker.write_text("x")
    one_line_error(capsys, base + ["--out", str(blocker / "o")], text="cannot write the report")
    (corpus / "manifest.json").write_text('{"clips": 5}')
    one_line_error(capsys, base + ["--out", str(d / "o")], text="not a corpus manifest")
    (corpus / "manifest.json").unlink()
    sf.write(str(corpus / "music" / "low.wav"), music_like(6.0, 8000), 8000, subtype="PCM_16")
    line = one_line_error(capsys, base + ["--out", str(d / "o"), "--distance", "1", "--rt60",
                                          "0.3", "--snr", "20", "--drift", "0",
                                          "--positions", "0"])
    assert "music/low.wav:" in line and "16000" in line


def test_logs_in_missing_directories(tmp_path, capsys):
    log = str(tmp_path / "nodir" / "x.log")
    one_line_error(capsys, ["monitor", "--log", log], text="cannot write the log")
    one_line_error(capsys, ["monitor", "--duration", "-1"], text="-1.0 is not in the range x>0.0")
    one_line_error(capsys, ["monitor", "--duration", "nan"], text="not a finite number")


def test_progress_bars_draw_on_stderr_never_on_stdout(monkeypatch, capsys):
    """With stderr a terminal and stdout a pipe (`airmark eval ... > report`, or --json read
    by a script), the bars appear on stderr and stdout holds only what the command prints."""
    import io

    from airmark import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    with progress.progress_bars("one", "two") as (a, b):
        for i in range(5):
            a(i + 1, 5)
            b(i, 5)
    with progress.progress_bar("three") as c:
        c(1, 2)
    assert capsys.readouterr().out == ""
    assert "one" in term.getvalue() and "three" in term.getvalue()
    # not a terminal: nothing drawn anywhere
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with progress.progress_bar("four") as d:
        d(1, 1)
    assert sys.stderr.getvalue() == "" and capsys.readouterr().out == ""
