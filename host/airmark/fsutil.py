"""Atomic writes that leave files with the permissions a plain open() would give, and
stdout after a broken pipe."""

import contextlib
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


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary file name next to `path` (same suffix) to write; when the block
    finishes the file is published onto `path` (:func:`publish`), and on any error or
    Ctrl-C it is removed: `path` is the old file or the whole new one, never a part.
    An OSError (the folder cannot be written, the disk is full) propagates."""
    import tempfile
    fd, tmp = tempfile.mkstemp(prefix=".airmark-", suffix=os.path.splitext(str(path))[1],
                               dir=os.path.dirname(os.path.abspath(str(path))))
    os.close(fd)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path, record, **dump_kw):
    """Write `record` as JSON (indent 2 unless `dump_kw` says otherwise) and a newline to
    `path` through :func:`atomic_path`; an OSError propagates."""
    import json
    dump_kw.setdefault("indent", 2)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, **dump_kw)
            f.write("\n")


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
