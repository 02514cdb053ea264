"""The detection loop shared by the board (main.py, code.py) and the WAV replay.

Runs unchanged on CPython, MicroPython and CircuitPython; it needs no ulab
itself (the detector and the sample source bring their arrays).

Collaborators (all duck-typed, all fakeable in tests):

- source: ``hop_samples`` (int), ``overruns`` (int, capture buffers dropped
  so far because the loop fell behind), ``dropped_samples`` (int, the audio
  they held), ``at_end`` (bool, True once a finite source is exhausted),
  ``next_hop()`` -> an int16 array of exactly ``hop_samples`` samples, or None
  when the next hop is not captured yet; ``done()`` hands the last hop's buffer
  back to the source once the detector is finished with it.
- detector: ``feed(x)`` -> None or ``(t_samples, score)``; ``reset()``.
- clock: ``ticks_ms()``, ``ticks_us()``, ``ticks_diff(a, b)``, ``idle()``.
- emit: called with one str per protocol line (``print`` on the board).
- led: optional, ``on()`` / ``off()``. wdt: optional, ``feed()``.
- heap_free: optional callable returning free heap bytes (``gc.mem_free``).

The per-hop path (``step`` with no detection and no status due) allocates
nothing on MicroPython: only small ints, preallocated objects and method calls.
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

import airmark_proto as proto

MAX_CONSECUTIVE_ERRORS = const(50)
ERROR_LINE_MIN_MS = const(1000)


class SystemClock:
    """time.ticks_* on MicroPython/CircuitPython-with-supervisor; monotonic ints on CPython."""

    def __init__(self):
        import time
        self._time = time
        if hasattr(time, "ticks_ms") and hasattr(time, "ticks_diff"):
            self.ticks_ms = time.ticks_ms
            self.ticks_us = time.ticks_us
            self.ticks_diff = time.ticks_diff
        elif hasattr(time, "monotonic_ns"):
            self._ns = time.monotonic_ns
            self.ticks_ms = self._ms_ns
            self.ticks_us = self._us_ns
            self.ticks_diff = self._diff
        else:
            self.ticks_ms = self._ms_mono
            self.ticks_us = self._us_mono
            self.ticks_diff = self._diff
        if hasattr(time, "sleep_ms"):
            self._sleep_ms = time.sleep_ms
        else:
            self._sleep_ms = self._sleep_ms_float

    def _ms_ns(self):
        return self._ns() // 1000000

    def _us_ns(self):
        return self._ns() // 1000

    def _ms_mono(self):
        return int(self._time.monotonic() * 1000)

    def _us_mono(self):
        return int(self._time.monotonic() * 1000000)

    def _diff(self, a, b):
        return a - b

    def _sleep_ms_float(self, ms):
        self._time.sleep(ms / 1000)

    def idle(self):
        self._sleep_ms(1)


class AudioClock:
    """For replay: milliseconds follow the audio fed so far, microseconds are real.

    Status lines then come every `status_ms` of audio, exactly where the board
    would print them, while processing times are measured for real.
    """

    def __init__(self, rate_hz, real=None):
        self.rate_hz = rate_hz
        self.samples = 0
        self._real = real if real is not None else SystemClock()
        self.ticks_us = self._real.ticks_us

    def advance(self, n):
        self.samples += n

    def ticks_ms(self):
        return self.samples * 1000 // self.rate_hz

    def ticks_diff(self, a, b):
        return self._real.ticks_diff(a, b)

    def idle(self):
        pass


class Loop:
    """Feed hops from `source` to `detector`, report detections, status and errors.

    ``step()`` processes at most one hop and returns False once a finite source
    is exhausted; ``run()`` loops until then (forever on a board).
    """

    def __init__(self, source, detector, clock, emit, key_id, rate_hz, led=None,
                 wdt=None, heap_free=None, status_ms=5000, flash_ms=200):
        self.source = source
        self.detector = detector
        self.clock = clock
        self.emit = emit
        self.key_id = key_id
        self.rate_hz = rate_hz
        self.led = led
        self.wdt = wdt
        self.heap_free = heap_free
        self.status_ms = status_ms
        self.flash_ms = flash_ms
        self.hop_samples = source.hop_samples
        self.blocks = 0
        self.errors = 0
        self.detections = 0
        self.consecutive_errors = 0
        self.t_start_ms = clock.ticks_ms()
        self.t_status_ms = self.t_start_ms
        self.t_error_ms = None
        self.led_on = False
        self.t_led_ms = 0
        # Processing time since the last status line (the board's real-time budget).
        self.win_blocks = 0
        self.win_us_sum = 0
        self.win_us_max = 0
        # Over the whole run (replay summary, tests).
        self.total_us_max = 0
        # The last hop before a status line: is the microphone there at all?
        self.mic_rms = None
        self.mic_peak = None

    def _report_error(self, exc, now_ms):
        self.errors += 1
        self.consecutive_errors += 1
        # At most one error line per ERROR_LINE_MIN_MS; the status line counts all.
        if (self.t_error_ms is None
                or self.clock.ticks_diff(now_ms, self.t_error_ms) >= ERROR_LINE_MIN_MS):
            self.emit(proto.error(proto.exc_text(exc)))
            self.t_error_ms = now_ms
        if self.consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
            raise RuntimeError("%d errors in a row, giving up" % self.consecutive_errors)

    def _detected(self, hit):
        # Audio time since capture start: the detector's count plus what overruns dropped.
        t_samples = hit[0] + self.source.dropped_samples
        self.detections += 1
        self.emit(proto.detection(t_samples * 1000 // self.rate_hz, hit[1], self.key_id))
        if self.led is not None:
            self.led.on()
            self.led_on = True
            self.t_led_ms = self.clock.ticks_ms()

    def _measure_level(self, x):
        """The microphone's level in the hop `x` (int16 units): AC RMS and peak |x|. Only
        when a status line is due, so the per-hop path stays free of allocation."""
        n = self.hop_samples
        total = 0
        squares = 0
        peak = 0
        for i in range(n):
            v = int(x[i])   # numpy's int16 scalars would wrap in v * v
            total += v
            squares += v * v
            if v > peak:
                peak = v
            elif -v > peak:
                peak = -v
        spread = n * squares - total * total   # n^2 times the variance, exact
        self.mic_rms = int(spread ** 0.5 / n + 0.5) if spread > 0 else 0
        self.mic_peak = peak

    def status_line(self, now_ms):
        n = self.win_blocks
        mean = self.win_us_sum // n if n else 0
        span_ms = self.clock.ticks_diff(now_ms, self.t_status_ms)
        load = self.win_us_sum // (span_ms * 10) if span_ms > 0 else 0
        heap = self.heap_free() if self.heap_free is not None else None
        text = proto.status(self.clock.ticks_diff(now_ms, self.t_start_ms), self.blocks,
                            self.source.overruns, self.errors, self.win_us_max, mean, load, heap,
                            self.mic_rms, self.mic_peak)
        self.win_blocks = 0
        self.win_us_sum = 0
        self.win_us_max = 0
        self.t_status_ms = now_ms
        return text

    def step(self):
        clock = self.clock
        if self.wdt is not None:
            self.wdt.feed()
        t0 = clock.ticks_us()
        try:
            x = self.source.next_hop()
        except Exception as exc:
            self._report_error(exc, clock.ticks_ms())
            clock.idle()
            return True
        if x is None:
            if self.source.at_end:
                return False
            clock.idle()
            return True
        try:
            hit = self.detector.feed(x)
            if hit is not None:
                self._detected(hit)
            self.consecutive_errors = 0
        except Exception as exc:
            self._report_error(exc, clock.ticks_ms())
            self.detector.reset()
        now_ms = clock.ticks_ms()
        status_due = self.status_ms and \
            clock.ticks_diff(now_ms, self.t_status_ms) >= self.status_ms
        if status_due:
            self._measure_level(x)   # before done(): the source may reuse the buffer after
        self.source.done()
        self.blocks += 1
        if self.led_on and clock.ticks_diff(now_ms, self.t_led_ms) >= self.flash_ms:
            self.led.off()
            self.led_on = False
        if status_due:
            self.emit(self.status_line(now_ms))
        dt = clock.ticks_diff(clock.ticks_us(), t0)
        self.win_blocks += 1
        self.win_us_sum += dt
        if dt > self.win_us_max:
            self.win_us_max = dt
        if dt > self.total_us_max:
            self.total_us_max = dt
        return True

    def run(self, max_hops=0):
        """Step until the source ends (or `max_hops` hops when > 0)."""
        while self.step():
            if max_hops and self.blocks >= max_hops:
                break
        return self.blocks
