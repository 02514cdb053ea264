"""The developer scripts in tools/ as a demanding user meets them: --help, a wrong command
line or a bad input is one line on stderr and exit 2 (never a traceback), Ctrl-C is one
line and exit 130, and an interrupted run leaves no half-written file."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import require_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)

import toolcli  # noqa: E402

SCRIPTS = ("bench", "bench_host", "bench_viper", "build_corpus", "calibrate", "demo",
           "golden_check", "make_golden", "measure_quality", "ota_study", "replay",
           "room_check", "thumb_emu", "virtual_play")
GOLDEN = os.path.join(ROOT, "tests", "golden")


def tool(name, *args, exe=None, cwd=None):
    return subprocess.run([exe or sys.executable, os.path.join(TOOLS, name + ".py")]
                          + [str(a) for a in args],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def assert_one_line(r, name, rc=2, says=None):
    """Exit `rc`, nothing on stdout, exactly one line on stderr starting `name: `."""
    err = r.stderr.strip().splitlines()
    assert r.returncode == rc, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr + r.stdout
    assert len(err) == 1 and err[0].startswith(name + ": "), err
    assert r.stdout == "", r.stdout
    if says:
        assert says in err[0], err


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_answers_help(name):
    r = tool(name, "--help")
    assert r.returncode == 0 and r.stdout.strip() and r.stderr == "", (r.returncode, r.stderr)


@pytest.fixture()
def empty_corpus(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "manifest.json").write_text('{"clips": []}')
    return d


@pytest.fixture()
def bad_json(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    return p


@pytest.mark.parametrize("name,args,says", [
    ("bench", ["--bogus"], "unrecognized arguments: --bogus"),
    ("bench", ["--seconds", "nan"], "not a finite number"),
    ("bench", ["--seconds", "-1"], "must be > 0"),
    ("bench", ["{bad_json}"], "not valid JSON"),
    ("bench", ["{tmp}/missing.json"], "no such file"),
    ("bench_host", ["--seconds", "inf"], "not a finite number"),
    ("bench_host", ["--micropython", "{tmp}/no-such-binary"], "no such program"),
    ("bench_host", ["--memory-minutes", "-1"], "--memory-minutes must be >= 0"),
    ("build_corpus", ["{tmp}/c", "--clips-per-category", "0"], "must be >= 1"),
    ("build_corpus", ["{tmp}/c", "--minutes-per-category", "nan"], "not a finite number"),
    ("calibrate", ["--corpus", "{empty}"], "has no clips"),
    ("calibrate", ["--corpus", "{tmp}", "--target-per-hour", "nan"], "not a finite number"),
    ("calibrate", ["--corpus", "{tmp}", "--jobs", "0"], "must be >= 1"),
    ("calibrate", ["--corpus", "{bad_dir}"], "not valid JSON"),
    ("demo", ["--out", "{bad_json}"], "cannot create the folder"),
    ("demo", ["--micropython", "{tmp}/no-such-binary"], "no such program"),
    ("make_golden", ["{bad_json}/sub"], "cannot create the folder"),
    ("make_golden", ["--from", "{tmp}/none"], "no such golden folder"),
    ("make_golden", ["--from", "{tmp}"], "key.json: no such key file"),
    ("make_golden", ["--from", GOLDEN, "--line-enhancer"], "leave out --line-enhancer"),
    ("measure_quality", ["{tmp}/missing.ogg", "--no-visqol", "--no-speed"], "no such file"),
    ("measure_quality", ["--seconds", "nan"], "not a finite number"),
    ("ota_study", ["--corpus", "{empty}"], "has no clips"),
    ("ota_study", ["--corpus", "{tmp}/none"], "no such corpus directory"),
    ("ota_study", ["--corpus", "{empty}", "--clips", "0"], "must be >= 1"),
    ("ota_study", ["--corpus", "{empty}", "--azimuths", "nan"], "--azimuths"),
    ("room_check", ["--distance", ""], "--distance needs at least one number"),
    ("room_check", ["--distance", "nan"], "finite numbers"),
    ("virtual_play", ["--marks", "0"], "must be >= 1"),
    ("virtual_play", ["--speed", "0"], "must be > 0"),
    ("virtual_play", ["--preset", "nope"], "invalid choice"),
    ("virtual_play", ["--out", "{bad_json}"], "cannot create the folder"),
    ("golden_check", ["--bogus"], "unknown option --bogus"),
    ("golden_check", ["{tmp}"], "key.json: cannot read"),
    ("bench_viper", [GOLDEN + "/key.json"], "runs under MicroPython"),
    ("thumb_emu", ["{tmp}/none"], "no such golden folder"),
    ("thumb_emu", ["--key", "{bad_json}"], "not valid JSON"),
    ("thumb_emu", ["--key", "{tmp}/none.json"], "no such key file"),
    ("thumb_emu", ["{tmp}"], "key.json: no such key file"),
    ("thumb_emu", ["--arch", "xtensawin"], "invalid choice"),
    ("thumb_emu", ["--cost-hops", "-1"], "must be >= 0"),
])
def test_bad_command_lines_and_inputs_are_one_line(tmp_path, empty_corpus, bad_json, name, args,
                                                    says):
    bad_dir = tmp_path / "badman"
    bad_dir.mkdir()
    (bad_dir / "manifest.json").write_text("{not json")
    args = [a.format(tmp=tmp_path, empty=empty_corpus, bad_json=bad_json, bad_dir=bad_dir)
            for a in args]
    r = tool(name, *args, cwd=str(tmp_path))
    assert_one_line(r, name, says=says)
    assert not (tmp_path / "c").exists()  # build_corpus made nothing


def test_build_corpus_with_no_category_keeps_the_manifest(tmp_path):
    """`--categories ''` used to overwrite the corpus's manifest with an empty one."""
    out = tmp_path / "corpus"
    out.mkdir()
    manifest = out / "manifest.json"
    manifest.write_text('{"clips": ["kept"]}\n')
    r = tool("build_corpus", out, "--categories", ",")
    assert_one_line(r, "build_corpus", says="--categories names none")
    assert manifest.read_text() == '{"clips": ["kept"]}\n'
    assert os.listdir(out) == ["manifest.json"]


