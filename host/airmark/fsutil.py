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


def write_json_atomic(path, record):
    """Write `record` as indented JSON to `path` through a temporary file in its directory
    and :func:`publish`; on any failure the temporary file is removed and the error (an
    OSError when the file system refused) propagates."""
    import json
    import tempfile
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".airmark-", suffix=".json",
                                   dir=os.path.dirname(os.path.abspath(path)))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        publish(tmp, path)
    except BaseException:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
