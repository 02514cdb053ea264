#!/usr/bin/env python3
"""Replay a 16 kHz mono 16-bit WAV through the firmware loop under CPython (numpy).

Thin wrapper: runs firmware/airmark_replay.py, the same entry point a MicroPython
interpreter runs (``micropython firmware/airmark_replay.py WAV KEYJSON``), and
prints exactly the board's JSON lines.

    python tools/replay.py WAV KEYJSON [--status-ms N]
"""

import os
import sys

FIRMWARE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "firmware")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        print(__doc__.strip())
        return 0
    sys.path.insert(0, os.path.normpath(FIRMWARE_DIR))
    import airmark_replay

    return airmark_replay.main(argv)


if __name__ == "__main__":
    sys.exit(main())
