"""airmark monitor: parsing, reconnect/backoff with a fake transport, and end to end against a
virtual board (the real firmware loop on a pty): detections, garbage, unplug/replug, log, Ctrl-C."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import signals
from airmark import keys
from airmark import monitor as mon
from airmark.serialio import Disconnected, PortUnavailable, SerialTimeout
from virtual_board import ScaledClock, VirtualBoard

HELLO = (b'{"event":"hello","fw":"0.1.0","proto":1,"board":"pico-inmp441","runtime":"micropython",'
         b'"key":"k1","rate_hz":16000,"hop":128,"state_bytes":35784,"buf_bytes":4352,"cpu_hz":125000000,'
         b'"kernels":"viper+thumb"}')
STATUS = (b'{"event":"status","uptime_ms":5000,"blocks":625,"overruns":0,"errors":0,"block_us_max":2900,'
          b'"block_us_mean":2300,"load_pct":28,"heap_free":180224,"mic_rms":328,"mic_peak":1036}')
DETECTION = b'{"event":"detection","t_ms":3496,"score":12.449,"key":"k1"}'


# ---------------------------------------------------------------- parsing


def test_parse_line():
    assert mon.parse_line(STATUS + b"\r\n").event["uptime_ms"] == 5000
    assert mon.parse_line(DETECTION.decode()).event["score"] == 12.449
    p = mon.parse_line(b'tus","uptime_ms":50' + HELLO + b"\n")      # head cut off by a reset
    assert p.event["event"] == "hello" and p.partial and p.garbage == 'tus","uptime_ms":50'
    p = mon.parse_line(b"\x00\xff\xfe\x1b[0mnoise\r\n")
    assert p.event is None and p.garbage is not None and not p.partial
    assert mon.parse_line(b'{"a": 1}\n').garbage == '{"a": 1}'      # JSON, but not the protocol
    assert mon.parse_line(b'{"event":"bogus"}\n').event is None
    assert mon.parse_line(b"Traceback (most recent call last):\n").garbage.startswith("Traceback")
    empty = mon.parse_line(b"\r\n")
    assert empty.event is None and empty.garbage is None


# ---------------------------------------------------------------- fake transport


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += max(s, 0.0)


class FakeTransport:
    """Scripted readline: bytes -> a line; None -> timeout; ("drop", partial) -> unplug."""

    def __init__(self, clock, script, port="/dev/fake0"):
        self.clock = clock
        self.script = list(script)
        self.port = port
        self.closed = False

    def readline(self, timeout_s):
        if not self.script:
            self.clock.sleep(timeout_s)
            raise SerialTimeout("nothing more")
        item = self.script.pop(0)
        if item is None:
            self.clock.sleep(timeout_s)
            raise SerialTimeout("quiet")
        if isinstance(item, tuple):
            raise Disconnected("gone", item[1])
        self.clock.sleep(0.01)
        return item

    def close(self):
        self.closed = True


def test_monitor_reconnects_with_backoff_and_survives_garbage(tmp_path):
    clock = FakeClock()
    first = FakeTransport(clock, [HELLO + b"\r\n", None, b"\x00\xff\xfe junk\n", DETECTION + b"\n",
                                  b'us":50' + STATUS + b"\n", b"\n", ("drop", b'{"event":"sta')])
    second = FakeTransport(clock, [HELLO + b"\n", b'{"event":"error","msg":"ValueError: x"}\n',
                                   b'{"a":1}\n', STATUS + b"\n"])
    outcomes = [first, PortUnavailable("absent"), PortUnavailable("absent"), PortUnavailable("absent"),
                second]
    attempts = []

    def connect():
        attempts.append(clock())
        o = outcomes.pop(0)
        if isinstance(o, Exception):
            raise o
        return o

    records = []
    log_path = tmp_path / "log.jsonl"
    with open(log_path, "a") as log:
        m = mon.Monitor(connect, sink=lambda r, t: records.append(r), log=log, clock=clock,
                        wallclock=lambda: 1.7e9 + clock(), sleep=clock.sleep, backoff_s=(0.25, 4.0))
        while outcomes or second.script:
            m.step()
            with open(log_path) as f:                  # flushed line by line
                assert len(f.read().splitlines()) == len(records)
        m.step()
        summary = m.summary()
    kinds = [r["event"] for r in records]
    assert kinds == ["connected", "hello", "garbage", "detection", "garbage", "status", "disconnected",
                     "connected", "hello", "error", "garbage", "status", "summary"]
    assert all("host_t" in r for r in records)
    assert records[3]["score"] == 12.449 and records[3]["host_t"] > 1.7e9
    assert records[6]["partial_bytes"] == len(b'{"event":"sta')
    # backoff after the unplug: 0.25 s, then doubling while the port stays absent
    gaps = np.diff(attempts[1:])
    assert attempts[1] - 100.0 > 0.25 and list(np.round(gaps, 2)) == [0.5, 1.0, 2.0]
    assert first.closed
    st = m.stats
    assert (st.events["hello"], st.events["detection"], st.events["status"], st.events["error"]) == (2, 1, 2, 1)
    assert st.garbage == 4 and st.partial == 2        # salvaged head + the line cut by the unplug
    assert (st.disconnects, st.reconnects, st.connect_failures) == (1, 1, 3)
    assert summary["garbage"] == 4 and summary["reconnects"] == 1 and summary["detections"] == 1
    with open(log_path) as f:
        logged = [json.loads(x) for x in f]
    assert [r["event"] for r in logged] == kinds


def test_live_view_renders():
    from rich.console import Console

    clock = FakeClock()
    t = FakeTransport(clock, [HELLO + b"\n", STATUS + b"\n", DETECTION + b"\n", b"junk\n",
                              b'{"event":"error","msg":"I2S: bad pin"}\n'])
    m = mon.Monitor(lambda: t, clock=clock, sleep=clock.sleep)
    for _ in range(7):
        m.step()
    con = Console(record=True, width=120)
    con.print(mon.LiveView(m))
    text = con.export_text()
    assert "pico-inmp441" in text and "3.496" in text and "I2S: bad pin" in text and "junk" in text
    assert "load 28%" in text and "1 detections" in text
    assert "kernels viper+thumb" in text
    assert "-40 dBFS rms, peak -30" in text


def test_status_line_shows_the_microphone_level_or_says_silent():
    rec = mon.parse_line(STATUS.decode()).event
    assert mon.format_record(rec).endswith("mic -40 dBFS rms, peak -30")
    assert mon.format_record(dict(rec, mic_rms=0, mic_peak=0)).endswith("mic silent")
    old = {k: v for k, v in rec.items() if not k.startswith("mic_")}   # older firmware
    assert mon.format_record(old).endswith("mic ?")


def test_plain_hello_line_names_the_kernels_or_not():
    """A board's hello carries `kernels`; one flashed before the field existed shows `?`."""
    new = mon.parse_line(HELLO.decode()).event
    assert mon.format_record(new).endswith("hop 128  kernels viper+thumb")
    old = dict(new)
    del old["kernels"]
    assert mon.format_record(old).endswith("hop 128  kernels ?")


