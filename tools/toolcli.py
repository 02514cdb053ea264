"""What the CPython scripts in tools/ share: a wrong command line, a bad input file or
Ctrl-C is one line on stderr and an exit code, never a traceback; outputs appear whole.

    ap = toolcli.ArgumentParser(description=...)      # usage errors: one line, exit 2
    ap.add_argument("--seconds", type=toolcli.positive_float)
    sys.exit(toolcli.run("NAME", main))                # see run()

(bench_viper.py, golden_check.py and replay.py run under MicroPython too and do without.)
"""

import argparse
import json
import math
import os
import sys

from airmark import fsutil
from airmark.errors import AirmarkError


class ToolError(Exception):
    """A problem with the input the user can fix: `NAME: message`, exit 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line, `NAME: message (see NAME.py --help)`, exit 2."""

    def error(self, message):
        name = self.prog[:-3] if self.prog.endswith(".py") else self.prog
        self.exit(2, "%s: %s (see %s --help)\n" % (name, message, self.prog))


def finite_float(text):
    """argparse type: a real number (no nan or inf)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError("%r is not a finite number" % text)
    return v


def positive_float(text):
    """argparse type: a finite number > 0."""
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError("must be > 0, not %s" % text)
    return v


def _whole(text, lowest):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if v < lowest:
        raise argparse.ArgumentTypeError("must be >= %d, not %s" % (lowest, text))
    return v


def positive_int(text):
    """argparse type: a whole number >= 1."""
    return _whole(text, 1)


def nonnegative_int(text):
    """argparse type: a whole number >= 0."""
    return _whole(text, 0)


def load_json(path, what="file"):
    """JSON from `path`; ToolError (one line) when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ToolError("%s: no such %s" % (path, what)) from None
    except OSError as exc:
        raise ToolError("%s: %s" % (path, exc.strerror or exc)) from None
    except UnicodeDecodeError:
        raise ToolError("%s: not UTF-8 text" % path) from None
    except ValueError as exc:
        raise ToolError("%s: not valid JSON (%s)" % (path, exc)) from None


# outputs appear whole or not at all (a temporary file next to them, then os.replace)
atomic_output = fsutil.atomic_path


def make_dir(path):
    """os.makedirs(path, exist_ok=True), or ToolError naming the path."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ToolError("%s: cannot create the folder (%s)" % (path, exc.strerror or exc)) from None


def run(name, main, argv=None):
    """main(argv)'s exit code. ToolError and the package's AirmarkError become one line
    `name: message` (exit 2, or the error's own code), an OSError one line naming its file
    (exit 2); Ctrl-C is `name: interrupted`, exit 130; a reader that closed stdout early
    (`| head`) ends the run quietly."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        sys.stderr.write("%s: interrupted\n" % name)
        return 130
    except BrokenPipeError:
        fsutil.silence_stdout()
        return 1
    except ToolError as exc:
        sys.stderr.write("%s: %s\n" % (name, exc))
        return 2
    except AirmarkError as exc:
        sys.stderr.write("%s: %s\n" % (name, exc))
        return exc.exit_code
    except OSError as exc:
        where = exc.filename or ""
        sys.stderr.write("%s: %s%s\n" % (name, where + ": " if where else "",
                                         exc.strerror or exc))
        return 2
