"""A virtual airmark board on a pseudo-terminal, for the host-tool tests (no hardware).

The board is the real firmware loop: ``tools/replay.py`` (= firmware/airmark_replay.py:
the same ``airmark_loop.Loop``, detector and protocol lines as main.py) running in a
subprocess under CPython + numpy. Its stdout is the master side of a pty pair, so
the host tools open the slave side (``board.port``, a symlink to ``/dev/pts/N``)
with pyserial exactly like ``/dev/ttyACM0``.

Its "microphone" is the WAV it reads, streamed into its stdin by a thread here at
16 kHz (times ``clock.speed``): low-level noise while nothing plays, and the audio
handed to :meth:`play` (already through the simulated room) when something does.

- :meth:`unplug` kills the board process and closes the pty: the host's reads fail
  like on a real unplug; the port path dangles.
- :meth:`plug` boots a fresh board (new pty, ``hello`` again) behind the same path.
  With ``boot_on_open`` (the default) the board boots only once a host has opened
  the port (seen as pyserial's 115200 baud setting on the pty), so its ``hello`` is
  not lost to the input flush pyserial does on open.
- :meth:`inject` writes raw bytes onto the line (garbage, half lines).

The audio pipe is shrunk to one page, so a board that cannot keep up lags the
"room" by at most ~0.25 s of audio (a real board would count overruns instead).
"""

import fcntl
import os
import struct
import subprocess
import sys
import termios
import threading
import time
import tty

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPLAY = os.path.join(ROOT, "tools", "replay.py")
RATE_HZ = 16000
HOP_SAMPLES = 256
F_SETPIPE_SZ = 1031


class ScaledClock:
    """Monotonic seconds running `speed` times faster than real time (and a matching sleep)."""

    def __init__(self, speed=1.0):
        self.speed = float(speed)
        self._t0 = time.monotonic()

    def __call__(self):
        return self._t0 + (time.monotonic() - self._t0) * self.speed

    def sleep(self, s):
        if s > 0:
            time.sleep(s / self.speed)


class Clip:
    def __init__(self, samples):
        self.samples = np.asarray(samples, dtype=np.int16)
        self.pos = 0
        self.t0 = None          # clock time the first sample went into the microphone
        self.started = threading.Event()
        self.finished = threading.Event()


