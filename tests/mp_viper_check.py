# Runs under MicroPython (no ulab needed): the viper kernels on array buffers, printed
# as plain integers for tests/test_viper_kernels.py to compare with numpy.
import sys
import array

sys.path.insert(0, sys.argv[1])
import airmark_viper as k

seed = 12345


def rnd():
    global seed
    seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
    return seed


h = 128
ring = 512
xb = array.array("h", [((rnd() >> 8) % 65536) - 32768 for _ in range(h + 2)])
xb[5] = -32768
xb[7] = 32767
feat = bytearray(2 * ring)
for i in range(2 * ring):
    feat[i] = 1
hist = array.array("h", [xb[0], xb[1]])
x = array.array("h", [xb[i + 2] for i in range(h)])
k.features(x, hist, feat, 128, ring, h)
print("HIST", hist[0], hist[1])
print("X", " ".join(str(v) for v in xb))
print("F", " ".join(str(feat[128 + n]) for n in range(h)))
print("M", " ".join(str(feat[128 + ring + n]) for n in range(h)))
for a, b in ((128, 0), (128, 300), (128, 128), (100, 450)):
    print("C", a, b, k.corr8(feat, a, b, h))
d = array.array("h", [((rnd() >> 4) % 1025) - 512 for _ in range(300)])
mods = bytearray([(rnd() >> 16) & 1 for _ in range(100)])
print("D", " ".join(str(v) for v in d))
print("S", " ".join(str(v) for v in mods))
for base, stride, wl in ((0, 2, 100), (7, 2, 90), (3, 1, 100)):
    print("MF", base, stride, wl, k.mf16(mods, d, base, stride, wl))
