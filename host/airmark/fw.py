"""Access to the firmware directory: the host runs the board's own modules from there."""

import os
import sys

from . import _firmware

FIRMWARE_DIR = os.path.dirname(os.path.abspath(_firmware.__file__))


def ensure_path():
    """Make the firmware modules importable by their board names (e.g. `airmark_detector`)."""
    if FIRMWARE_DIR not in sys.path:
        sys.path.insert(0, FIRMWARE_DIR)
    return FIRMWARE_DIR


def module(name):
    """Import a firmware module by its board name."""
    ensure_path()
    import importlib

    return importlib.import_module(name)
