"""Watch a board: read its JSON lines, stamp host time, survive unplugging and garbage.

The board prints one JSON object per line (``hello``, ``detection``, ``status``,
``error``; docs/FIRMWARE.md "Protocol"). :class:`Monitor` reads them through a
:class:`airmark.serialio.Transport` and turns everything it sees into *records*:
the board's events with ``host_t`` (Unix time, seconds) added, plus four events of
its own:

- ``connected`` ``{"port"}`` -- the port was (re)opened;
- ``disconnected`` ``{"port", "reason"}`` -- the device went away; the monitor
  reopens it with exponential backoff (``backoff_s``), re-resolving the port each
  time, so a board that comes back as another device node is found again;
- ``garbage`` ``{"text"}`` -- a line that is not a protocol event (noise, a REPL
  banner, a traceback, half a line cut by a reset); counted, never fatal;
- ``summary`` -- the counters, when the monitor stops.

A line whose head was lost (``...us":5000}{"event":"hello",...``) keeps its
intact tail: the tail is parsed, the head counted as a *partial* line. Bytes
buffered when the device vanished are also counted as partial.

Every record is appended to the log file (one JSON object per line) and the file
is flushed after each line, so nothing is lost on Ctrl-C or a crash.
"""

import collections
import json
import math
import time
from dataclasses import dataclass, field

from .errors import AirmarkError
from .serialio import Disconnected, NoPortFound, PortUnavailable, SerialTimeout

BOARD_EVENTS = ("hello", "detection", "status", "error")
HOST_EVENTS = ("connected", "disconnected", "garbage", "summary")
EVENT_MARK = '{"event":'
GARBAGE_SHOWN_CHARS = 120


@dataclass
class Parsed:
    """What one line held: a protocol event (or None), garbage text, and whether a head was cut."""

    event: object = None
    garbage: object = None
    partial: bool = False


def parse_line(raw):
    """Parse one line (bytes or str, with or without its newline) from the board.

    >>> parse_line(b'{"event":"status","uptime_ms":5000}\\r\\n').event
    {'event': 'status', 'uptime_ms': 5000}
    >>> p = parse_line(b'tus","uptime_ms":50{"event":"hello","fw":"0.1.0"}\\n')
    >>> p.event["event"], p.partial, p.garbage
    ('hello', True, 'tus","uptime_ms":50')
    """
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", "replace")
    else:
        text = raw
    text = text.rstrip("\r\n").strip("\r")
    if not text.strip():
        return Parsed()
    ev = _as_event(text)
    if ev is not None:
        return Parsed(event=ev)
    i = text.rfind(EVENT_MARK)
    if i > 0:
        ev = _as_event(text[i:])
        if ev is not None:
            return Parsed(event=ev, garbage=text[:i], partial=True)
    return Parsed(garbage=text)


def _as_event(text):
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("event"), str) and obj["event"] in BOARD_EVENTS:
        return obj
    return None


def _shown(text):
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(ch if ch.isprintable() else "\\x%02x" % ord(ch) for ch in text)
    if len(text) > GARBAGE_SHOWN_CHARS:
        text = text[:GARBAGE_SHOWN_CHARS] + "..."
    return text


@dataclass
class MonitorStats:
    """Counters over a monitor run and the last few of each kind of record."""

    lines: int = 0
    events: collections.Counter = field(default_factory=collections.Counter)
    garbage: int = 0
    partial: int = 0
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    hello: object = None
    status: object = None
    port: object = None
    connected: bool = False
    last_detections: collections.deque = field(default_factory=lambda: collections.deque(maxlen=12))
    last_errors: collections.deque = field(default_factory=lambda: collections.deque(maxlen=6))
    last_garbage: collections.deque = field(default_factory=lambda: collections.deque(maxlen=6))

    @property
    def reconnects(self):
        return max(0, self.connects - 1)

    def summary(self, duration_s):
        return {
            "event": "summary",
            "duration_s": round(duration_s, 3),
            "lines": self.lines,
            "hello": self.events["hello"],
            "detections": self.events["detection"],
            "status": self.events["status"],
            "errors": self.events["error"],
            "garbage": self.garbage,
            "partial": self.partial,
            "disconnects": self.disconnects,
            "reconnects": self.reconnects,
        }