# ---------------------------------------------------------------- virtual board, end to end


@pytest.fixture(scope="module")
def key_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("key")
    path = str(d / "key.json")
    keys.save(keys.generate(1), path)
    return path


def marked_clip(key, seconds=6.0, start_s=1.0, whr_db=-8.0):
    host = signals.music_like(seconds, seed=5)
    y, seg = signals.embed_reference(host, key, start_s, whr_db)
    return signals.to_int16(y), seg


def run_until(m, cond, timeout_s=30.0):
    """Step the monitor until cond() holds (at most `timeout_s` real seconds); return cond()."""
    deadline = time.monotonic() + timeout_s
    m.run(stop=lambda: cond() or time.monotonic() > deadline)
    return cond()


def test_monitor_end_to_end_unplug_replug_garbage(tmp_path, key_path):
    key = keys.load(key_path)
    clock = ScaledClock(2.0)
    records = []
    log_path = tmp_path / "monitor.jsonl"
    with VirtualBoard(key_path, tmp_path, clock=clock) as board, open(log_path, "a") as log:
        m = mon.Monitor(mon.serial_connector(board.port), sink=lambda r, t: records.append((r, t)),
                        log=log, clock=clock, sleep=clock.sleep, backoff_s=(0.1, 0.8))
        assert run_until(m, lambda: m.stats.events["hello"] == 1 and m.stats.events["status"] >= 1)
        assert m.stats.connected

        samples, (_, seg_end) = marked_clip(key)
        clip = board.play(samples)
        assert run_until(m, lambda: clip.finished.is_set())
        m.run(until=clock() + 1.5)
        dets = [(r, t) for r, t in records if r["event"] == "detection"]
        assert len(dets) == 1 and dets[0][0]["key"] == key["key_id"]
        assert -0.5 <= dets[0][1] - clip.t0 - seg_end <= 1.5      # on the clip's time axis

        board.inject(b"\x00\xff\xfeNOISE\r\n")
        board.inject(b'{"event":"sta')                              # the next line completes it
        assert run_until(m, lambda: m.stats.garbage >= 2 and m.stats.partial >= 1)
        status_before = m.stats.events["status"]
        assert any(r["event"] == "garbage" and "NOISE" in r["text"] for r, _ in records)

        board.unplug()
        assert run_until(m, lambda: m.stats.connect_failures >= 2)  # it keeps trying, with backoff
        assert not m.stats.connected and m.stats.disconnects == 1
        board.plug()
        assert run_until(m, lambda: m.stats.events["hello"] >= 2
                         and m.stats.events["status"] > status_before + 1)
        assert m.stats.connected and m.stats.reconnects == 1
        m.close()
        summary = m.summary()
    kinds = [r["event"] for r, _ in records]
    assert kinds.count("connected") == 2 and kinds.count("disconnected") == 1
    assert kinds.index("disconnected") < len(kinds) - 1 - kinds[::-1].index("hello")
    assert summary["hello"] == 2 and summary["detections"] == 1
    with open(log_path) as f:
        logged = [json.loads(x) for x in f]
    assert kinds[-1] == "summary" and [r["event"] for r in logged] == kinds


