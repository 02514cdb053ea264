"""I2SCapture's buffer ring with a fake I2S: order, overruns, re-arm rules, no allocation.

Same output on MicroPython and CPython (views are faked: no ulab needed).
"""

from mp_common import check, finish, alloc_of
import airmark_capture

HOP = 256


class FakeI2S:
    def __init__(self):
        self.handler = None
        self.armed = None
        self.arms = 0
        self.seq = 0
        self.deinits = 0

    def irq(self, handler):
        self.handler = handler

    def readinto(self, buf):
        self.armed = buf
        self.arms += 1
        return len(buf)

    def complete(self):
        # The driver filled the armed buffer: stamp it with a sequence number, raise the IRQ.
        self.seq += 1
        self.armed[0] = self.seq & 0xFF
        self.armed[1] = (self.seq >> 8) & 0xFF
        self.handler(self)

    def deinit(self):
        self.deinits += 1


def fake_views(buf, bits, hop, sub):
    out = []
    for j in range(hop // sub):
        out.append((buf, j))
    return out


def seq_of(view):
    buf = view[0]
    return buf[0] | (buf[1] << 8)


shifts = []


def fake_shift(buf=None, bits=32, shift=0):
    shifts.append((bits, shift))


# 1. Order and sub-hops.
i2s = FakeI2S()
cap = airmark_capture.I2SCapture(i2s, HOP, det_hop=HOP // 2, bits=32, shift=16, n_bufs=3,
                                 views_fn=fake_views)
check("buf bytes", cap.buf_bytes == 3 * HOP * 4)
check("nothing before start", cap.next_hop() is None)
cap.start()
check("armed first buffer", i2s.armed is cap.bufs[0])
i2s.complete()
v = cap.next_hop()
check("first hop", v[0] is cap.bufs[0] and v[1] == 0 and seq_of(v) == 1)
cap.done()
v = cap.next_hop()
check("second half", v[0] is cap.bufs[0] and v[1] == 1)
cap.done()
check("empty again", cap.next_hop() is None)

# 2. Overrun: the loop holds buffers; the IRQ never re-arms a buffer still waiting.
i2s.complete()      # seq 2 -> buf1 done, arm buf2
i2s.complete()      # seq 3 -> buf2 done; 2 pending, arm buf0
check("no overrun yet", cap.overruns == 0 and i2s.armed is cap.bufs[0])
i2s.complete()      # seq 4 -> buf0 done, but buf1 (oldest pending) would be next: drop seq 4
check("overrun counted", cap.overruns == 1 and cap.dropped_samples == HOP, (cap.overruns, cap.dropped_samples))
check("re-armed in place", i2s.armed is cap.bufs[0])
got = []
while True:
    v = cap.next_hop()
    if v is None:
        break
    got.append(seq_of(v))
    cap.done()
check("kept the older buffers", got == [2, 2, 3, 3], got)

# 3. Random interleaving: invariants hold over many steps.
class Lcg:
    """Tiny deterministic generator (MicroPython's random has no Random class)."""

    def __init__(self, seed):
        self.s = seed

    def random(self):
        self.s = (self.s * 1103515245 + 12345) % 2147483648
        return self.s / 2147483648


rng = Lcg(7)
i2s = FakeI2S()
cap = airmark_capture.I2SCapture(i2s, HOP, bits=32, shift=16, n_bufs=4, views_fn=fake_views)
cap.start()
delivered = []
holding = None
ok_arm = True
for step in range(5000):
    r = rng.random()
    if r < 0.5:
        i2s.complete()
        # the armed buffer is never one the loop still has to read
        for k in range(cap.pending()):
            if i2s.armed is cap.bufs[(cap.consumed + k) % cap.n_bufs]:
                ok_arm = False
    elif holding is None:
        v = cap.next_hop()
        if v is not None:
            holding = v
            delivered.append(seq_of(v))
    else:
        check_seq = seq_of(holding)
        if check_seq != delivered[-1]:
            ok_arm = False
        cap.done()
        holding = None
check("armed buffer never pending", ok_arm)
inc = True
for i in range(1, len(delivered)):
    if not ((delivered[i] - delivered[i - 1]) % 65536) > 0:
        inc = False
check("delivered in order", inc)
total = len(delivered) + cap.pending() - (1 if holding is not None else 0) + cap.overruns
check("every completion delivered, pending or counted", total == i2s.seq, (total, i2s.seq))
print("random: completions=%d delivered=%d overruns=%d" % (i2s.seq, len(delivered), cap.overruns))

# 4. Shift other than 16: I2S.shift once per raw buffer, before the views are read.
i2s = FakeI2S()
cap = airmark_capture.I2SCapture(i2s, HOP, det_hop=HOP // 4, bits=32, shift=17, n_bufs=2,
                                 shift_fn=fake_shift, views_fn=fake_views)
cap.start()
i2s.complete()
for k in range(4):
    cap.next_hop()
    cap.done()
check("shift once per buffer", shifts == [(32, -1)], shifts)

# 5. Bad configurations are refused at start-up.
for args in ((HOP, 100, 32, 16, 3), (HOP, HOP, 24, 16, 3), (HOP, HOP, 32, 16, 1), (HOP, HOP, 16, 17, 3)):
    try:
        airmark_capture.I2SCapture(FakeI2S(), args[0], det_hop=args[1], bits=args[2],
                                   shift=args[3], n_bufs=args[4], views_fn=fake_views)
        check("refuse %r" % (args,), False)
    except ValueError as exc:
        check("refuse %r" % (args,), True)
        print("  " + str(exc))

# 6. open_i2s uses only the board's pins and sizes.
class FakePin:
    def __init__(self, n):
        self.n = n


class RecI2S:
    RX = 7
    MONO = 3

    def __init__(self, i2s_id, **kw):
        self.i2s_id = i2s_id
        self.kw = kw


board = {"i2s": {"id": 1, "sck": 10, "ws": 11, "sd": 12, "ibuf_bytes": 9000}, "mic": {"bits": 32}}
r = airmark_capture.open_i2s(board, RecI2S, FakePin)
check("open_i2s", r.i2s_id == 1 and r.kw["sck"].n == 10 and r.kw["ws"].n == 11 and r.kw["sd"].n == 12
      and r.kw["mode"] == 7 and r.kw["format"] == 3 and r.kw["bits"] == 32 and r.kw["rate"] == 16000
      and r.kw["ibuf"] == 9000)

# 7. Allocation: IRQ + next_hop + done in steady state (MicroPython only).
i2s = FakeI2S()
cap = airmark_capture.I2SCapture(i2s, HOP, det_hop=HOP // 2, bits=32, shift=16, n_bufs=3,
                                 views_fn=fake_views)
cap.start()


def cycle():
    i2s.complete()
    cap.next_hop()
    cap.done()
    cap.next_hop()
    cap.done()


for _ in range(10):
    cycle()
grew = alloc_of(cycle, 300)
if grew is not None:
    print("MP capture alloc per 300 buffers: %d" % grew)
    check("MP capture path allocates nothing", grew == 0, grew)
cap.stop()
check("stop deinits", i2s.deinits == 1)
finish()