class Monitor:
    """Read records from a board, reconnecting as needed.

    Parameters
    ----------
    connect : callable
        ``connect()`` returns an opened Transport, or raises PortUnavailable /
        NoPortFound while the board is absent. Called again after each disconnect.
    sink : callable, optional
        ``sink(record, t_mono)`` for every record; ``t_mono`` is ``clock()`` when
        the line was read (the play scorer uses it).
    log : file, optional
        Text file opened for appending; one JSON record per line, flushed each line.
    clock, wallclock, sleep : callables
        Monotonic seconds, Unix seconds (``host_t``) and sleep; injectable for tests.
    backoff_s : (first, max)
        Reconnect delays: first, doubling up to max. Kept short: a board prints its
        ``hello`` right after boot, and pyserial drops what arrived before the port opened.
    read_timeout_s : float
        How long one :meth:`step` waits for a line.
    """

    def __init__(self, connect, *, sink=None, log=None, clock=time.monotonic, wallclock=time.time,
                 sleep=time.sleep, backoff_s=(0.2, 1.0), read_timeout_s=0.2):
        if backoff_s[0] <= 0 or backoff_s[1] < backoff_s[0]:
            raise ValueError("backoff_s must be (first > 0, max >= first), got %r" % (backoff_s,))
        self.connect = connect
        self.sinks = [sink] if sink is not None else []
        self.log = log
        self.clock = clock
        self.wallclock = wallclock
        self.sleep = sleep
        self.backoff_s = backoff_s
        self.read_timeout_s = read_timeout_s
        self.stats = MonitorStats()
        self.transport = None
        self._delay_s = backoff_s[0]
        self._next_try = None
        self._last_connect_error = None
        self.t_start = clock()

    # -- records

    def _record(self, rec, t_mono=None):
        t_mono = self.clock() if t_mono is None else t_mono
        rec["host_t"] = round(self.wallclock(), 3)
        if self.log is not None:
            self.log.write(json.dumps(rec) + "\n")
            self.log.flush()
        for sink in self.sinks:
            sink(rec, t_mono)
        return rec

    def _handle_line(self, raw, t_mono):
        st = self.stats
        p = parse_line(raw)
        out = []
        if p.event is None and p.garbage is None:
            return out
        st.lines += 1
        if p.garbage is not None:
            st.garbage += 1
            if p.partial:
                st.partial += 1
            text = _shown(p.garbage)
            st.last_garbage.append(text)
            out.append(self._record({"event": "garbage", "text": text, "partial": p.partial}, t_mono))
        if p.event is not None:
            ev = p.event
            kind = ev["event"]
            st.events[kind] += 1
            if kind == "hello":
                st.hello = ev
            elif kind == "status":
                st.status = ev
            elif kind == "detection":
                st.last_detections.append(ev)
            elif kind == "error":
                st.last_errors.append(ev.get("msg"))
            out.append(self._record(dict(ev), t_mono))
        return out

    # -- connection

    def _try_connect(self):
        now = self.clock()
        if self._next_try is not None and now < self._next_try:
            self.sleep(min(self._next_try - now, self.read_timeout_s))
            return []
        try:
            t = self.connect()
        except (PortUnavailable, NoPortFound) as exc:
            self.stats.connect_failures += 1
            self._last_connect_error = str(exc)
            if self._next_try is not None:
                self._delay_s = min(self._delay_s * 2, self.backoff_s[1])
            self._next_try = self.clock() + self._delay_s
            return []
        self.transport = t
        self._delay_s = self.backoff_s[0]
        self._next_try = None
        self.stats.connects += 1
        self.stats.connected = True
        self.stats.port = getattr(t, "port", None)
        return [self._record({"event": "connected", "port": self.stats.port})]

    def _lost(self, exc):
        st = self.stats
        st.disconnects += 1
        st.connected = False
        if exc.partial.strip():
            st.partial += 1
            st.garbage += 1
            st.last_garbage.append(_shown(exc.partial.decode("utf-8", "replace")))
        try:
            if self.transport is not None:
                self.transport.close()
        finally:
            self.transport = None
        self._next_try = self.clock() + self._delay_s
        return [self._record({"event": "disconnected", "port": st.port, "reason": str(exc),
                              "partial_bytes": len(exc.partial)})]

    @property
    def waiting_reason(self):
        """Why the monitor is not connected (the last connect error), or None."""
        return None if self.transport is not None else self._last_connect_error

    # -- driving

    def step(self):
        """Do one unit of work (a read or a connect attempt); returns the records it produced."""
        if self.transport is None:
            return self._try_connect()
        try:
            raw = self.transport.readline(self.read_timeout_s)
        except SerialTimeout:
            return []
        except Disconnected as exc:
            return self._lost(exc)
        return self._handle_line(raw, self.clock())

    def run(self, *, until=None, stop=None, on_step=None):
        """Step until ``clock() >= until`` (when given) or ``stop()`` is true."""
        while True:
            if until is not None and self.clock() >= until:
                break
            if stop is not None and stop():
                break
            recs = self.step()
            if on_step is not None:
                on_step(recs)

    def close(self):
        if self.transport is not None:
            try:
                self.transport.close()
            finally:
                self.transport = None
        self.stats.connected = False

    def summary(self):
        """The ``summary`` record (also written to the log)."""
        return self._record(self.stats.summary(self.clock() - self.t_start))


def open_log(path):
    """The --log file opened for appending (None without a path); one-line error if not."""
    if not path:
        return None
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as exc:
        raise AirmarkError("%s: cannot write the log (%s)" % (path, exc.strerror or exc)) from None


