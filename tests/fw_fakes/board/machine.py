"""Fake `machine` for running firmware/main.py under the pip MicroPython (unix port).

I2S: each readinto() arms a buffer; a scheduled callback completes it (fills it
with the next frames of DATA, then calls the handler) once at least
COMPLETE_AFTER_MS has passed, polling through micropython.schedule.
"""

import struct
import time

import micropython

COMPLETE_AFTER_MS = 1
LOG = []
frame_source = None     # callable(n_frames) -> list of int32 left-slot values


def freq():
    return 125000000


def reset():
    LOG.append("reset")
    raise SystemExit(3)


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, pin, mode=None):
        self.pin = pin
        self.level = 0
        LOG.append("Pin(%r)" % (pin,))

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v
        LOG.append("led %d" % v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class WDT:
    def __init__(self, timeout=5000):
        LOG.append("WDT(%d)" % timeout)

    def feed(self):
        pass


class I2S:
    RX = 0
    TX = 1
    MONO = 0
    STEREO = 1

    def __init__(self, i2s_id, sck=None, ws=None, sd=None, mode=None, bits=None,
                 format=None, rate=None, ibuf=None):
        self.args = (i2s_id, sck.pin, ws.pin, sd.pin, mode, bits, format, rate, ibuf)
        LOG.append("I2S%r" % (self.args,))
        self.handler = None
        self.armed = None
        self.t_armed = 0
        self.completed = 0
        self._poll_cb = self._poll

    @staticmethod
    def shift(buf=None, bits=32, shift=0):
        n = len(buf) // 4
        for i in range(n):
            v = struct.unpack_from("<i", buf, 4 * i)[0]
            v = v << shift if shift > 0 else v >> (-shift)
            struct.pack_into("<i", buf, 4 * i, ((v + 0x80000000) & 0xFFFFFFFF) - 0x80000000)

    def irq(self, handler):
        self.handler = handler

    def readinto(self, buf):
        self.armed = buf
        self.t_armed = time.ticks_ms()
        micropython.schedule(self._poll_cb, None)
        return len(buf)

    def _poll(self, _):
        if self.armed is None:
            return
        if time.ticks_diff(time.ticks_ms(), self.t_armed) < COMPLETE_AFTER_MS:
            micropython.schedule(self._poll_cb, None)
            return
        buf = self.armed
        self.armed = None
        n = len(buf) // 4
        vals = frame_source(n)
        for i in range(n):
            struct.pack_into("<i", buf, 4 * i, vals[i])
        self.completed += 1
        self.handler(self)

    def deinit(self):
        LOG.append("deinit")
        self.armed = None