def _cli(*args):
    return [sys.executable, "-m", "airmark.cli"] + list(args)


def test_monitor_cli_json_ctrl_c(tmp_path, key_path):
    log_path = tmp_path / "cli.jsonl"
    with VirtualBoard(key_path, tmp_path) as board:
        # a shell's background job ignores SIGINT and its children inherit that: give the
        # CLI the default disposition, as a terminal would
        proc = subprocess.Popen(_cli("monitor", "--port", board.port, "--json", "--log", str(log_path)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            lines = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                lines.append(json.loads(line))
                if sum(1 for x in lines if x["event"] == "status") >= 2:
                    break
            proc.send_signal(signal.SIGINT)
            rest, err = proc.communicate(timeout=30)  # generous: CI machines can be loaded
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines += [json.loads(x) for x in rest.splitlines()]
    assert lines[0]["event"] == "connected" and lines[0]["port"] == board.port
    assert lines[1]["event"] == "hello" and lines[1]["board"] == "replay"
    assert all(x["event"] in ("status", "summary") for x in lines[2:])
    assert all(isinstance(x["host_t"], float) for x in lines)
    assert lines[-1]["event"] == "summary" and lines[-1]["status"] >= 2 and lines[-1]["garbage"] == 0
    with open(log_path) as f:
        logged = [json.loads(x) for x in f]
    assert [x["event"] for x in logged] == [x["event"] for x in lines]


def test_monitor_cli_plain_duration(tmp_path, key_path):
    with VirtualBoard(key_path, tmp_path) as board:
        r = subprocess.run(_cli("monitor", "--port", board.port, "--duration", "2.5"),
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "connected" in out[0] and "hello" in out[1] and "board replay" in out[1]
    assert out[1].endswith("kernels array-ops")  # the replay's core on CPython
    assert any("status" in x and "load" in x for x in out)
    assert out[-1].startswith("0 detection(s)") and "0 disconnect(s)" in out[-1]
