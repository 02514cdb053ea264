"""The `airmark` command: a table of sub-commands, each a thin layer over library functions.

Every sub-command lives in its own module `airmark.cmd_<name>` exposing a click command
named `command`. Library errors (AirmarkError) become one line `airmark: message` on stderr
and the error's exit code; a wrong command line is one line too (exit 2, naming the
command's --help); Ctrl-C exits 130 without a traceback. A reader that closes stdout early
(`airmark detect ... --json | head -1`) never changes a command's exit code: the rest of
its output goes to /dev/null.
"""

import importlib
import sys

import click

from . import fsutil
from .errors import AirmarkError

COMMANDS = (
    "keygen", "embed", "detect", "simulate", "eval",
    "ports", "flash", "monitor", "play", "quality", "listen",
)


class _LazyGroup(click.Group):
    """Imports a sub-command's module only when it is invoked (or listed in --help), so a
    command starts without the others' imports, and Ctrl-C during them is caught by main."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        try:
            mod = importlib.import_module("airmark.cmd_" + name)
        except ModuleNotFoundError as exc:
            if exc.name == "airmark.cmd_" + name:
                return None
            raise
        return mod.command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="airmark")
def cli():
    """airmark: embed an inaudible watermark and detect it over the air on a microcontroller."""


class _ReaderMayLeave:
    """sys.stdout while a command runs. When the reader has gone (EPIPE, `| head`), stdout
    is pointed at /dev/null and the write counts as done, so the command runs on and
    returns its own exit code (click would turn the BrokenPipeError into exit 1)."""

    def __init__(self, stream):
        self._stream = stream
        self.reader_gone = False  # a command with nothing else to do may stop (listen)

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()

    def _gone(self):
        fsutil.silence_stdout()
        self.reader_gone = True

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main(argv=None):
    stdout = sys.stdout
    if stdout is not None:
        sys.stdout = _ReaderMayLeave(stdout)
    try:
        return _run(argv)
    finally:
        if isinstance(sys.stdout, _ReaderMayLeave):
            sys.stdout = stdout


def _run(argv):
    try:
        rv = cli.main(args=argv, prog_name="airmark", standalone_mode=False)
    except AirmarkError as exc:
        problems = getattr(exc, "problems", None)
        if problems:
            for line in problems:
                click.echo("airmark: %s: %s" % (exc.path, line), err=True)
        else:
            click.echo("airmark: %s" % exc, err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("airmark: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("airmark: interrupted", err=True)
        return 130
    except click.UsageError as exc:
        ctx = exc.ctx
        where = ctx.command_path if ctx is not None else "airmark"
        click.echo("airmark: %s (see '%s --help')" % (exc.format_message().rstrip("."), where),
                   err=True)
        return 2
    except click.ClickException as exc:
        click.echo("airmark: %s" % exc.format_message(), err=True)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