def test_build_corpus_ctrl_c_leaves_whole_clips_and_no_manifest(tmp_path):
    """Ctrl-C while clips are written: exit 130, one line; the clips already there are
    whole, no temporary file is left and no manifest claims the unfinished corpus."""
    require_tool("espeak-ng")
    out = tmp_path / "corpus"
    p = subprocess.Popen([sys.executable, os.path.join(TOOLS, "build_corpus.py"), str(out),
                          "--categories", "speech", "--clips-per-category", "40"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = out / "speech" / "speech_0000.wav"
    t_end = time.monotonic() + 20
    while not first.exists() and time.monotonic() < t_end and p.poll() is None:
        time.sleep(0.02)
    assert first.exists()
    p.send_signal(signal.SIGINT)
    out_text, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert err.strip().splitlines() == ["build_corpus: interrupted"] and out_text == ""
    names = os.listdir(out / "speech")
    assert names and all(n.startswith("speech_") and n.endswith(".wav") for n in names), names
    assert not (out / "manifest.json").exists()
    assert [n for n in os.listdir(out) if n.startswith(".")] == []


def test_calibrate_checks_write_default_before_the_long_run(tmp_path):
    """A key --write-default cannot store is refused at once (the corpus is never read)."""
    from airmark import keys
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "manifest.json").write_text(json.dumps(
        {"clips": [{"category": "music", "file": "music/not-there.wav"}]}))
    key = tmp_path / "k.json"
    other = 1 if keys.DEFAULTS["diff_weight"] != 1 else 2
    keys.save(keys.generate(seed=3, diff_weight=other), str(key))
    r = tool("calibrate", "--corpus", corpus, "--key", key, "--write-default", "--json",
             cwd=str(tmp_path))
    assert_one_line(r, "calibrate", says="--write-default needs a key with the default")
    # without --write-default the same corpus fails on its missing clip, in one line
    r = tool("calibrate", "--corpus", corpus, "--presets", "digital", cwd=str(tmp_path))
    assert_one_line(r, "calibrate", says="not-there.wav: cannot read")


def test_measure_quality_without_clips_says_what_to_install(monkeypatch, capsys):
    import measure_quality
    monkeypatch.setattr(measure_quality, "DEFAULT_GLOBS", ())
    with pytest.raises(SystemExit) as exc:
        measure_quality.main(["--no-visqol", "--no-speed"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "no clips" in err[0], err


def test_measure_quality_measures_as_airmark_quality_does(tmp_path, monkeypatch, capsys):
    """ViSQOL through airmark.quality (its api, one window over the whole excerpt, the
    channels' mean at 48 kHz); without visqol-python, one line that names --no-visqol."""
    import numpy as np
    import soundfile as sf
    import measure_quality
    from airmark import quality
    clip = str(tmp_path / "clip.wav")
    rng = np.random.default_rng(0)
    sf.write(clip, 0.1 * rng.standard_normal((2 * 44100, 2)), 44100, subtype="PCM_16")
    seen = []

    class Api:
        def measure_from_arrays(self, ref, deg, fs):
            seen.append((ref.shape, deg.shape, fs))
            return type("Result", (), {"moslqo": 4.25})()

    monkeypatch.setattr(quality, "visqol_api", Api)
    assert measure_quality.main([clip, "--no-speed", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["clips"][0]["visqol"] == 4.25 and seen == [((96000,), (96000,), 48000)]

    def missing():
        raise quality.QualityError("ViSQOL is not installed (pip install visqol-python)")

    monkeypatch.setattr(quality, "visqol_api", missing)
    with pytest.raises(SystemExit) as exc:
        measure_quality.main([clip, "--no-speed"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1, err
    assert "ViSQOL is not installed" in err[0] and "--no-visqol skips it" in err[0], err


def test_run_turns_ctrl_c_and_errors_into_one_line(capsys):
    from airmark.errors import KeyFileError

    def interrupted(argv):
        raise KeyboardInterrupt

    def bad_key(argv):
        raise KeyFileError("k.json", ["missing field 'key_id'", "bad checksum"])

    def unreadable(argv):
        open(os.path.join(ROOT, "no", "such", "file"))

    assert toolcli.run("t", interrupted) == 130
    assert toolcli.run("t", bad_key) == 2
    assert toolcli.run("t", unreadable) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "t: interrupted"
    assert err[1] == "t: k.json: missing field 'key_id'; bad checksum"
    assert err[2].startswith("t: ") and "No such file or directory" in err[2] and len(err) == 3


def test_atomic_output_leaves_the_old_file_on_ctrl_c(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with toolcli.atomic_output(str(target)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]
    with toolcli.atomic_output(str(target)) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.json"]
    assert oct(os.stat(target).st_mode & 0o777) != oct(0o600)  # the mode a plain open() gives


def test_micropython_scripts_fail_in_one_line_under_micropython(tmp_path, bad_json):
    mpy = require_tool("micropython")
    r = tool("bench_viper", bad_json, exe=mpy)
    assert_one_line(r, "bench_viper", says="not a valid key")
    r = tool("bench_viper", "--bogus", exe=mpy)
    assert_one_line(r, "bench_viper", says="unknown option --bogus")
    r = tool("golden_check", tmp_path, exe=mpy)
    assert_one_line(r, "golden_check", says="key.json: cannot read")
    r = tool("golden_check", GOLDEN, "extra", exe=mpy)
    assert_one_line(r, "golden_check", says="one GOLDEN_DIR at most")


def test_replay_wrapper_runs_under_micropython(micropython):
    """tools/replay.py is a firmware entry point too: it runs under MicroPython (it used
    os.path, which MicroPython lacks) and prints the board's lines."""
    r = tool("replay", "--help", exe=micropython)
    assert r.returncode == 0 and "usage" in r.stdout and "Traceback" not in r.stdout
    r = tool("replay", os.path.join(GOLDEN, "input.wav"), os.path.join(GOLDEN, "key.json"),
             exe=micropython)
    lines = [json.loads(s) for s in r.stdout.splitlines()]
    assert r.returncode == 0, r.stdout + r.stderr
    assert lines[0]["event"] == "hello" and lines[0]["runtime"] == "micropython"
    assert [d["event"] for d in lines].count("detection") == 1 and lines[-1]["event"] == "status"


def test_bench_host_reads_a_child_process_own_peak_memory():
    """The memory bench's child reports its own high-water mark, not its parent's: a bare
    `airmark --version` stays far under a process that holds 300 MB more."""
    import bench_host

    bare = bench_host._peak_rss_mb(["--version"])
    big = bytearray(300 * 1024 * 1024)  # the parent grows; the child must not inherit it
    big[::4096] = b"x" * len(big[::4096])
    again = bench_host._peak_rss_mb(["--version"])
    del big
    assert 5 < bare < 250 and abs(again - bare) < 20, (bare, again)
