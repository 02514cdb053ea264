"""Key files: generation, validation with one line per problem, CLI behaviour."""

import json
import os

import numpy as np
import pytest

from airmark import cli, fw, keys
from airmark.errors import KeyFileError


def write(tmp_path, record, name="k.json"):
    p = tmp_path / name
    p.write_text(json.dumps(record))
    return str(p)


def test_generate_is_reproducible_and_valid():
    a, b = keys.generate(7), keys.generate(7)
    assert a == b
    assert keys.generate(8)["key_bits"] != a["key_bits"]
    assert len(a["key_bits"]) == 125 and set(a["key_bits"]) <= {"0", "1"}
    assert a["threshold"] == keys.DEFAULT_THRESHOLD and a["lag_periods"] == 6
    keys.validate(a)


def test_longer_keys_take_their_own_calibrated_threshold():
    long_key = keys.generate(7, key_seconds=6)
    assert len(long_key["key_bits"]) == 375
    # longer keys keep three lag periods (cost, integer bounds) and their own threshold
    assert long_key["lag_periods"] == 3
    assert long_key["threshold"] == keys.LONG_KEY_THRESHOLD > keys.J3_THRESHOLD
    # too short to span six periods twice (97 blocks): three periods, the 2 s threshold for 3
    short = keys.generate(7, key_seconds=1.5)
    assert short["lag_periods"] == 3 and short["threshold"] == keys.J3_THRESHOLD
    assert keys.generate(7, key_seconds=1.56)["lag_periods"] == 6
    # without lag_periods, each length names the constant its default shape uses
    assert keys.threshold_constant(2.0) == "DEFAULT_THRESHOLD"
    assert keys.threshold_constant(6.0) == "LONG_KEY_THRESHOLD"
    assert keys.threshold_constant(6.0, 6) is None
    assert keys.threshold_constant(1.5) == "J3_THRESHOLD"  # too short for six periods
    assert keys.generate(7, key_seconds=6, threshold=6.0)["threshold"] == 6.0
    keys.validate(long_key)


