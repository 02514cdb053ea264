"""Fake CircuitPython `rp2pio`: a state machine whose background DMA completes one buffer
every POLLS_PER_BUFFER reads of `last_read`, filled by `frame_source(n)` (int16 values)."""

LOG = []
POLLS_PER_BUFFER = 4
frame_source = None


class StateMachine:
    def __init__(self, program, frequency, **kw):
        LOG.append("StateMachine(%d words, %d, sideset %s x%d, in %s, push %d)" % (
            len(program), frequency, kw["first_sideset_pin"], kw["sideset_pin_count"],
            kw["first_in_pin"], kw["push_threshold"]))
        self.bufs = None
        self.polls = 0
        self.filled = 0

    def background_read(self, loop=None, loop2=None):
        self.bufs = (loop, loop2)
        LOG.append("background_read(%d, %d)" % (len(loop), len(loop2)))

    @property
    def last_read(self):
        self.polls += 1
        if self.polls % POLLS_PER_BUFFER:
            return b""
        b = self.bufs[self.filled % 2]
        self.filled += 1
        vals = frame_source(len(b))
        for i in range(len(b)):
            b[i] = vals[i]
        return b

    def stop_background_read(self):
        LOG.append("stop_background_read")

    def deinit(self):
        LOG.append("deinit")
