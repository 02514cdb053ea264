"""Fake CircuitPython `digitalio`: an output pin that logs its level."""

import rp2pio


class Direction:
    OUTPUT = 1
    INPUT = 0


class DigitalInOut:
    def __init__(self, pin):
        self.pin = pin
        self.direction = Direction.INPUT
        self._value = False
        rp2pio.LOG.append("DigitalInOut(%s)" % (pin,))

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, v):
        self._value = v
        rp2pio.LOG.append("led %d" % (1 if v else 0))