def wav_stream_header(rate_hz=RATE_HZ):
    """A RIFF header for an endless 16-bit mono stream (sizes at their maximum)."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate_hz, rate_hz * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", 0xFFFFFFFE))


class VirtualBoard:
    """See the module docstring. Use as a context manager; ``port`` is the path to open.

    The room (the thread that paces the microphone audio) runs from :meth:`plug` to
    :meth:`close`, across unplugs: what plays while the board is unplugged is not heard.
    """

    def __init__(self, key_path, workdir, *, clock=None, status_ms=1000, noise_rms=30.0, seed=0,
                 boot_on_open=True):
        self.key_path = str(key_path)
        self.workdir = str(workdir)
        self.clock = clock or ScaledClock(1.0)
        self.status_ms = status_ms
        self.noise_rms = noise_rms
        self.boot_on_open = boot_on_open
        self.rng = np.random.default_rng(seed)
        self.port = os.path.join(self.workdir, "ttyAIRMARK")
        self.proc = None
        self.master = None
        self.slave = None
        self.boots = 0
        self.booted = threading.Event()
        self._clips = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._unplugged = threading.Event()
        self._boot_thread = None
        self._room = None

    # -- power

    def plug(self):
        """Power the board behind `port`: a fresh pty now, the board process at once or on open."""
        if self.master is not None:
            raise RuntimeError("already plugged")
        master, slave = os.openpty()
        tty.setraw(slave)
        self.master, self.slave = master, slave
        tmp = self.port + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.port)
        self.boots += 1
        self._unplugged.clear()
        self.booted.clear()
        self._boot_thread = threading.Thread(target=self._boot, args=(self.boots,), daemon=True)
        self._boot_thread.start()
        if self._room is None:
            self._room = threading.Thread(target=self._room_loop, daemon=True)
            self._room.start()
        if not self.boot_on_open:
            self.booted.wait(10)
        return self

    def _host_opened(self):
        try:
            return termios.tcgetattr(self.slave)[4] == termios.B115200
        except (termios.error, TypeError, OSError):
            return False

    def _boot(self, boot):
        if self.boot_on_open:
            while not self._host_opened():
                if self._unplugged.wait(0.005):
                    return
        with open(os.path.join(self.workdir, "board-stderr-%d.txt" % boot), "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-u", REPLAY, "/dev/stdin", self.key_path, "--status-ms",
                 str(self.status_ms)], stdin=subprocess.PIPE, stdout=self.master, stderr=err,
                close_fds=True)
        try:
            fcntl.fcntl(proc.stdin.fileno(), F_SETPIPE_SZ, 4096)
        except OSError:
            pass
        try:
            proc.stdin.write(wav_stream_header())
            proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass
        self.proc = proc
        self.booted.set()

    def unplug(self):
        """Power gone: the board process dies, the pty hangs up, the port path dangles."""
        self._unplugged.set()
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
        if self._boot_thread is not None:
            self._boot_thread.join(10)
            self._boot_thread = None
        if proc is None and self.proc is not None:   # booted while we were unplugging
            proc, self.proc = self.proc, None
            proc.kill()
        if proc is not None:
            proc.wait(5)
            try:
                proc.stdin.close()
            except (OSError, ValueError):
                pass
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None
        if os.path.lexists(self.port):
            os.unlink(self.port)

    def close(self):
        if self.proc is not None or self.master is not None:
            self.unplug()
        self._closing.set()
        if self._room is not None:
            self._room.join(5)
            self._room = None
        with self._lock:
            for c in self._clips:
                c.finished.set()
            self._clips = []

    def __enter__(self):
        return self.plug()

    def __exit__(self, *exc):
        self.close()

    # -- the line

    def inject(self, data):
        """Raw bytes onto the serial line, as if the board had printed them."""
        os.write(self.master, data)

    # -- the microphone

    def play(self, samples):
        """Queue 16 kHz int16 `samples` (what the microphone hears); returns the Clip."""
        clip = Clip(samples)
        with self._lock:
            self._clips.append(clip)
        return clip

    def _next_hop(self):
        with self._lock:
            clip = self._clips[0] if self._clips else None
        hop = np.zeros(HOP_SAMPLES, dtype=np.int16)
        if self.noise_rms:
            hop[:] = np.round(self.rng.standard_normal(HOP_SAMPLES) * self.noise_rms)
        if clip is None:
            return hop
        if clip.pos == 0:
            clip.t0 = self.clock()
            clip.started.set()
        part = clip.samples[clip.pos:clip.pos + HOP_SAMPLES]
        hop[:len(part)] = part
        clip.pos += len(part)
        if clip.pos >= len(clip.samples):
            with self._lock:
                self._clips.pop(0)
            clip.finished.set()
        return hop

    def _room_loop(self):
        """16 kHz into whichever board process is alive (blocking when it lags), else nowhere."""
        hop_s = HOP_SAMPLES / RATE_HZ
        t_next = self.clock()
        while not self._closing.is_set():
            data = self._next_hop().tobytes()
            proc = self.proc
            if proc is not None:
                try:
                    proc.stdin.write(data)
                    proc.stdin.flush()
                except (BrokenPipeError, ValueError, OSError):
                    pass
            t_next += hop_s
            wait = t_next - self.clock()
            if wait > 0:
                self.clock.sleep(wait)
            elif wait < -0.5:
                t_next = self.clock()       # the board was slow: do not burst to catch up


class SimulatedRoomOutput:
    """A fake sound card for ``airmark.play``: the room simulation feeds the virtual board.

    ``start(data, samplerate)`` runs ``airmark.channel.simulate`` on the audio with the
    given preset and hands the 16 kHz result to the board's microphone; it returns the
    clock time at which the first sample reached the microphone.
    """

    def __init__(self, board, preset="near-1m", *, seed=0, cache_dir=None):
        from airmark.channel import ChannelConfig

        self.board = board
        self.config = ChannelConfig.from_preset(preset)
        self.seed = seed
        self.cache_dir = cache_dir
        self.clip = None
        self.infos = []

    def check(self, samplerate, channels):
        """Any audio goes (airmark play asks the real device first)."""

    def start(self, data, samplerate):
        from airmark.channel import simulate

        y, info = simulate(data, samplerate, self.config, seed=self.seed + len(self.infos),
                           cache_dir=self.cache_dir)
        self.infos.append(info)
        self.clip = self.board.play(y)
        if not self.clip.started.wait(30):
            raise RuntimeError("virtual board did not take the audio")
        return self.clip.t0

    @property
    def active(self):
        return self.clip is not None and not self.clip.finished.is_set()

    def stop(self):
        if self.clip is not None:
            self.clip.finished.set()
