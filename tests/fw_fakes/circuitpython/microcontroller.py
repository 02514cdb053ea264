"""Fake CircuitPython `microcontroller`: `pin.GPIOn` and `cpu.frequency`."""


class _Pins:
    pass


pin = _Pins()
for _i in range(30):
    setattr(pin, "GPIO%d" % _i, "GPIO%d" % _i)


class _Cpu:
    frequency = 125000000


cpu = _Cpu()
