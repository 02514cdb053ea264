# Runs under MicroPython: bytes the detector allocates per hop on the viper path.
import sys
import gc
import json

sys.path.insert(0, sys.argv[1])
import airmark_detector as core
import airmark_key

with open(sys.argv[2]) as f:
    key = airmark_key.validate(json.load(f))
det = core.Detector(key)
buf = bytearray(2 * det.hop_samples)
x = core.np.frombuffer(buf, dtype=core.np.int16) if core.np is not None else buf
seed = 1
for _ in range(400):
    for i in range(len(buf)):
        seed = (seed * 1103515245 + 12345) & 0x3FFFFFFF
        buf[i] = (seed >> 16) & 0xFF
    det.feed(x)
gc.collect()
a0 = gc.mem_alloc()
for _ in range(200):
    det.feed(x)
a1 = gc.mem_alloc()
print("KERNELS", "viper" if det.kernels is not None else "none")
print("ALLOC_PER_HOP", (a1 - a0) // 200)
print("STATE_BYTES", det.state_bytes())
