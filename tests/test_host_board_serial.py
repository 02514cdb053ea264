"""airmark.serialio: the pyserial transport on a real pty, port listing and the board guess."""

import os
import threading
import time
import tty

import pytest

from airmark import cli, serialio


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    name = os.ttyname(slave)
    fds = {"master": master, "slave": slave}
    yield name, fds
    for fd in fds.values():
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def test_readline_complete_lines_partial_and_timeout(pty_pair):
    name, fds = pty_pair
    t = serialio.SerialTransport(name)
    t.open()
    try:
        os.write(fds["master"], b'{"event":"status"}\r\n{"event":"hel')
        assert t.readline(1.0) == b'{"event":"status"}\r\n'
        t0 = time.monotonic()
        with pytest.raises(serialio.SerialTimeout):
            t.readline(0.2)          # half a line is not a line
        assert 0.15 < time.monotonic() - t0 < 1.0
        os.write(fds["master"], b'lo"}\n')
        assert t.readline(1.0) == b'{"event":"hello"}\n'   # the half line was kept
    finally:
        t.close()


def test_overlong_line_is_cut(pty_pair):
    name, fds = pty_pair
    t = serialio.SerialTransport(name)
    t.open()
    try:
        data = b"x" * (serialio.MAX_LINE_BYTES + 10) + b"\n"

        def write_all():  # a pty holds ~4 KB: write from a thread, as a board would
            view = memoryview(data)
            while view:
                view = view[os.write(fds["master"], view):]

        writer = threading.Thread(target=write_all, daemon=True)
        writer.start()
        first = t.readline(2.0)
        assert len(first) == serialio.MAX_LINE_BYTES and first.endswith(b"x")
        assert t.readline(1.0) == b"x" * 10 + b"\n"
        writer.join(2.0)
    finally:
        t.close()


def test_unplug_raises_disconnected_with_partial(pty_pair):
    name, fds = pty_pair
    t = serialio.SerialTransport(name)
    t.open()
    os.write(fds["master"], b'{"event":"sta')
    with pytest.raises(serialio.SerialTimeout):
        t.readline(0.2)
    os.close(fds["master"])
    fds["master"] = None
    os.close(fds["slave"])
    fds["slave"] = None
    with pytest.raises(serialio.Disconnected) as ei:
        t.readline(1.0)
    assert ei.value.partial == b'{"event":"sta'
    assert not t.is_open
    with pytest.raises(serialio.PortUnavailable):
        t.reconnect()                 # the device node is gone


def test_write_goes_to_the_device(pty_pair):
    name, fds = pty_pair
    t = serialio.SerialTransport(name)
    t.open()
    try:
        t.write(b"\x03hello\r\n")
        time.sleep(0.05)
        assert os.read(fds["master"], 100) == b"\x03hello\r\n"
    finally:
        t.close()


def test_open_missing_port_is_one_clear_error(tmp_path):
    t = serialio.SerialTransport(str(tmp_path / "ttyNONE"))
    with pytest.raises(serialio.PortUnavailable) as ei:
        t.open()
    assert "ttyNONE" in str(ei.value)
    with pytest.raises(serialio.Disconnected):
        t.readline(0.1)


class FakePort:
    def __init__(self, device, vid=None, pid=None, serial_number=None, description="n/a"):
        self.device, self.vid, self.pid = device, vid, pid
        self.serial_number, self.description = serial_number, description
        self.manufacturer = self.product = None


PORTS = [FakePort("/dev/ttyS0"),
         FakePort("/dev/ttyACM0", 0x2E8A, 0x0005, "E6614103E7", "Board CDC"),
         FakePort("/dev/ttyUSB0", 0x10C4, 0xEA60, "0001", "CP2102 USB to UART"),
         FakePort("/dev/ttyACM1", 0x239A, 0x80F2, "DF625857C7", "Feather RP2040")]


def test_board_guess_from_usb_hints():
    info = {p.device: p for p in serialio.describe_ports(PORTS)}
    assert info["/dev/ttyACM0"].boards == ["pico-inmp441", "pico2-inmp441", "picow-inmp441"]
    assert info["/dev/ttyACM0"].usb_id == "2E8A:0005"
    assert info["/dev/ttyACM0"].what == "MicroPython (rp2 port)"
    assert info["/dev/ttyUSB0"].boards == ["esp32-devkitc-inmp441", "esp32s3-devkitc-inmp441"]
    assert info["/dev/ttyACM1"].boards == ["feather-rp2040-pdm"]
    assert info["/dev/ttyS0"].boards == [] and info["/dev/ttyS0"].usb_id is None
    d = info["/dev/ttyACM0"].to_dict()
    assert d["serial_number"] == "E6614103E7" and d["vid"] == 0x2E8A


def test_choose_port():
    ports = serialio.describe_ports(PORTS)
    assert serialio.choose_port(ports, "pico2-inmp441") == "/dev/ttyACM0"
    assert serialio.choose_port(ports, "feather-rp2040-pdm") == "/dev/ttyACM1"
    with pytest.raises(serialio.NoPortFound, match="several ports"):
        serialio.choose_port(ports)
    with pytest.raises(serialio.NoPortFound, match="pass --port"):
        serialio.choose_port(serialio.describe_ports(PORTS[:1]), "pico-inmp441")
    # no known board but exactly one USB serial device: take it (like mpremote's auto)
    other = serialio.describe_ports([PORTS[0], FakePort("/dev/ttyACM7", 0x1234, 0x5678)])
    assert serialio.choose_port(other) == "/dev/ttyACM7"


def test_ports_command_json(monkeypatch, capsys):
    import json

    monkeypatch.setattr(serialio, "list_ports", lambda boards=None: serialio.describe_ports(PORTS))
    assert cli.main(["ports", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["device"] for r in rows] == [p.device for p in PORTS]
    assert rows[3]["boards"] == ["feather-rp2040-pdm"] and rows[3]["usb_id"] == "239A:80F2"
    assert cli.main(["ports"]) == 0
    out = capsys.readouterr().out
    assert "/dev/ttyUSB0" in out and "esp32-devkitc-inmp441" in out


def test_only_serialio_imports_pyserial():
    """House style: one module imports pyserial; the rest talk to the Transport."""
    import re

    pkg = os.path.dirname(serialio.__file__)
    importers = []
    for f in sorted(os.listdir(pkg)):
        if f.endswith(".py"):
            with open(os.path.join(pkg, f)) as fh:
                if re.search(r"^\s*(import serial|from serial)\b", fh.read(), re.M):
                    importers.append(f)
    assert importers == ["serialio.py"]