def test_keygen_lag_periods_take_their_calibrated_threshold_or_ask(tmp_path, capsys):
    p = str(tmp_path / "k.json")
    assert cli.main(["keygen", p, "--seed", "4", "--lag-periods", "3"]) == 0
    k = keys.load(p)
    assert k["lag_periods"] == 3 and k["threshold"] == keys.J3_THRESHOLD < keys.DEFAULT_THRESHOLD
    assert "3 lag periods" in capsys.readouterr().out
    assert k["key_bits"] != keys.generate(4)["key_bits"]  # the key is chosen for its shape
    # no calibration for 4 periods: one line saying how to get a threshold, nothing written
    q = str(tmp_path / "k4.json")
    assert cli.main(["keygen", q, "--lag-periods", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threshold" in err[0] and not os.path.exists(q)
    assert cli.main(["keygen", q, "--lag-periods", "4", "--threshold", "5.9"]) == 0
    assert keys.load(q)["threshold"] == 5.9
    # too short / too long: one line each, exit 2
    for secs in ("0.3", "12"):
        assert cli.main(["keygen", str(tmp_path / ("x%s.json" % secs)), "--seconds", secs]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("airmark: a key of") and "Traceback" not in err[0]


def test_diff_weight_is_checked_and_covered_by_the_checksum(tmp_path):
    k = keys.generate(1)
    assert k["diff_weight"] == 2
    old = dict(k)
    old.pop("diff_weight")
    old["checksum"] = fw.module("airmark_key").checksum(old)
    assert keys.load(write(tmp_path, old)) == old  # keys made before the field still load
    bad = dict(k, diff_weight=1)  # edited without a new checksum
    with pytest.raises(KeyFileError, match="bad checksum"):
        keys.load(write(tmp_path, bad))
    bad = dict(k, diff_weight=3)
    with pytest.raises(KeyFileError, match="diff_weight must be one of 1, 2"):
        keys.load(write(tmp_path, bad))


def test_key_search_beats_a_random_key():
    """The chosen key leaks less steady/periodic host content than a typical random key
    of its shape, and answers a silent gap far more quietly (keys.silence_response)."""
    rng = np.random.default_rng(0)
    for seed, shape in ((3, {}), (4, {"lag_periods": 3})):
        k = keys.generate(seed, **shape)
        s = np.array([-1 if c == "1" else 1 for c in k["key_bits"]])
        pb, nj = k["pattern_blocks"], k["lag_periods"]
        rand = [1 - 2 * rng.integers(0, 2, len(s)) for _ in range(50)]
        rand_q = [keys.key_quality(r, pb, nj) for r in rand]
        rand_s = [keys.silence_response(r, pb, nj) for r in rand]
        assert keys.key_quality(s, pb, nj) < np.percentile(rand_q, 25)
        assert keys.silence_response(s, pb, nj) <= keys.SILENCE_MAX < np.percentile(rand_s, 20)


def test_save_load_roundtrip_and_no_overwrite(tmp_path):
    k = keys.generate(1)
    p = str(tmp_path / "key.json")
    keys.save(k, p)
    assert keys.load(p) == k
    with pytest.raises(KeyFileError, match="already exists"):
        keys.save(k, p)
    keys.save(keys.generate(2), p, force=True)
    assert keys.load(p)["key_id"] == keys.generate(2)["key_id"]


@pytest.mark.parametrize("mutate, expect", [
    (lambda r: r.update(version=2), "unknown key version 2"),
    (lambda r: r.update(threshold=7.0), "bad checksum"),
    (lambda r: r.pop("noise_seed"), "missing field 'noise_seed'"),
    (lambda r: r.update(block_samples=100), "block_samples=100 out of range"),
    (lambda r: r.update(key_bits="01x1" * 10), "key_bits must be a string of '0' and '1'"),
    (lambda r: r.update(band_hz=[7000, 500]), "band_hz"),
    # a fraction would slip past the checksum, whose canonical text holds whole Hz
    (lambda r: r.update(band_hz=[150.5, 6000]), "band_hz must be [low, high], whole numbers"),
    (lambda r: r.update(sample_rate_hz=44100), "sample_rate_hz=44100 out of range"),
])
def test_each_problem_is_named(tmp_path, mutate, expect):
    r = keys.generate(1)
    mutate(r)
    with pytest.raises(KeyFileError) as err:
        keys.load(write(tmp_path, r))
    assert any(expect in line for line in err.value.problems), err.value.problems


def test_not_json_and_missing_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(KeyFileError, match="not valid JSON"):
        keys.load(str(p))
    with pytest.raises(KeyFileError, match="no such file"):
        keys.load(str(tmp_path / "nope.json"))


def test_cli_one_line_per_problem_exit_2(tmp_path, capsys):
    r = keys.generate(1)
    r["version"] = 9
    r.pop("threshold")
    path = write(tmp_path, r)
    rc = cli.main(["detect", "x.wav", "--key", path])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert any("unknown key version 9" in ln for ln in err)
    assert any("missing field 'threshold'" in ln for ln in err)
    assert all(ln.startswith("airmark: ") for ln in err) and len(err) >= 2
    assert "Traceback" not in "".join(err)


def test_cli_keygen_refuses_overwrite(tmp_path, capsys):
    p = str(tmp_path / "k.json")
    assert cli.main(["keygen", p, "--seed", "5"]) == 0
    assert cli.main(["keygen", p, "--seed", "6"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["keygen", p, "--seed", "6", "--force", "--json"]) == 0
    assert keys.load(p)["key_id"] == keys.generate(6)["key_id"]


def test_firmware_module_text_round_trips():
    k = keys.generate(4)
    ns = {}
    exec(keys.firmware_module_text(k), ns)
    assert ns["KEY"] == k


def test_keygen_board_puts_the_line_enhancer_where_the_board_runs_it(tmp_path, capsys):
    """--board picks the detector's front end: the enhancer on MicroPython Arm boards (RP2040,
    RP2350), none on CircuitPython or ESP32 boards; --line-enhancer/--no-line-enhancer still
    decide, and a board that cannot run the enhancer (CircuitPython) refuses it in one line."""
    made = {}
    for board in ("pico-inmp441", "pico2-inmp441", "feather-rp2040-pdm", "esp32-devkitc-inmp441"):
        path = str(tmp_path / (board + ".json"))
        assert cli.main(["keygen", path, "--seed", "5", "--board", board]) == 0
        made[board] = keys.load(path)
        out = capsys.readouterr().out
        assert ("for board %s: with" % board) in out or ("for board %s: without" % board) in out
    plain = keys.generate(5)
    for board, enh in (("pico-inmp441", 1), ("pico2-inmp441", 1), ("feather-rp2040-pdm", 0),
                       ("esp32-devkitc-inmp441", 0)):
        k = made[board]
        assert k["key_bits"] == plain["key_bits"] and k["key_id"] == plain["key_id"]
        assert k.get("line_enhancer", 0) == enh, board
        assert k["threshold"] == keys.default_threshold(2.0, 6, enh)
    # the user's word wins where the board can run it
    p = str(tmp_path / "pico-plain.json")
    assert cli.main(["keygen", p, "--seed", "5", "--board", "pico-inmp441",
                     "--no-line-enhancer"]) == 0
    assert not keys.load(p).get("line_enhancer")
    # an ESP32 runs the enhancer in viper (slower, so not by default) when asked
    p = str(tmp_path / "esp32-enh.json")
    assert cli.main(["keygen", p, "--seed", "5", "--board", "esp32-devkitc-inmp441",
                     "--line-enhancer"]) == 0
    assert keys.load(p)["line_enhancer"] == 1
    assert "for board esp32-devkitc-inmp441: with the line enhancer" in capsys.readouterr().out
    capsys.readouterr()
    assert cli.main(["keygen", str(tmp_path / "x.json"), "--seed", "5", "--board",
                     "feather-rp2040-pdm", "--line-enhancer"]) == 2
    err = capsys.readouterr().err
    assert "cannot run it" in err and "CircuitPython" in err and "Traceback" not in err
    assert not (tmp_path / "x.json").exists()
    assert cli.main(["keygen", str(tmp_path / "y.json"), "--board", "no-such-board"]) == 2
    assert "unknown board 'no-such-board'" in capsys.readouterr().err
    # --from: the twin for a board, and back to plain
    twin = str(tmp_path / "twin.json")
    assert cli.main(["keygen", twin, "--from", str(tmp_path / "feather-rp2040-pdm.json"),
                     "--board", "pico2-inmp441"]) == 0
    t = keys.load(twin)
    assert t["line_enhancer"] == 1 and t["key_id"] == plain["key_id"] and t["threshold"] == 6.0
    back = str(tmp_path / "back.json")
    assert cli.main(["keygen", back, "--from", twin, "--no-line-enhancer"]) == 0
    b = keys.load(back)
    assert not b.get("line_enhancer") and b["threshold"] == plain["threshold"]
    assert b["key_bits"] == plain["key_bits"]


def test_cli_imports_a_command_only_when_it_runs_and_ctrl_c_during_it_is_one_line(
        monkeypatch, capsys):
    """`import airmark.cli` stays light (the console script starts fast, and a Ctrl-C while a
    command's heavy imports load is caught by main): exit 130, one line, no traceback."""
    import subprocess
    import sys
    code = ("import sys, airmark.cli as c; "
            "print(sorted(m for m in ('scipy', 'pyroomacoustics', 'airmark.cmd_embed') "
            "if m in sys.modules))")
    host = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "host")
    env = dict(os.environ, PYTHONPATH=host)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout, r.stderr)
    real = cli.importlib.import_module

    def slow_import(name, *a):
        if name == "airmark.cmd_embed":
            raise KeyboardInterrupt
        return real(name, *a)
    monkeypatch.setattr(cli.importlib, "import_module", slow_import)
    assert cli.main(["embed", "in.wav", "out.wav", "--key", "k.json"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "airmark: interrupted" and "Traceback" not in err
    assert cli.main(["no-such-command"]) == 2
    capsys.readouterr()
    assert cli.main(["keygen", "never-written.json", "--seed", "-5"]) == 2  # was a traceback
    err = capsys.readouterr().err
    assert "--seed" in err and "Traceback" not in err
    assert cli.main(["keygen", "--help"]) == 0
    assert "--board" in capsys.readouterr().out


def test_cli_usage_errors_are_one_line(capsys):
    """A wrong command line is one line on stderr naming the command's --help, exit 2,
    like every other error (click would print a usage block)."""
    for argv, text in ((["keygen"], "Missing argument 'KEYFILE' (see 'airmark keygen --help')"),
                       (["embed", "a", "b"], "Missing option '--key' (see 'airmark embed --help')"),
                       (["nosuch"], "No such command 'nosuch' (see 'airmark --help')"),
                       (["keygen", "k.json", "--seed", "x"], "Invalid value for '--seed'")):
        assert cli.main(argv) == 2
        cap = capsys.readouterr()
        lines = cap.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("airmark: ") and text in lines[0], cap.err
        assert cap.out == ""
