"""A rich progress bar as a context manager yielding update(done, total)."""

import contextlib
import sys


@contextlib.contextmanager
def progress_bar(label, *, disable=False):
    if disable or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeRemainingColumn(), transient=True) as prog:
        task = prog.add_task(label, total=1)

        def update(done, total):
            prog.update(task, completed=done, total=total)

        yield update
