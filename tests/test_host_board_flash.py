"""airmark flash: the plan, and flashing a virtual MicroPython device -- the real `micropython`
unix port on a pty, driven through mpremote's own SerialTransport (raw REPL)."""

import hashlib
import json
import os
import shutil
import subprocess

import pytest

from airmark import cli, flashing, keys
from virtual_mpdevice import VirtualMicroPython

pytestmark = pytest.mark.usefixtures("micropython", "mpy_cross")


@pytest.fixture(scope="module")
def key():
    return keys.generate(3)


@pytest.fixture(scope="module")
def key_path(key, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("key") / "key.json")
    keys.save(key, path)
    return path


@pytest.fixture(scope="module")
def pico():
    return flashing.load_board("pico-inmp441")


@pytest.fixture(scope="module")
def feather():
    return flashing.load_board("feather-rp2040-pdm")


# ---------------------------------------------------------------- the plan


def test_plan_micropython(pico, key):
    plan = flashing.build_plan(pico, key)
    names = [f.dest for f in plan.files]
    assert names[0] == "main.py" and plan.files[0].kind == "py"
    for mod in ("airmark_proto", "airmark_loop", "airmark_board", "airmark_key", "airmark_detector",
                "airmark_capture", "airmark_viper", "airmark_keydata", "airmark_boardcfg"):
        assert mod + ".mpy" in names
    assert not any(n.startswith(("airmark_replay", "airmark_wav", "airmark_capture_cp", "code"))
                   for n in names)
    arch = {}
    for f in plan.files[1:]:
        assert f.kind == "mpy" and f.data[:2] == b"M\x06"
        arch[f.dest] = f.data[2] >> 2     # 0 for bytecode only, 4 = armv6m for native code
    assert arch["airmark_viper.mpy"] == 4 and arch["airmark_capture_viper.mpy"] == 4
    assert arch["airmark_loop.mpy"] == 0
    assert arch["airmark_viper_thumb.mpy"] == 4  # the matched filters in Thumb, ARM only
    esp = flashing.build_plan(flashing.load_board("esp32-devkitc-inmp441"), key)
    names = [f.dest for f in esp.files]
    assert "airmark_viper.mpy" in names and "airmark_viper_thumb.mpy" not in names


def test_plan_ships_the_line_enhancer_only_for_keys_that_use_it(pico, feather, key):
    plain = [f.dest for f in flashing.build_plan(pico, key).files]
    assert not any(n.startswith("airmark_enhancer") for n in plain)
    enh_key = keys.generate(3, line_enhancer=True)
    plan = flashing.build_plan(pico, enh_key)
    arch = {f.dest: f.data[2] >> 2 for f in plan.files[1:]}
    assert arch["airmark_enhancer.mpy"] == 0 and arch["airmark_enhancer_viper.mpy"] == 4
    assert arch["airmark_enhancer_thumb.mpy"] == 4  # the Thumb FFT, for ARM boards
    esp = flashing.build_plan(flashing.load_board("esp32-devkitc-inmp441"), enh_key)
    names = [f.dest for f in esp.files]
    assert "airmark_enhancer_viper.mpy" in names and "airmark_enhancer_thumb.mpy" not in names
    with pytest.raises(flashing.FlashError, match="line enhancer.*circuitpython cannot run it"):
        flashing.build_plan(feather, enh_key)


def test_plan_circuitpython_has_sources_and_no_viper(feather, key):
    plan = flashing.build_plan(feather, key)
    names = [f.dest for f in plan.files]
    assert names[0] == "code.py" and all(n.endswith(".py") for n in names)
    assert "airmark_capture_cp.py" in names and "airmark_detector.py" in names
    assert not any("viper" in n for n in names) and "airmark_capture.py" not in names
    for f in plan.files:
        assert b"@micropython.viper" not in f.data and b"@micropython.native" not in f.data


def test_generated_modules(pico, key):
    ns = {}
    exec(flashing.boardcfg_module_text(pico), ns)
    assert ns["BOARD"] == pico
    ns = {}
    exec(keys.firmware_module_text(key), ns)
    assert ns["KEY"]["key_id"] == key["key_id"] and keys.validate(ns["KEY"])


def test_dry_run_json(key_path, key, capsys):
    assert cli.main(["flash", "--board", "pico-inmp441", "--key", key_path, "--dry-run", "--json"]) == 0
    cap = capsys.readouterr()
    plan = json.loads(cap.out)
    assert plan["board"] == "pico-inmp441" and plan["mpy_arch"] == "armv6m" and plan["key_id"] == key["key_id"]
    files = {f["dest"]: f for f in plan["files"]}
    assert files["airmark_keydata.mpy"]["source"] == "generated: key %s" % key["key_id"]
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in plan["files"])
    assert cap.err == ""  # --json prints nothing else, not even the line-enhancer hint
    assert cli.main(["flash", "--board", "feather-rp2040-pdm", "--key", key_path, "--dry-run"]) == 0
    cap = capsys.readouterr()
    out = cap.out
    assert "hint" not in cap.err  # CircuitPython cannot run the line enhancer
    shipped = [ln.split()[0] for ln in out.splitlines() if ln.startswith("  ")][1:]
    assert shipped[0] == "code.py" and "airmark_boardcfg.py" in shipped
    assert all(n.endswith(".py") for n in shipped)


