"""Gapless I2S microphone capture on CircuitPython, RP2040/RP2350: PIO + background DMA.

Stable CircuitPython has no I2S input, and ``audiobusio.PDMIn.record()`` is
blocking and one-shot, so a PDM microphone loses the audio recorded while the
detector runs. On RP2 chips a PIO state machine can be the I2S receiver
instead, and ``rp2pio.StateMachine.background_read(loop=A, loop2=B)`` keeps
its DMA alternating between two buffers while Python runs: nothing is lost as
long as each completed buffer is copied out before the DMA comes back to it.

The PIO program (``PROGRAM``; its source is ``PROGRAM_SOURCE``) drives BCLK
and WS by side-set (WS on the pin after BCLK), two PIO cycles per bit clock,
64 bit clocks per frame, so the state machine runs at ``2 * 64 * rate``. In the
left slot it samples the 16 most significant data bits on the rising edges
(MSB one bit clock after WS falls, as I2S puts it) and autopushes them, shifted
left, into the low half of an RX FIFO word; the rest of the frame only clocks.
The DMA reads the FIFO 16 bits at a time into ``array('h')`` buffers, so every
sample arrives as the int16 that MicroPython's ``shift = 16`` path keeps (the
top 16 bits of an INMP441's 24-bit word).

``PIOCapture`` copies each buffer that ``last_read`` hands back into a ring of
``n_slots`` slots (a C memmove through memoryviews) and serves hops from there.
Audio that did not reach the ring -- a DMA buffer overwritten before it was
seen, or a full ring -- becomes hops of silence in its place (counted in
``overruns`` and ``dropped_samples``), so the detector's time axis stays true to
the clock. Which DMA buffer ``last_read`` returned gives the parity of the
number lost; the time since the last one, when a clock is given, gives the
count.

Verified without hardware: the program by a cycle-level PIO model against a
model microphone (tests/test_fw_capture_pio.py) and on an emulated RP2040's PIO
(docs/FIRMWARE.md), the encoding against ``adafruit_pioasm`` and MicroPython's
``rp2.asm_pio``, the ring with a fake state machine. Not yet run on a board.
"""

import array

try:
    from ulab import numpy as np
except ImportError:        # CPython, in the tests; a board with rp2pio always has ulab
    import numpy as np

BITS_PER_FRAME = 64
CYCLES_PER_BIT = 2
SAMPLE_RATE_HZ = 16000

PROGRAM_SOURCE = """
.side_set 2
    set x, 15       side 0b00   ; left slot (WS low): the I2S delay bit, low half
    nop             side 0b01   ;   high half
    nop             side 0b00   ; MSB, low half
bits:
    in pins, 1      side 0b01   ; data bit, high half: sample it (16 times)
    jmp x-- bits    side 0b00   ; low half of the next bit
    set y, 13       side 0b01   ; bit 17, high half
left_rest:
    nop             side 0b00   ; bits 18..31 of the left slot: only clock
    jmp y-- left_rest side 0b01
    set y, 30       side 0b10   ; right slot (WS high): delay bit
    nop             side 0b11
right_rest:
    nop             side 0b10   ; its 31 other bits: only clock
    jmp y-- right_rest side 0b11
"""

# PROGRAM_SOURCE assembled (RP2040 datasheet 3.4; the same words as adafruit_pioasm gives).
PROGRAM = (0xE02F, 0xA842, 0xA042, 0x4801, 0x0043, 0xE84D, 0xA042, 0x0886,
           0xF05E, 0xB842, 0xB042, 0x188A)


def state_machine(rp2pio, sck, sd, rate_hz=SAMPLE_RATE_HZ):
    """An ``rp2pio.StateMachine`` running PROGRAM: BCLK on `sck`, WS on the next pin, data
    in on `sd` (board pin objects)."""
    return rp2pio.StateMachine(
        array.array("H", PROGRAM), frequency=CYCLES_PER_BIT * BITS_PER_FRAME * rate_hz,
        first_sideset_pin=sck, sideset_pin_count=2, first_in_pin=sd, in_pin_count=1,
        auto_push=True, push_threshold=16, in_shift_right=False)


