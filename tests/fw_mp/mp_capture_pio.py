"""PIOCapture's ring with a fake rp2pio state machine: order, lost DMA buffers, a full ring.

Same output on MicroPython and CPython (both take the fake ulab of tests/fw_fakes/board).
"""

from mp_common import check, finish, alloc_of
import airmark_capture_pio

HOP = 8
HPB = 2
BUF_NS = HOP * HPB * 1000000000 // 16000


class FakeSM:
    """background_read(loop=A, loop2=B) and last_read as rp2pio has them: DMA fills A, B,
    A, ...; last_read is the buffer filled last, once, then empty bytes."""

    def __init__(self):
        self.bufs = None
        self.filled = 0
        self.fresh = False
        self.stopped = 0
        self.sample = 0

    def background_read(self, loop=None, loop2=None):
        self.bufs = (loop, loop2)

    def fill(self, count=1):
        for _ in range(count):
            b = self.bufs[self.filled % 2]
            for i in range(len(b)):
                self.sample += 1
                b[i] = self.sample
            self.filled += 1
        self.fresh = True

    @property
    def last_read(self):
        if not self.fresh:
            return b""
        self.fresh = False
        return self.bufs[(self.filled - 1) % 2]

    def stop_background_read(self):
        self.stopped += 1


def drain(cap):
    """First sample of every hop served (0 for silence), until none is ready."""
    out = []
    while True:
        v = cap.next_hop()
        if v is None:
            return out
        out.append(v[0])
        if v[0] != 0:
            ok = True
            for i in range(HOP):
                ok = ok and v[i] == v[0] + i
            if not ok:
                out.append("torn")
        cap.done()


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


# 1. In order; the DMA buffers alternate; each hop is a slice of one buffer.
sm = FakeSM()
cap = airmark_capture_pio.PIOCapture(sm, HOP, hops_per_buffer=HPB, n_slots=3)
cap.start()
check("started both loops", sm.bufs[0] is cap.dma[0] and sm.bufs[1] is cap.dma[1])
check("nothing yet", cap.next_hop() is None)
sm.fill()
sm_first = drain(cap)
sm.fill()
got = sm_first + drain(cap)
check("hops in order", got == [1, 9, 17, 25], got)
check("no loss", cap.overruns == 0 and cap.dropped_samples == 0)
check("buf bytes", cap.buf_bytes == 2 * (2 * 16 + 3 * 16 + 8), cap.buf_bytes)

# 2. One DMA buffer unseen (the same buffer twice): its hops become silence.
sm.fill(2)
got = drain(cap)
check("odd loss from parity", got == [0, 0, 49, 57], got)
check("counted", cap.overruns == 1 and cap.dropped_samples == HPB * HOP,
      (cap.overruns, cap.dropped_samples))

# 3. Two unseen: parity alone cannot tell, the clock can.
sm = FakeSM()
clk = Clock()
cap = airmark_capture_pio.PIOCapture(sm, HOP, hops_per_buffer=HPB, n_slots=3, now_ns=clk)
cap.start()
clk.t += BUF_NS + BUF_NS // 3          # late by a third of a buffer: no loss
sm.fill()
got = drain(cap)
clk.t += BUF_NS - BUF_NS // 3          # and back on time
sm.fill()
got += drain(cap)
check("jitter is not loss", got == [1, 9, 17, 25] and cap.overruns == 0, (got, cap.overruns))
clk.t += 3 * BUF_NS + BUF_NS // 4      # three completed, one seen: two lost
sm.fill(3)
got = drain(cap)
check("even loss from the clock", got == [0, 0, 0, 0, 65, 73], got)
clk.t += 2 * BUF_NS - BUF_NS // 4      # two completed (same buffer as last time)
sm.fill(2)
got = drain(cap)
check("odd loss with the clock", got == [0, 0, 97, 105], got)
check("counted with the clock", cap.dropped_samples == 3 * HPB * HOP, cap.dropped_samples)

# 4. A full ring: the buffer that does not fit becomes silence, in its place in time.
sm = FakeSM()
cap = airmark_capture_pio.PIOCapture(sm, HOP, hops_per_buffer=HPB, n_slots=2)
cap.start()
sm.fill()
v = cap.next_hop()
check("first hop", v[0] == 1)
cap.done()                             # half of slot 0 is served; the loop is slow
sm.fill()
cap.poll()
sm.fill()
cap.poll()                             # ring full: this buffer is lost
got = drain(cap)
sm.fill()
got += drain(cap)
check("silence in its place", got == [9, 17, 25, 0, 0, 49, 57], got)
check("full ring counted", cap.overruns == 1 and cap.dropped_samples == HPB * HOP)

# 5. Idle polling allocates nothing (the loop calls next_hop until a hop is ready).
sm = FakeSM()
cap = airmark_capture_pio.PIOCapture(sm, HOP, hops_per_buffer=HPB, n_slots=2)
cap.start()
a = alloc_of(cap.next_hop, 200)
if a is not None:
    check("MP idle poll allocates nothing", a == 0, a)


def one_buffer():
    sm.fill()
    for _ in range(HPB):
        cap.next_hop()
        cap.done()


for _ in range(4):
    one_buffer()    # the queue list reaches its size
a = alloc_of(one_buffer, 50)
if a is not None:
    check("MP copying and serving a buffer allocates nothing", a == 0, a)
check("still in order", cap.overruns == 0 and cap.next_hop() is None)
cap.stop()
check("stopped", sm.stopped == 1)
finish()
