"""The shared loop with a fake source, detector, clock, LED and watchdog.

Same output on MicroPython and CPython; on MicroPython it also proves that a hop
with no detection and no status line allocates nothing.
"""

from mp_common import check, finish, alloc_of
import airmark_loop

HOP = 256
HOP_US = 16000


class FakeClock:
    def __init__(self):
        self.us = 0

    def ticks_us(self):
        return self.us

    def ticks_ms(self):
        return self.us // 1000

    def ticks_diff(self, a, b):
        return a - b

    def idle(self):
        self.us += 1000


class FakeSource:
    """`n` hops, each ready HOP_US after the previous one, like a real-time capture
    (the loop idles in between: 1000 us per idle on FakeClock)."""

    def __init__(self, clock, n):
        self.clock = clock
        self.hop_samples = HOP
        self.x = bytearray(2 * HOP)
        self.n = n
        self.given = 0
        self.calls = 0
        self.overruns = 0
        self.dropped_samples = 0
        self.at_end = False
        self.outstanding = 0
        self.due_us = HOP_US

    def next_hop(self):
        self.calls += 1
        if self.given >= self.n:
            self.at_end = True
            return None
        if self.clock.us < self.due_us:
            return None
        self.given += 1
        self.due_us += HOP_US
        self.outstanding += 1
        return self.x

    def done(self):
        self.outstanding -= 1


class FakeDetector:
    def __init__(self, clock, hits=(), booms=(), cost_us=3000):
        self.clock = clock
        self.hops = 0
        self.hits = hits
        self.booms = booms
        self.cost_us = cost_us
        self.resets = 0
        self.hit = (0, 7.5)

    def feed(self, x):
        self.clock.us += self.cost_us
        self.hops += 1
        if self.hops in self.booms:
            raise ValueError("boom %d" % self.hops)
        if self.hops in self.hits:
            return (self.hops * HOP, 7.5)
        return None

    def reset(self):
        self.resets += 1


class FakeLed:
    def __init__(self):
        self.log = []

    def on(self):
        self.log.append("on")

    def off(self):
        self.log.append("off")


class FakeWdt:
    def __init__(self):
        self.fed = 0

    def feed(self):
        self.fed += 1


lines = []
clock = FakeClock()
src = FakeSource(clock, 400)
det = FakeDetector(clock, hits=(100, 300), booms=(150, 151))
led = FakeLed()
wdt = FakeWdt()
loop = airmark_loop.Loop(src, det, clock, lines.append, "key-9", 16000, led=led, wdt=wdt,
                         heap_free=lambda: 123456, status_ms=2000, flash_ms=100)
n = loop.run()
for text in lines:
    print(text)
check("all hops", n == 400 and det.hops == 400, (n, det.hops))
check("every hop handed back", src.outstanding == 0, src.outstanding)
dets = [t for t in lines if '"detection"' in t]
check("two detections", len(dets) == 2, dets)
check("detection time", '"t_ms":1600,' in dets[0], dets[0])
errs = [t for t in lines if '"error"' in t]
check("errors rate-limited to one line", len(errs) == 1 and loop.errors == 2, (errs, loop.errors))
check("detector reset after error", det.resets == 2)
check("status lines", len([t for t in lines if '"status"' in t]) >= 3)
check("led flashed", led.log == ["on", "off", "on", "off"], led.log)
check("watchdog fed every step", wdt.fed == src.calls, (wdt.fed, src.calls))
check("status counts errors", '"errors":2' in [t for t in lines if '"status"' in t][-1])

# Overruns: the detection time includes the audio the capture dropped.
clock2 = FakeClock()
src2 = FakeSource(clock2, 10)
src2.dropped_samples = 3 * HOP
det2 = FakeDetector(clock2, hits=(5,))
out2 = []
airmark_loop.Loop(src2, det2, clock2, out2.append, "k", 16000, status_ms=0).run()
check("t_ms counts dropped audio", out2 == ['{"event":"detection","t_ms":128,"score":7.500,"key":"k"}'], out2)

# Too many errors in a row: the loop gives up (main.py then resets the board).
clock3 = FakeClock()
src3 = FakeSource(clock3, 1000)
det3 = FakeDetector(clock3, booms=tuple(range(1, 1000)))
out3 = []
try:
    airmark_loop.Loop(src3, det3, clock3, out3.append, "k", 16000).run()
    check("gives up after consecutive errors", False)
except RuntimeError as exc:
    check("gives up after consecutive errors", det3.hops == airmark_loop.MAX_CONSECUTIVE_ERRORS, det3.hops)
    print("fatal: " + str(exc))

# Status math: mean/max/load over the window.
clock4 = FakeClock()
src4 = FakeSource(clock4, 10000)
det4 = FakeDetector(clock4, cost_us=4000)
out4 = []
lp4 = airmark_loop.Loop(src4, det4, clock4, out4.append, "k", 16000, status_ms=5000,
                        heap_free=lambda: 1)
lp4.run(max_hops=400)
print(out4[0])
check("status mean", '"block_us_mean":4000' in out4[0], out4[0])

# The microphone's level in the status line: AC RMS and peak of the hop before it.
import array


class LevelSource(FakeSource):
    def __init__(self, clock, n):
        FakeSource.__init__(self, clock, n)
        # DC 500 plus a square wave of +-1000: AC RMS 1000, peak |x| 1500
        self.x = array.array("h", [500 + (1000 if i % 2 else -1000) for i in range(HOP)])


clock6 = FakeClock()
out6 = []
lp6 = airmark_loop.Loop(LevelSource(clock6, 10000), FakeDetector(clock6), clock6, out6.append,
                        "k", 16000, status_ms=1000)
check("no level before a status line", lp6.mic_rms is None)
lp6.run(max_hops=100)
print(out6[0])
check("status level", '"mic_rms":1000,"mic_peak":1500' in out6[0], out6[0])

# Allocation: steady-state hops with no detection and no status line.
clock5 = FakeClock()
src5 = FakeSource(clock5, 10 ** 6)
det5 = FakeDetector(clock5)
lp5 = airmark_loop.Loop(src5, det5, clock5, lines.append, "k", 16000, led=FakeLed(),
                        wdt=FakeWdt(), status_ms=10 ** 7)
for _ in range(20):
    lp5.step()
grew = alloc_of(lp5.step, 500)
if grew is not None:
    print("MP loop alloc per 500 steps: %d" % grew)
    check("MP loop step allocates nothing", grew == 0, grew)

# SystemClock and AudioClock exist on every runtime.
sc = airmark_loop.SystemClock()
t0 = sc.ticks_us()
sc.idle()
check("system clock moves", sc.ticks_diff(sc.ticks_us(), t0) > 0)
ac = airmark_loop.AudioClock(16000)
ac.advance(16000 * 7)
check("audio clock ms", ac.ticks_ms() == 7000)
finish()
