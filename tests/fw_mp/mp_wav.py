"""WAV reader: stream each file in hop-sized chunks into one preallocated buffer.

Usage: mp_wav.py HOP FILE...  Prints, per file, frames and a checksum of the
samples read, or the error line; identical on MicroPython and CPython.
"""

import struct
import sys

from mp_common import check, finish, alloc_of
import airmark_wav
import airmark_proto as proto

hop = int(sys.argv[1])
buf = bytearray(2 * hop)
for path in sys.argv[2:]:
    name = path[path.rfind("/") + 1:]
    try:
        r = airmark_wav.WavReader(path)
    except airmark_wav.WavError as exc:
        print(name + " " + proto.error(str(exc)))
        continue
    total = 0
    acc = 0
    hops = 0
    while True:
        n = r.readinto(buf)
        for i in range(n // 2):
            acc = (acc * 31 + struct.unpack_from("<h", buf, 2 * i)[0]) % 1000003
        total += n // 2
        if n < len(buf):
            break
        hops += 1
    print("%s frames=%d read=%d hops=%d sum=%d" % (name, r.frames, total, hops, acc))
    check("all frames " + name, total == r.frames)
    r.close()

# Streaming allocates nothing per chunk (MicroPython only).
path = sys.argv[2]
r = airmark_wav.WavReader(path)
big = bytearray(2 * hop)


def chunk():
    if r.readinto(big) < len(big):
        r.f.seek(44)
        r.remaining = 2 * r.frames


r.remaining = 2 * r.frames
grew = alloc_of(chunk, 50)
if grew is not None:
    print("MP wav alloc per 50 chunks: %d" % grew)
    check("MP wav readinto allocates nothing", grew == 0, grew)
finish()
