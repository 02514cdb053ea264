"""MicroPython only: the viper top16 kernel (I2S words -> dense int16) is exact and allocates nothing."""

import struct

from mp_common import check, finish, alloc_of
import airmark_capture
from airmark_capture_viper import top16

N = 256
vals = [((i * 2654435761) % 16777216) - 8388608 for i in range(N)]   # 24-bit signed samples
src = bytearray(4 * N)
for i in range(N):
    struct.pack_into("<i", src, 4 * i, vals[i] << 8)
dst = bytearray(2 * 64)
top16(src, dst, 100, 64)
got = [struct.unpack_from("<h", dst, 2 * i)[0] for i in range(64)]
want = [vals[100 + i] >> 8 for i in range(64)]
check("top16 exact (incl. negatives)", got == want, (got[:4], want[:4]))


def once():
    top16(src, dst, 0, 64)


grew = alloc_of(once, 200)
print("MP top16 alloc per 200 calls: %d" % grew)
check("MP top16 allocates nothing", grew == 0, grew)


# Capture ring handing out dense hops through top16 (dst = bytearray stand-in for an ndarray).
class FakeI2S:
    def irq(self, h):
        self.h = h

    def readinto(self, b):
        self.b = b


def fake_views(buf, bits, hop, sub):
    return [None] * (hop // sub)


i2s = FakeI2S()
out = bytearray(2 * 128)
cap = airmark_capture.I2SCapture(i2s, N, det_hop=128, bits=32, n_bufs=3, views_fn=fake_views,
                                 dense_fn=top16, dense_out=out)
cap.start()
i2s.b[:] = src
i2s.h(i2s)
x = cap.next_hop()
check("dense hop 0", x is out and struct.unpack_from("<h", out, 0)[0] == vals[0] >> 8)
cap.done()
x = cap.next_hop()
check("dense hop 1", struct.unpack_from("<h", out, 0)[0] == vals[128] >> 8)
cap.done()


def cycle():
    i2s.h(i2s)
    cap.next_hop()
    cap.done()
    cap.next_hop()
    cap.done()


for _ in range(5):
    cycle()
grew = alloc_of(cycle, 200)
print("MP dense capture alloc per 200 buffers: %d" % grew)
check("MP dense capture allocates nothing", grew == 0, grew)
finish()
