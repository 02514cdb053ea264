#!/usr/bin/env python3
"""Replay a 16 kHz mono 16-bit WAV through the firmware loop under CPython (numpy).

Thin wrapper: runs firmware/airmark_replay.py, the same entry point a MicroPython
interpreter runs (``micropython firmware/airmark_replay.py WAV KEYJSON``), and
prints exactly the board's JSON lines. Runs under MicroPython too.

    python tools/replay.py WAV KEYJSON [--status-ms N]

Exit status as airmark_replay.py's (0 clean, 1 loop errors, 2 set-up errors, each
said in an ``error`` line on stdout); Ctrl-C prints ``replay: interrupted`` on stderr
and exits 130.
"""

import sys

USAGE = "usage: <python|micropython> tools/replay.py WAV KEYJSON [--status-ms N]"


def _dir_of(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else "."


try:
    from os import path as _path  # CPython, any OS
    FIRMWARE_DIR = _path.normpath(_path.join(_path.dirname(_path.abspath(__file__)),
                                             _path.pardir, "firmware"))
except ImportError:  # MicroPython has no os.path
    _TOOLS = _dir_of(globals().get("__file__", "tools/replay.py"))
    FIRMWARE_DIR = (_dir_of(_TOOLS) if _TOOLS != "." else "..") + "/firmware"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        print((globals().get("__doc__") or USAGE).strip())  # MicroPython keeps no docstrings
        return 0
    sys.path.insert(0, FIRMWARE_DIR)
    try:
        import airmark_replay

        return airmark_replay.main(argv)
    except KeyboardInterrupt:
        print("replay: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
