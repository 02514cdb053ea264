"""Rich progress bars on stderr (stdout stays for results and --json) as context managers
yielding update(done, total) callables; nothing is drawn when stderr is not a terminal."""

import contextlib
import sys


@contextlib.contextmanager
def progress_bars(*labels, disable=False):
    """One bar per label, all in one live display (rich before 14.1 refuses a second live
    display while one is active); yields a tuple of update(done, total), one per bar."""
    if disable or not sys.stderr.isatty():
        yield tuple((lambda done, total: None) for _ in labels)
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                  console=Console(file=sys.stderr), transient=True) as prog:
        tasks = [prog.add_task(label, total=1) for label in labels]
        yield tuple(lambda done, total, t=t: prog.update(t, completed=done, total=total)
                    for t in tasks)


@contextlib.contextmanager
def progress_bar(label, *, disable=False):
    """A single bar: yields update(done, total)."""
    with progress_bars(label, disable=disable) as (update,):
        yield update
