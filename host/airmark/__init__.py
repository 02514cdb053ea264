"""airmark: an over-the-air audio watermark that a microcontroller can hear."""

__version__ = "0.1.0"

from .errors import AirmarkError  # noqa: F401