class PIOCapture:
    """int16 hops from an I2S microphone behind `sm` (same interface as I2SCapture).

    sm: the running StateMachine (or a fake with ``background_read``, ``last_read``,
    ``stop_background_read``).
    hop_samples: samples per ``next_hop()``.
    hops_per_buffer: hops in each of the two DMA buffers (a buffer's duration must
    exceed the longest pause between two ``next_hop()`` calls: a hop's detector
    run plus a garbage collection).
    n_slots: DMA buffers' worth of hops the ring holds.
    now_ns: wall clock in ns (``time.monotonic_ns``) to count lost buffers, or None
    (then only an odd number of lost buffers is seen).
    """

    def __init__(self, sm, hop_samples, hops_per_buffer=4, n_slots=3, now_ns=None,
                 rate_hz=SAMPLE_RATE_HZ):
        if hops_per_buffer < 1 or n_slots < 1:
            raise ValueError("hops_per_buffer and n_slots must be >= 1")
        self.sm = sm
        self.hop_samples = hop_samples
        self.hpb = hops_per_buffer
        self.n_slots = n_slots
        self.now_ns = now_ns
        n = hop_samples * hops_per_buffer
        self.buffer_samples = n
        self.buffer_ns = n * 1000000000 // rate_hz
        self.dma = (array.array("h", [0] * n), array.array("h", [0] * n))
        self.ring = array.array("h", [0] * (n * n_slots))
        # memoryviews made once: a buffer's copy into its slot is one memmove, no allocation
        ring_mv = memoryview(self.ring)
        self.slot_mvs = [ring_mv[w * n:(w + 1) * n] for w in range(n_slots)]
        self.dma_mvs = (memoryview(self.dma[0]), memoryview(self.dma[1]))
        self.hops = []
        for i in range(n_slots * hops_per_buffer):
            self.hops.append(np.frombuffer(self.ring, dtype=np.int16, offset=2 * i * hop_samples,
                                           count=hop_samples))
        self.zeros = np.zeros(hop_samples, dtype=np.int16)
        self.buf_bytes = 2 * (2 * n + n * n_slots + hop_samples)
        # queue of ring slots (>= 0) and runs of silent hops (-count), oldest first
        self.queue = []
        self.free = n_slots
        self.write_slot = 0
        self.pos = 0           # hops of the queue's head already served
        self.last_dma = 1      # the first buffer filled is dma[0]
        self.t_last_ns = None
        self.overruns = 0
        self.dropped_samples = 0
        self.at_end = False

    def start(self):
        self.sm.background_read(loop=self.dma[0], loop2=self.dma[1])
        if self.now_ns is not None:
            self.t_last_ns = self.now_ns()

    def stop(self):
        self.sm.stop_background_read()
        if hasattr(self.sm, "deinit"):
            self.sm.deinit()

    def _lose(self, hops):
        self.overruns += 1
        self.dropped_samples += hops * self.hop_samples
        q = self.queue
        if q and q[-1] < 0:
            q[-1] -= hops
        else:
            q.append(-hops)

    def _missed(self, odd):
        """DMA buffers completed unseen before this one: the count nearest the clock's
        estimate whose parity is `odd`."""
        m = 1 if odd else 0
        if self.now_ns is None:
            return m
        now = self.now_ns()
        elapsed = now - self.t_last_ns
        self.t_last_ns = now
        # nearest m' = m + 2k >= 0 to elapsed / buffer - 1, in integers
        est2 = 2 * elapsed // self.buffer_ns - 2     # 2 * (elapsed / buffer - 1), floored
        while 2 * (m + 2) <= est2 + 2:
            m += 2
        return m

    def poll(self):
        """Copy the DMA buffer completed since the last call, if any, into the ring."""
        got = self.sm.last_read
        if not len(got):
            return
        idx = 0 if got is self.dma[0] else 1
        missed = self._missed(idx == self.last_dma)
        self.last_dma = idx
        if missed:
            self._lose(missed * self.hpb)
        if self.free == 0:
            self._lose(self.hpb)
            return
        w = self.write_slot
        self.slot_mvs[w][:] = self.dma_mvs[idx]
        self.queue.append(w)
        self.free -= 1
        self.write_slot = (w + 1) % self.n_slots

    def next_hop(self):
        self.poll()
        if not self.queue:
            return None
        head = self.queue[0]
        if head < 0:
            return self.zeros
        return self.hops[head * self.hpb + self.pos]

    def done(self):
        q = self.queue
        if not q:
            return
        head = q[0]
        self.pos += 1
        if head < 0:
            if self.pos == -head:
                q.pop(0)
                self.pos = 0
        elif self.pos == self.hpb:
            q.pop(0)
            self.pos = 0
            self.free += 1