def test_unknown_board_and_usage_errors(key_path, capsys):
    assert cli.main(["flash", "--board", "pico-nope", "--key", key_path, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'pico-nope'" in err and "pico-inmp441" in err
    assert cli.main(["flash", "--board", "pico-inmp441", "--key", key_path, "--no-check"]) == 2
    assert "CircuitPython boards only" in capsys.readouterr().err


# ---------------------------------------------------------------- a virtual MicroPython device


def device_files(dev):
    return sorted(os.listdir(dev.fs))


def test_no_ulab_says_what_to_install(tmp_path, pico, key):
    with VirtualMicroPython(tmp_path, ulab=False) as dev:
        with pytest.raises(flashing.FlashError) as ei:
            flashing.flash(pico, key, port=dev.port)
        assert device_files(dev) == []                     # nothing was copied
    msg = str(ei.value)
    assert "runs MicroPython 1.24.1 (Raspberry Pi Pico with RP2040) without ulab" in msg
    assert pico["firmware"] in msg and 'docs/HOST_TOOLS.md "Install the interpreter"' in msg
    assert 'docs/FIRMWARE.md "Boards"' in msg


def test_flash_micropython_success_then_unchanged(tmp_path, pico, key, key_path):
    plan = flashing.build_plan(pico, key)
    with VirtualMicroPython(tmp_path) as dev:
        seen = []
        rep = flashing.flash(pico, key, port=dev.port, plan=plan, progress=seen.append)
        assert dev.wait_exit() == 0                         # machine.reset() ended the "board"
        log = dev.log()
    assert rep.device.describe() == "MicroPython 1.24.1 (Raspberry Pi Pico with RP2040)"
    assert rep.device.mpy_arch == "armv6m" and rep.device.ulab == "6.5.0-stub"
    assert [r.action for r in rep.files] == ["written"] * len(plan.files) and all(r.verified for r in rep.files)
    assert seen == rep.files
    assert device_files(dev) == sorted(f.dest for f in plan.files)
    for f in plan.files:
        with open(os.path.join(dev.fs, f.dest), "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == f.sha256
    # the watchdog guard: armed with the board's timeout, fed before every step, then the reset
    assert log[:3] == ["boot", "wdt", str(pico["watchdog_ms"])]
    assert log.count("feed") == rep.watchdog_feeds >= 3 * len(plan.files) and log[-1] == "reset"

    # the flashed .mpy modules (armv6m bytecode) load on the real MicroPython and validate
    probe = ("import airmark_board, airmark_key, airmark_boardcfg, airmark_keydata\n"
             "b = airmark_board.load()\nairmark_key.validate(airmark_keydata.KEY)\n"
             "print(b['name'], airmark_keydata.KEY['key_id'])\n")
    r = subprocess.run([shutil.which("micropython"), "-c", probe], cwd=dev.fs, capture_output=True,
                       text=True, timeout=30, env=dict(os.environ, MICROPYPATH=""))
    assert r.stdout.split() == ["pico-inmp441", key["key_id"]], r.stdout + r.stderr

    # again, with stale twins on the device: identical files are skipped, stale ones removed
    for name in ("airmark_loop.py", "airmark_old.mpy", "notes.txt"):
        with open(os.path.join(dev.fs, name), "w") as fh:
            fh.write("x = 1\n")
    with VirtualMicroPython(tmp_path) as dev2:
        assert cli.main(["flash", "--board", "pico-inmp441", "--key", key_path, "--port", dev2.port,
                         "--json"]) == 0
        assert dev2.wait_exit() == 0
    assert "notes.txt" in device_files(dev2)
    assert not {"airmark_loop.py", "airmark_old.mpy"} & set(device_files(dev2))


def test_second_flash_report(tmp_path, pico, key, capsys):
    with VirtualMicroPython(tmp_path) as dev:
        flashing.flash(pico, key, port=dev.port)
    with VirtualMicroPython(tmp_path) as dev:
        rep = flashing.flash(pico, key, port=dev.port)
    assert {r.action for r in rep.files} == {"unchanged"}


def test_wrong_runtime_circuitpython_board_on_micropython(tmp_path, feather, key):
    drive = tmp_path / "CIRCUITPY"
    drive.mkdir()
    (drive / "boot_out.txt").write_text("Adafruit CircuitPython 9.2.1 on 2024-11-20; Feather RP2040\n")
    with VirtualMicroPython(tmp_path / "dev") as dev:
        with pytest.raises(flashing.FlashError) as ei:
            flashing.flash(feather, key, port=dev.port, drive=str(drive))
    msg = str(ei.value)
    assert "board feather-rp2040-pdm runs CircuitPython" in msg and "runs MicroPython 1.24.1" in msg
    assert feather["firmware"] in msg and 'docs/FIRMWARE.md "CircuitPython"' in msg
    assert sorted(os.listdir(drive)) == ["boot_out.txt"]


@pytest.mark.parametrize("board,device,expect", [
    ("esp32-devkitc-inmp441", {}, "is a esp32 (sys.platform 'esp32'), but the device on"),
    ("pico2-inmp441", {}, "needs .mpy for armv7m, but the device on"),
    ("pico-inmp441", {"version": (1, 20, 0)}, "airmark needs MicroPython >= 1.23 with ulab"),
    ("pico-inmp441", {"name": "circuitpython", "version": (9, 2, 1), "mpy_arch": None,
                      "platform": "RP2040"}, "board pico-inmp441 runs MicroPython, but the device"),
])
def test_device_mismatch(tmp_path, key, board, device, expect):
    with VirtualMicroPython(tmp_path, **device) as dev:
        with pytest.raises(flashing.FlashError, match=expect.replace("(", r"\(").replace(")", r"\)")):
            flashing.flash(flashing.load_board(board), key, port=dev.port)
        assert device_files(dev) == []


def test_flash_circuitpython_drive(tmp_path, feather, key):
    drive = tmp_path / "CIRCUITPY"
    drive.mkdir()
    (drive / "boot_out.txt").write_text("Adafruit CircuitPython 9.2.1 on 2024-11-20; Feather RP2040\n")
    (drive / "airmark_viper.py").write_text("# left over from a MicroPython copy\n")
    (drive / "airmark_loop.mpy").write_bytes(b"M\x06")
    plan = flashing.build_plan(feather, key)
    with VirtualMicroPython(tmp_path / "dev", name="circuitpython", version=(9, 2, 1), mpy_arch=None,
                            platform="RP2040", machine="Adafruit Feather RP2040 with rp2040") as dev:
        rep = flashing.flash(feather, key, port=dev.port, drive=str(drive), plan=plan)
        assert dev.wait_exit() is not None                  # Ctrl-D after the copy
        assert os.listdir(dev.fs) == []                      # nothing went over the REPL
    assert rep.device.runtime == "circuitpython" and rep.reset == "soft reload (Ctrl-D)"
    assert sorted(os.listdir(drive)) == sorted([f.dest for f in plan.files] + ["boot_out.txt"])
    for f in plan.files:
        assert (drive / f.dest).read_bytes() == f.data
    assert {r.dest for r in rep.files if r.action == "removed"} == {"airmark_viper.py", "airmark_loop.mpy"}


def test_circuitpython_drive_checks(tmp_path, feather, key):
    with pytest.raises(flashing.FlashError, match="does not look like a CIRCUITPY drive"):
        flashing.find_circuitpy_drive(str(tmp_path))
    (tmp_path / "boot_out.txt").write_text("Adafruit CircuitPython 10.2.1 on 2026-01-01; x\n")
    assert flashing.find_circuitpy_drive(str(tmp_path)) == str(tmp_path)
    rep = flashing.flash(feather, key, drive=str(tmp_path), check=False)
    assert rep.device is None and rep.reset == "CircuitPython auto-reload"
    assert (tmp_path / "code.py").exists() and (tmp_path / "airmark_keydata.py").exists()


def test_plain_key_on_a_board_that_runs_the_line_enhancer_gets_a_hint(key_path, tmp_path, capsys):
    assert not keys.load(key_path).get("line_enhancer")
    assert cli.main(["flash", "--board", "pico-inmp441", "--key", key_path, "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("hint: pico-inmp441 runs the line enhancer")
    assert ("--from %s --board pico-inmp441" % key_path) in err
    twin = str(tmp_path / "twin.json")
    assert cli.main(["keygen", twin, "--from", key_path, "--board", "pico-inmp441"]) == 0
    capsys.readouterr()
    assert cli.main(["flash", "--board", "pico-inmp441", "--key", twin, "--dry-run"]) == 0
    cap = capsys.readouterr()
    assert "hint" not in cap.err and "airmark_enhancer_thumb.mpy" in cap.out
    assert cli.main(["flash", "--board", "esp32-devkitc-inmp441", "--key", key_path,
                     "--dry-run"]) == 0
    assert "hint" not in capsys.readouterr().err
