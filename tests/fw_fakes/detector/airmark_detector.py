"""Fake detector for firmware tests: same interface as firmware/airmark_detector.py.

Reports a detection on every hop whose first sample equals MARK (score from the
second sample), so a test WAV or a fake I2S stream decides where detections are.
Raises ValueError on a hop whose first sample equals BOOM (error path). After
``fw_fake_config.STOP_AFTER_HOPS`` hops (if that module exists) it raises
SystemExit(0) to end an endless board loop.
"""

import struct

MARK = 12345
BOOM = -12345

try:
    import fw_fake_config
    STOP_AFTER_HOPS = fw_fake_config.STOP_AFTER_HOPS
    THUMB_ERROR = getattr(fw_fake_config, "THUMB_ERROR", None)
except ImportError:
    STOP_AFTER_HOPS = 0
    THUMB_ERROR = None


class Detector:
    def __init__(self, record):
        self.hop_samples = record["block_samples"] // 2
        self.samples = 0
        self.hops = 0
        self.resets = 0
        self.thumb_error = THUMB_ERROR

    def kernel_path(self):
        return "fake"

    def state_bytes(self):
        return 1000

    def reset(self):
        self.resets += 1

    def feed(self, x):
        if isinstance(x, (bytearray, bytes)):   # dense hop from the fake ulab's zeros()
            n = len(x) // 2
            first, second = struct.unpack_from("<hh", x, 0)
        else:
            n = len(x)
            first, second = x[0], x[1]
        if n != self.hop_samples:
            raise ValueError("hop of %d samples, expected %d" % (n, self.hop_samples))
        self.samples += self.hop_samples
        self.hops += 1
        if STOP_AFTER_HOPS and self.hops > STOP_AFTER_HOPS:
            raise SystemExit(0)
        if first == BOOM:
            raise ValueError("boom at hop %d" % self.hops)
        if first == MARK:
            return (self.samples, 5 + second / 1000)
        return None
