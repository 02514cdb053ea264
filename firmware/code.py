"""CircuitPython entry point: a PDM or (on RP2 chips) an I2S microphone, same loop and protocol.

Works on stock CircuitPython builds that include ulab (all RP2040/RP2350 and
ESP32-family boards with a full build). A PDM microphone goes through
``audiobusio.PDMIn`` (raspberrypi ports; espressif: ESP32-S3 in 10.2.x), which
loses the audio recorded while the detector runs; an I2S one through a PIO
state machine and background DMA (``airmark_capture_pio``, rp2pio), which
loses nothing while the detector keeps up. Copy the .py sources, not
MicroPython .mpy files (CircuitPython rejects those). Files: code.py, the
airmark_*.py modules, ``airmark_keydata.py`` and ``airmark_boardcfg.py`` (or
``board.json``).

No watchdog here: CircuitPython's auto-reload restarts code.py when files
change, and a running watchdog would fight that during development.
"""

import gc
import sys
import time

import airmark_proto as proto

SAMPLE_RATE_HZ = 16000


class DigitalLed:
    def __init__(self, pin, active_high=True):
        import digitalio
        self.io = digitalio.DigitalInOut(pin)
        self.io.direction = digitalio.Direction.OUTPUT
        self.level_on = bool(active_high)
        self.off()

    def on(self):
        self.io.value = self.level_on

    def off(self):
        self.io.value = not self.level_on


class PixelLed:
    def __init__(self, pin):
        import neopixel_write
        import digitalio
        self.write = neopixel_write.neopixel_write
        self.io = digitalio.DigitalInOut(pin)
        self.io.direction = digitalio.Direction.OUTPUT
        self.color_on = bytearray((40, 0, 0))   # GRB: dim green
        self.color_off = bytearray(3)
        self.off()

    def on(self):
        self.write(self.io, self.color_on)

    def off(self):
        self.write(self.io, self.color_off)


def _pin(pins, name):
    if not hasattr(pins, name):
        raise ValueError("this board has no pin board.%s" % name)
    return getattr(pins, name)


def make_led(pins, led):
    if led is None:
        return None
    pin = led["pin"]
    if isinstance(pin, int):
        raise ValueError("CircuitPython LED pins are names such as 'LED', got %r" % pin)
    if led["kind"] == "neopixel":
        return PixelLed(_pin(pins, pin))
    return DigitalLed(_pin(pins, pin), led.get("active_high", True))


def open_pdm(bdef, detector, now_ns):
    import board as pins
    import audiobusio
    import airmark_capture_cp
    pdm = bdef["pdm"]
    mic = audiobusio.PDMIn(_pin(pins, pdm["clk"]), _pin(pins, pdm["data"]),
                           sample_rate=SAMPLE_RATE_HZ, bit_depth=16)
    return airmark_capture_cp.PDMCapture(mic, detector.hop_samples, now_ns=now_ns)


def open_pio_i2s(bdef, detector, now_ns):
    import microcontroller
    import rp2pio
    import airmark_capture_pio
    if not hasattr(rp2pio.StateMachine, "background_read"):
        raise OSError("this CircuitPython has no rp2pio background_read: 9.2.1 or later needed")
    i2s, bufs = bdef["i2s"], bdef["buffers"]
    if bufs["hop_samples"] % detector.hop_samples:
        raise ValueError("buffers.hop_samples %d is not a multiple of the detector hop %d"
                         % (bufs["hop_samples"], detector.hop_samples))
    sm = airmark_capture_pio.state_machine(
        rp2pio, getattr(microcontroller.pin, "GPIO%d" % i2s["sck"]),
        getattr(microcontroller.pin, "GPIO%d" % i2s["sd"]), SAMPLE_RATE_HZ)
    return airmark_capture_pio.PIOCapture(
        sm, detector.hop_samples, hops_per_buffer=bufs["hop_samples"] // detector.hop_samples,
        n_slots=bufs["n_bufs"], now_ns=now_ns, rate_hz=SAMPLE_RATE_HZ)


def setup(emit):
    import board as pins
    import airmark_board
    import airmark_boot
    import airmark_loop
    parts = airmark_boot.load(emit)
    if parts is None:
        return None
    bdef, KEY, detector = parts
    bus = bdef["mic"]["bus"]
    now_ns = time.monotonic_ns if hasattr(time, "monotonic_ns") else None
    try:
        if bus == "i2s":
            cap = open_pio_i2s(bdef, detector, now_ns)
        else:
            cap = open_pdm(bdef, detector, now_ns)
    except Exception as exc:
        emit(proto.error(("I2S" if bus == "i2s" else "PDM") + " microphone: "
                         + proto.exc_text(exc)))
        return None
    led = None
    try:
        led = make_led(pins, bdef["led"])
    except Exception as exc:
        emit(proto.error("LED: " + proto.exc_text(exc)))
    cpu_hz = None
    try:
        import microcontroller
        cpu_hz = microcontroller.cpu.frequency
    except Exception:
        pass
    emit(proto.hello(bdef["name"], sys.implementation.name, KEY["key_id"], SAMPLE_RATE_HZ,
                     detector.hop_samples, detector.state_bytes(), cap.buf_bytes, cpu_hz,
                     detector.kernel_path()))
    loop = airmark_loop.Loop(cap, detector, airmark_loop.SystemClock(), emit, KEY["key_id"],
                             SAMPLE_RATE_HZ, led=led, heap_free=gc.mem_free,
                             status_ms=airmark_board.status_ms(bdef),
                             flash_ms=airmark_board.flash_ms(bdef))
    return loop, cap


def main():
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
        emit(proto.error("fatal: " + proto.exc_text(exc)))
        cap.stop()


main()
