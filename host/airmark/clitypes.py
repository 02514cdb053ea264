"""Click parameter types shared by the commands."""

import math

import click


class FiniteFloat(click.FloatRange):
    """A float that is a real number (no nan or inf), optionally within bounds."""

    def convert(self, value, param, ctx):
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail("%r is not a finite number" % (value,), param, ctx)
        return v


FINITE = FiniteFloat()


def finite_floats(text):
    """The comma-separated finite numbers in `text` (empty items skipped); ValueError says
    what is wrong. Shared by `airmark eval`'s grid options and the tools' lists."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError("expected comma-separated numbers, not %r" % text) from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError("expected finite numbers, not %r" % text)
    return values
