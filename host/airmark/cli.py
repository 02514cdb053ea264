"""The `airmark` command: a table of sub-commands, each a thin layer over library functions.

Every sub-command lives in its own module `airmark.cmd_<name>` exposing a click command
named `command`. Library errors (AirmarkError) become one line `airmark: message` on stderr
and the error's exit code; Ctrl-C exits 130 without a traceback.
"""

import importlib
import sys

import click

from .errors import AirmarkError

COMMANDS = (
    "keygen", "embed", "detect", "simulate", "eval",
    "ports", "flash", "monitor", "play",
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


def main(argv=None):
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
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
