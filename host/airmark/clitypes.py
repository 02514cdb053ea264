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
