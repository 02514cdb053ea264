"""MicroPython entry point: boot straight into detection, no host needed.

Needs MicroPython >= 1.23 built with ulab (rp2 or esp32). Files on the board:
main.py, the airmark_*.py modules (or their .mpy), ``airmark_keydata.py``
(``KEY = {...}``, written by ``airmark flash``) and the board definition
``airmark_boardcfg.py`` (``BOARD = {...}``) or ``board.json``.

Sequence: load + validate the board and the key, build the detector, open
machine.I2S from the board's pins, print ``hello``, start IRQ-driven capture,
run the shared loop forever (detections, status every few seconds, errors).
Setup problems print an ``error`` line and return to the REPL. A fatal error
in the loop prints an ``error`` line and resets the board after 2 s.

Watchdog: armed only after ``WDT_GRACE_MS`` of running, so a host (mpremote,
``airmark flash``) that connects right after a reset can interrupt with Ctrl-C
before it is armed; once armed it cannot be stopped and resets the board
``watchdog_ms`` after the loop stops feeding it (also after Ctrl-C).
"""

import gc
import sys
import time

import machine

import airmark_proto as proto

WDT_GRACE_MS = 3000
RESET_DELAY_MS = 2000


class GpioLed:
    def __init__(self, pin, active_high=True):
        self.pin = machine.Pin(pin, machine.Pin.OUT)
        self.level_on = 1 if active_high else 0
        self.off()

    def on(self):
        self.pin.value(self.level_on)

    def off(self):
        self.pin.value(1 - self.level_on)


class PixelLed:
    """One WS2812 pixel (ESP32-S3-DevKitC): dim green on detection."""

    def __init__(self, pin):
        import neopixel
        self.px = neopixel.NeoPixel(machine.Pin(pin), 1)
        self.color_on = (0, 40, 0)
        self.color_off = (0, 0, 0)
        self.off()

    def on(self):
        self.px[0] = self.color_on
        self.px.write()

    def off(self):
        self.px[0] = self.color_off
        self.px.write()


def make_led(led):
    if led is None:
        return None
    if led["kind"] == "neopixel":
        return PixelLed(led["pin"])
    return GpioLed(led["pin"], led.get("active_high", True))


class LazyWDT:
    """machine.WDT created on the first feed after `grace_ms` (see module docstring)."""

    def __init__(self, timeout_ms, grace_ms=WDT_GRACE_MS):
        self.timeout_ms = timeout_ms
        self.grace_ms = grace_ms
        self.t0 = time.ticks_ms()
        self.wdt = None

    def feed(self):
        if self.wdt is None:
            if time.ticks_diff(time.ticks_ms(), self.t0) < self.grace_ms:
                return
            self.wdt = machine.WDT(timeout=self.timeout_ms)
        self.wdt.feed()


def setup(emit):
    """Everything before the loop; returns (loop, capture) or None after an error line."""
    import airmark_board
    import airmark_boot
    import airmark_loop
    import airmark_capture
    parts = airmark_boot.load(emit)
    if parts is None:
        return None
    board, KEY, detector = parts
    mic = board["mic"]
    bufs = board["buffers"]
    try:
        from airmark_capture_viper import top16
    except ImportError:
        top16 = None    # no viper emitter: the detector gets strided views
    try:
        i2s = airmark_capture.open_i2s(board, machine.I2S, machine.Pin)
        cap = airmark_capture.I2SCapture(
            i2s, bufs["hop_samples"], det_hop=detector.hop_samples, bits=mic["bits"],
            shift=mic["shift"], n_bufs=bufs["n_bufs"], shift_fn=machine.I2S.shift,
            dense_fn=top16)
    except Exception as exc:
        emit(proto.error("I2S: " + proto.exc_text(exc)))
        return None
    led = None
    try:
        led = make_led(board["led"])
    except Exception as exc:
        emit(proto.error("LED: " + proto.exc_text(exc)))
    wdt = LazyWDT(board["watchdog_ms"]) if board["watchdog_ms"] else None
    cpu_hz = machine.freq() if hasattr(machine, "freq") else None
    if isinstance(cpu_hz, tuple):
        cpu_hz = cpu_hz[0]
    emit(proto.hello(board["name"], sys.implementation.name, KEY["key_id"], 16000,
                     detector.hop_samples, detector.state_bytes(), cap.buf_bytes, cpu_hz,
                     detector.kernel_path()))
    if detector.thumb_error is not None:  # a broken install: it runs, but slower
        emit(proto.error("airmark_viper_thumb not loaded, viper runs instead: " +
                         proto.exc_text(detector.thumb_error)))
    loop = airmark_loop.Loop(cap, detector, airmark_loop.SystemClock(), emit, KEY["key_id"],
                             16000, led=led, wdt=wdt, heap_free=gc.mem_free,
                             status_ms=airmark_board.status_ms(board),
                             flash_ms=airmark_board.flash_ms(board))
    return loop, cap


def main():
    try:
        import micropython
        micropython.alloc_emergency_exception_buf(128)
    except Exception:
        pass
    emit = print
    made = setup(emit)
    if made is None:
        return
    loop, cap = made
    gc.collect()
    cap.start()
    try:
        loop.run()
    except KeyboardInterrupt:
        cap.stop()
        raise
    except Exception as exc:
        emit(proto.error("fatal: " + proto.exc_text(exc) + "; resetting"))
        cap.stop()
        time.sleep_ms(RESET_DELAY_MS)
        machine.reset()


main()