def serial_connector(port=None, board=None, transport_factory=None):
    """A ``connect()`` for Monitor: opens `port`, or re-detects the board's port each time."""
    from . import serialio

    factory = transport_factory or serialio.SerialTransport

    def connect():
        dev = serialio.find_port(port, board)
        t = factory(dev)
        t.open()
        return t

    return connect


# ---------------------------------------------------------------- presentation


def format_record(rec):
    """One human-readable line for a record (the plain, non-live view)."""
    kind = rec.get("event")
    ts = time.strftime("%H:%M:%S", time.localtime(rec.get("host_t", 0))) + \
        ".%03d" % int((rec.get("host_t", 0) % 1) * 1000)
    if kind == "detection":
        return "%s  DETECTION  key %s  score %s  (board t %.3f s)" % (
            ts, rec.get("key"), rec.get("score"), (rec.get("t_ms") or 0) / 1000)
    if kind == "hello":
        return "%s  hello      board %s  fw %s  %s  key %s  hop %s  kernels %s" % (
            ts, rec.get("board"), rec.get("fw"), rec.get("runtime"), rec.get("key"), rec.get("hop"),
            rec.get("kernels") or "?")
    if kind == "status":
        return "%s  status     up %.0f s  load %s%%  overruns %s  errors %s  heap %s  mic %s" % (
            ts, (rec.get("uptime_ms") or 0) / 1000, rec.get("load_pct"), rec.get("overruns"),
            rec.get("errors"), rec.get("heap_free"), mic_level(rec))
    if kind == "error":
        return "%s  ERROR      %s" % (ts, rec.get("msg"))
    if kind == "garbage":
        return "%s  garbage    %s" % (ts, rec.get("text"))
    if kind == "connected":
        return "%s  connected  %s" % (ts, rec.get("port"))
    if kind == "disconnected":
        return "%s  unplugged  %s (%s); reconnecting" % (ts, rec.get("port"), rec.get("reason"))
    return "%s  %s" % (ts, json.dumps(rec))


def mic_level(rec):
    """A status record's microphone level, e.g. "-42 dBFS rms, peak -30" ("?" from older
    firmware; "silent" when every sample of the hop was the same: check the wiring)."""
    rms, peak = rec.get("mic_rms"), rec.get("mic_peak")
    if not isinstance(rms, int) or not isinstance(peak, int):
        return "?"
    if rms <= 0:
        return "silent"

    def dbfs(v):
        return "%.0f" % (20 * math.log10(max(v, 1) / 32768))
    return "%s dBFS rms, peak %s" % (dbfs(rms), dbfs(peak))


def format_summary(s):
    return ("%d detection(s), %d status, %d error line(s), %d garbage line(s) (%d partial), "
            "%d disconnect(s), %d reconnect(s) in %.1f s" % (
                s["detections"], s["status"], s["errors"], s["garbage"], s["partial"],
                s["disconnects"], s["reconnects"], s["duration_s"]))


class LiveView:
    """A rich renderable of the monitor's state: connection, board, status, detections, errors."""

    def __init__(self, monitor):
        self.monitor = monitor

    def __rich__(self):
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table

        m = self.monitor
        st = m.stats
        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        if st.connected:
            head.add_row("port", "[green]%s[/green]" % st.port)
        else:
            head.add_row("port", "[yellow]waiting[/yellow] %s" % (m.waiting_reason or ""))
        if st.hello:
            h = st.hello
            head.add_row("board", "%s  fw %s  %s  key %s  kernels %s" % (
                h.get("board"), h.get("fw"), h.get("runtime"), h.get("key"), h.get("kernels") or "?"))
        if st.status:
            s = st.status
            head.add_row("status", "up %.0f s  load %s%%  block %s/%s us  overruns %s  heap %s" % (
                (s.get("uptime_ms") or 0) / 1000, s.get("load_pct"), s.get("block_us_mean"),
                s.get("block_us_max"), s.get("overruns"), s.get("heap_free")))
            head.add_row("mic", mic_level(s))
        head.add_row("counts", "%d detections  %d errors  %d garbage (%d partial)  %d reconnects" % (
            st.events["detection"], st.events["error"], st.garbage, st.partial, st.reconnects))
        dets = Table(box=None, pad_edge=False)
        dets.add_column("board t (s)", justify="right")
        dets.add_column("score", justify="right")
        dets.add_column("key")
        for d in reversed(st.last_detections):
            dets.add_row("%.3f" % ((d.get("t_ms") or 0) / 1000), str(d.get("score")), str(d.get("key")))
        parts = [head, Panel(dets, title="detections", title_align="left")]
        if st.last_errors:
            parts.append(Panel("\n".join(str(e) for e in st.last_errors), title="errors",
                               title_align="left", border_style="red"))
        if st.last_garbage:
            parts.append(Panel("\n".join(st.last_garbage), title="garbage", title_align="left",
                               border_style="yellow"))
        return Panel(Group(*parts), title="airmark monitor (Ctrl-C to stop)", title_align="left")
