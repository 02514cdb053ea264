"""Atomic writes that leave files with the permissions a plain open() would give, and
stdout after a broken pipe."""

import os
import stat


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp, path):
    """Move the finished temporary file `tmp` onto `path` (os.replace, atomic).

    tempfile.mkstemp creates files readable by their owner only; the result gets the mode
    an existing `path` had, or else what the umask gives a new file (0644 usually), so a
    marked file can be served or shared like any other.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def silence_stdout():
    """Point stdout at /dev/null after a broken pipe, so the interpreter's final flush
    raises nothing and the command's own exit code stands."""
    import sys
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
