"""SSE fan-out (issue 11): N signed-in browsers on ONE `leadboard serve` process while signed
Kapso webhooks arrive at a steady rate; is every event delivered to every browser, how fast, and
what does each connection cost the server?

    .venv/bin/python bench/fanout.py [--levels 100,500,1000,2000] [--rate 20] [--duration 60]
                                     [--database both|sqlite|postgres] [--leads 200] [--keep]
    .venv/bin/python bench/fanout.py --levels 50,200 --duration 8        # a quick run, ~1.5 min
    .venv/bin/python bench/fanout.py --levels 1000,2000@5 --database sqlite   # the two targets

Setup. One uvicorn worker (`leadboard serve`, as in production) with a private redis-server and
REDIS_URL set, so change events go through Redis pub/sub (the production path). Databases
(`--database`, default both, measured side by side in one run and printed in one table): a fresh
SQLite file, and a fresh PostgreSQL database `leadboard_bench_<random>` on 127.0.0.1:5432
(user postgres, trust auth; dropped afterwards; where PostgreSQL does not answer, that leg is
skipped with a line saying why). Each database keeps one file/database and one redis-server for
the whole run; every level gets a FRESH server process on it (so CPU and RSS start from the same
state), and the levels alternate between the databases (the machine's drift hits both alike).

Per level (N browsers, R events/s, D seconds; `--levels 100,500,2000@5`: N or N@R):
  1. sign in once (GET /login for the CSRF cookie, POST /login as the demo user); post one inbound
     message per lead of a pool of --leads (200) leads, so every lead has a row;
  2. board GET baseline with no browser connected; the server's VmRSS;
  3. a child process (`bench/fanout.py --client`, asyncio Protocols on uvloop: a raw HTTP/1.1
     GET /events with the session cookie, chunked transfer and SSE parsed incrementally, nothing
     else) opens the N streams and checks each answers 200 text/event-stream; after 2 s the
     server's VmRSS again: (RSS connected - RSS before) / N is the cost per connection;
  4. the traffic window: R x D signed webhooks on a fixed schedule (one every 1/R s, never waiting
     for the previous answer), each an inbound text message whose text starts with a unique
     marker `fanout-<tag>-<seq>`, cycling over the lead pool (a lead changes every --leads/R s:
     10 s by default). Meanwhile a separate signed-in client GETs the board (the htmx fragment,
     HX-Request) 2 times a second. The server's CPU (all threads, /proc) over the window;
  5. the clients find the marker in each `event: lead` (its data is the lead's row HTML, which
     shows the last message) and record time.monotonic() when each browser first sees each
     marker; this process records time.monotonic() when each webhook's 2xx arrived
     (CLOCK_MONOTONIC: one clock for all processes on Linux). After the window, the bench waits
     until every browser has every marker (or nothing new arrived for 3 s, at most 30 s);
  6. stop the clients, then the server; the server log is scanned for errors.

Figures per level and database: events received / expected (expected = markers answered 2xx x N;
a marker a browser never saw is lost; an `event: refresh` makes a real browser reload its view,
which the clients count but do not do), delivery latency p50 / p99 / max from the webhook's 2xx
to each browser's receipt (negative: the event beat the HTTP answer), server CPU % during the
window (100 % = one core), KB of RSS per connection (right after connecting, and after the
traffic), board GET p50 / p99 while the browsers are connected, webhook answer p50 / p99 and
non-2xx, the `event: status` counts per value (live / catching-up / delayed) and `event: refresh`
count; also the client process's CPU (near 100 % means it, not the server, set the latency).

Targets of issue 11, judged at the end (reported, never asserted): 1,000 browsers at 20 events/s
on one process: 0 lost, delivery p99 <= 100 ms, <= 40 KB per connection, board GET p99 <= 50 ms
meanwhile; 2,000 browsers at 5 events/s (`--levels 2000@5`): delivery p99 <= 250 ms.
This is a 2-core machine shared with the client process: the clients cost CPU the server does
not get, so the figures are an upper bound of what browsers on other machines would see.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import secrets
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
from _common import (
    POSTGRES_ADMIN_URL,
    WEBHOOK_PATH,
    Child,
    DeliveryMix,
    PostgresUnavailable,
    command_line,
    fmt,
    install_sigterm_handler,
    leadboard_server,
    percentile,
    postgres_database,
    raise_nofile_limit,
    redis_server,
    rss_kb,
    scratch_dir,
)

from app.ingest.samples import INBOUND_TEXTS
from app.workspaces.services import DEMO_USER_EMAIL, DEMO_USER_PASSWORD

THIS_FILE = Path(__file__).resolve()
DEFAULT_LEVELS = "100,500,1000,2000"
SESSION_COOKIE = "lb_session"
COOKIE_ENV = "FANOUT_COOKIE"  # the session cookie reaches the client process through its env
BOARD_HEADERS = {"HX-Request": "true", "HX-Target": "board-view"}
STATUS_VALUES = ("live", "catching-up", "delayed")
MAX_POSTS_IN_FLIGHT = 64
MAX_RECONNECTS = 3  # per browser: a dropped stream is reopened with Last-Event-ID, like htmx
RECONNECT_DELAY_S = 1.0  # the stream's own `retry: 1000`
DRAIN_QUIET_S = 3.0
DRAIN_LIMIT_S = 30.0
TARGETS = {
    "main_clients": 1000,
    "main_rate": 20.0,
    "main_p99_ms": 100.0,
    "main_kb_per_conn": 40.0,
    "main_board_p99_ms": 50.0,
    "big_clients": 2000,
    "big_rate": 5.0,
    "big_p99_ms": 250.0,
}


def marker(tag: str, seq: int) -> str:
    return f"fanout-{tag}-{seq:06d}"


# == the client process ==========================================================================
class Hub:
    """What all the browsers of the client process share: counters and the receipts."""

    def __init__(self, host: str, port: int, cookie: str, markers: int, tag: str) -> None:
        self.host = host
        self.port = port
        self.cookie = cookie
        self.markers = markers
        self.marker_re = re.compile(rb"fanout-" + re.escape(tag.encode()) + rb"-(\d+)")
        self.seqs = array("I")  # first receipt of a marker by a browser: marker ...
        self.times = array("d")  # ... and time.monotonic() at receipt
        self.first = 0
        self.duplicates = 0
        self.unmarked = 0  # lead events without this level's marker (another lead change)
        self.lead_events = 0
        self.stats_events = 0
        self.comments = 0
        self.refresh = 0
        self.status: collections.Counter[str] = collections.Counter()
        self.other: collections.Counter[str] = collections.Counter()
        self.bytes = 0
        self.open = 0
        self.disconnects = 0
        self.reconnects = 0
        self.reconnect_failures: collections.Counter[str] = collections.Counter()
        self.stopping = False
        self.tasks: set[asyncio.Task[None]] = set()

    def request(self, last_id: bytes | None) -> bytes:
        lines = [
            "GET /events HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "User-Agent: leadboard-bench-fanout",
            "Accept: text/event-stream",
            "Cache-Control: no-cache",
            f"Cookie: {SESSION_COOKIE}={self.cookie}",
        ]
        if last_id:
            lines.append(f"Last-Event-ID: {last_id.decode('ascii', 'replace')}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def connect(self, browser: Browser) -> str:
        """Open (or reopen) the browser's stream; "" once its answer is 200 text/event-stream,
        else the reason."""
        loop = asyncio.get_running_loop()
        browser.reset(loop)
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: browser, self.host, self.port), 15
            )
        except (OSError, TimeoutError) as exc:
            return f"connect: {type(exc).__name__}: {exc}"[:120]
        try:
            return await asyncio.wait_for(asyncio.shield(browser.ready), 30)
        except TimeoutError:
            browser.close()
            return "no answer in 30 s"

    def reconnect_later(self, browser: Browser) -> None:
        async def again() -> None:
            if self.stopping:
                return
            self.reconnects += 1
            reason = await self.connect(browser)
            if reason:
                self.reconnect_failures[reason] += 1

        def start() -> None:
            task = loop.create_task(again())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        loop = asyncio.get_running_loop()
        loop.call_later(RECONNECT_DELAY_S, start)

    def progress(self) -> dict[str, Any]:
        return {"received": self.first, "lead_events": self.lead_events, "open": self.open}

    def summary(self) -> dict[str, Any]:
        return {
            **self.progress(),
            "duplicates": self.duplicates,
            "unmarked": self.unmarked,
            "stats_events": self.stats_events,
            "comments": self.comments,
            "refresh": self.refresh,
            "status": dict(self.status),
            "other": dict(self.other),
            "bytes": self.bytes,
            "disconnects": self.disconnects,
            "reconnects": self.reconnects,
            "reconnect_failures": dict(self.reconnect_failures.most_common(5)),
        }


class Browser(asyncio.Protocol):
    """One EventSource: HTTP/1.1 answer, chunked transfer and SSE parsed as bytes arrive."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.seen = bytearray(hub.markers)  # 1 once this browser saw marker i; kept on reconnect
        self.last_id: bytes | None = None
        self.reconnects = 0
        self.transport: asyncio.Transport | None = None

    def reset(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ready: asyncio.Future[str] = loop.create_future()
        self.head = bytearray()
        self.headers_done = False
        self.chunked = False
        self.chunk_left = 0
        self.skip = 0  # the CRLF after a chunk's data
        self.size_line = bytearray()
        self.buf = bytearray()  # decoded SSE bytes not yet split into events
        self.sep = b""  # b"\r\n\r\n" or b"\n\n", from the first line
        self.eol = b""
        self.counted_open = False

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.hub.request(self.last_id))

    def connection_lost(self, exc: Exception | None) -> None:
        hub = self.hub
        if not self.ready.done():
            self.ready.set_result(f"closed before the answer ({exc or 'EOF'})")
        if self.counted_open:
            hub.open -= 1
            self.counted_open = False
            if not hub.stopping:
                hub.disconnects += 1
                if self.reconnects < MAX_RECONNECTS:
                    self.reconnects += 1
                    hub.reconnect_later(self)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.hub.bytes += len(data)
        if not self.headers_done:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > 65536:
                    self._fail("answer headers too long")
                return
            if not self._headers(bytes(self.head[:end])):
                return
            data = bytes(self.head[end + 4 :])
            self.head = bytearray()
            if not data:
                return
        if self.chunked:
            self._dechunk(data)
        else:
            self.buf += data
        self._events(now)

    # -- parsing ----------------------------------------------------------------------------------
    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_result(reason)
        self.close()

    def _headers(self, raw: bytes) -> bool:
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        kind = headers.get("content-type", "")
        if status != 200 or not kind.startswith("text/event-stream"):
            self._fail(f"HTTP {status} {kind or 'no content-type'}"[:80])
            return False
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.headers_done = True
        self.counted_open = True
        self.hub.open += 1
        self.ready.set_result("")
        return True

    def _dechunk(self, data: bytes) -> None:
        view = memoryview(data)
        pos, n = 0, len(data)
        while pos < n:
            if self.chunk_left:
                take = min(self.chunk_left, n - pos)
                self.buf += view[pos : pos + take]
                pos += take
                self.chunk_left -= take
                if not self.chunk_left:
                    self.skip = 2
            elif self.skip:
                take = min(self.skip, n - pos)
                pos += take
                self.skip -= take
            else:
                end = data.find(b"\n", pos)
                if end < 0:
                    self.size_line += view[pos:]
                    return
                self.size_line += view[pos:end]
                pos = end + 1
                line = bytes(self.size_line).strip()
                self.size_line.clear()
                if not line:
                    continue
                size = int(line.split(b";", 1)[0], 16)
                if size == 0:  # the server ended the stream
                    self.close()
                    return
                self.chunk_left = size

    def _events(self, now: float) -> None:
        buf = self.buf
        if not self.sep:
            first = buf.find(b"\n")
            if first < 0:
                return
            crlf = first > 0 and buf[first - 1] == 0x0D
            self.sep, self.eol = (b"\r\n\r\n", b"\r\n") if crlf else (b"\n\n", b"\n")
        sep, step = self.sep, len(self.sep)
        start = 0
        while True:
            end = buf.find(sep, start)
            if end < 0:
                break
            self._event(buf, start, end, now)
            start = end + step
        if start:
            del buf[:start]

    def _event(self, buf: bytearray, start: int, end: int, now: float) -> None:
        """One event in buf[start:end]: sse-starlette writes comment, id, event, then data."""
        hub, eol = self.hub, self.eol
        event = b""
        data_at = -1
        p = start
        while p < end:
            q = buf.find(eol, p, end)
            if q < 0:
                q = end
            if buf.startswith(b"data:", p):
                data_at = p + 5
                break
            if buf.startswith(b"event:", p):
                event = bytes(buf[p + 6 : q]).strip()
            elif buf.startswith(b"id:", p):
                self.last_id = bytes(buf[p + 3 : q]).strip()
            p = q + len(eol)
        if event == b"lead":
            hub.lead_events += 1
            m = hub.marker_re.search(buf, max(data_at, start), end)
            if m is None:
                hub.unmarked += 1
                return
            seq = int(m.group(1))
            if seq >= hub.markers:
                hub.unmarked += 1
            elif self.seen[seq]:
                hub.duplicates += 1
            else:
                self.seen[seq] = 1
                hub.first += 1
                hub.seqs.append(seq)
                hub.times.append(now)
        elif event == b"stats":
            hub.stats_events += 1
        elif event == b"status":
            q = buf.find(eol, data_at, end) if data_at >= 0 else -1
            value = bytes(buf[data_at : q if q >= 0 else end]).strip() if data_at >= 0 else b""
            key = value.decode("utf-8", "replace")[:40]
            if key in hub.status or len(hub.status) < 20:
                hub.status[key] += 1
        elif event == b"refresh":
            hub.refresh += 1
        elif not event and data_at < 0:
            hub.comments += 1  # ": live", pings
        elif len(hub.other) < 20 or event.decode("utf-8", "replace") in hub.other:
            hub.other[event.decode("utf-8", "replace") or "message"] += 1


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def client_main(args: argparse.Namespace) -> int:
    """Open --clients streams, answer `progress` and `stop` on stdin (JSON lines on stdout)."""
    raise_nofile_limit()
    url = urlsplit(args.url)
    assert url.hostname == "127.0.0.1" and url.port is not None, "only 127.0.0.1 targets"
    hub = Hub(url.hostname, url.port, os.environ[COOKIE_ENV], args.markers, args.tag)
    browsers = [Browser(hub) for _ in range(args.clients)]
    gate = asyncio.Semaphore(args.connect_concurrency)

    async def open_one(browser: Browser) -> str:
        async with gate:
            return await hub.connect(browser)

    started = time.monotonic()
    reasons = await asyncio.gather(*(open_one(b) for b in browsers))
    failed = collections.Counter(r for r in reasons if r)
    emit(
        {
            "connected": args.clients - sum(failed.values()),
            "failed": sum(failed.values()),
            "reasons": dict(failed.most_common(5)),
            "seconds": time.monotonic() - started,
        }
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).strip()
        if line == b"progress":
            emit(hub.progress())
        elif line == b"stop" or not line:
            break
    hub.stopping = True
    for browser in browsers:
        browser.close()
    await asyncio.sleep(0.2)
    out = Path(args.out)
    with out.with_suffix(".seq").open("wb") as f:
        hub.seqs.tofile(f)
    with out.with_suffix(".t").open("wb") as f:
        hub.times.tofile(f)
    emit(hub.summary())
    return 0


def run_client(args: argparse.Namespace) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(client_main(args))
    return uvloop.run(client_main(args))


# == the benchmark ===============================================================================
@dataclass(frozen=True)
class Level:
    clients: int
    rate: float

    @property
    def label(self) -> str:
        return f"{self.clients:,} @ {self.rate:g}/s"


@dataclass(frozen=True)
class Leg:
    name: str  # sqlite | postgres
    database_url: str
    redis_url: str


class LevelFailed(RuntimeError):
    pass


@dataclass
class Posts:
    """The webhooks of one traffic window."""

    total: int
    ok_at: dict[int, float] = field(default_factory=dict)  # marker -> monotonic time of its 2xx
    sent_at: dict[int, float] = field(default_factory=dict)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    latency_ms: list[float] = field(default_factory=list)
    max_slip_ms: float = 0.0  # how late the schedule ran at worst

    @property
    def non2xx(self) -> int:
        return self.total - len(self.ok_at)


@dataclass
class Result:
    leg: str
    level: Level
    duration: float
    connected: int = 0
    connect_failed: int = 0
    connect_reasons: dict[str, int] = field(default_factory=dict)
    connect_s: float = float("nan")
    posts: Posts | None = None
    expected: int = 0
    received: int = 0
    late_markers: int = 0  # markers whose 2xx never came, seen anyway
    complete_markers: int = 0  # markers every connected browser saw
    lat_ms: list[float] = field(default_factory=list)
    lat_sent_ms: list[float] = field(default_factory=list)
    drain_s: float = float("nan")
    window_s: float = float("nan")
    server_cpu_pct: float = float("nan")
    clients_cpu_pct: float = float("nan")
    bench_cpu_pct: float = float("nan")
    load_avg: float = float("nan")  # the machine's 1-minute load average at the window's end
    rss_before_kb: int = 0
    rss_connected_kb: int = 0
    rss_after_kb: int = 0
    board_idle_ms: list[float] = field(default_factory=list)
    board_ms: list[float] = field(default_factory=list)
    board_bad: collections.Counter[int] = field(default_factory=collections.Counter)
    clients: dict[str, Any] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.expected - self.received

    def kb_per_conn(self, after: bool = False) -> float:
        if not self.connected or not self.rss_before_kb:
            return float("nan")
        rss = self.rss_after_kb if after else self.rss_connected_kb
        return (rss - self.rss_before_kb) / self.connected

    def status_count(self, value: str) -> int:
        return int(self.clients.get("status", {}).get(value, 0))


class ClientProcess:
    """The child holding the N streams: JSON lines on its stdout, commands on its stdin."""

    def __init__(self, child: Child) -> None:
        self.child = child

    async def read(self, wait_s: float) -> dict[str, Any]:
        proc = self.child.proc
        assert proc is not None and proc.stdout is not None
        try:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), wait_s)
        except TimeoutError:
            raise LevelFailed(
                f"the client process said nothing for {wait_s:.0f} s:\n{self.child.log_tail(10)}"
            ) from None
        if not line:
            raise LevelFailed(f"the client process exited:\n{self.child.log_tail(20)}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: str, wait_s: float) -> dict[str, Any]:
        proc = self.child.proc
        assert proc is not None and proc.stdin is not None
        proc.stdin.write(command.encode() + b"\n")
        proc.stdin.flush()
        return await self.read(wait_s)


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> str:
    """Like a browser: the form page sets the CSRF cookie, the form posts it back; the session
    cookie's value."""
    page = await client.get("/login")
    page.raise_for_status()
    token = client.cookies.get("csrftoken")
    if not token:
        found = re.search(r'name="_csrf_token" value="([^"]*)"', page.text)
        token = found[1] if found else ""
    answer = await client.post(
        "/login", data={"email": email, "password": password, "next": "/", "_csrf_token": token}
    )
    if answer.status_code != 303:
        raise LevelFailed(f"sign-in failed: HTTP {answer.status_code} {answer.text[:200]}")
    value = client.cookies.get(SESSION_COOKIE)
    if not value:
        raise LevelFailed("no session cookie after signing in")
    return value


async def seed_leads(client: httpx.AsyncClient, mix: DeliveryMix, tag: str) -> None:
    """One inbound message per lead of the pool (no marker): every lead has a row."""
    gate = asyncio.Semaphore(8)

    async def one(k: int) -> None:
        wire = mix.inbound(mix.leads[k], f"Halo kak, saya tertarik (seed {tag} {k})")
        async with gate:
            answer = await client.post(WEBHOOK_PATH, content=wire.body, headers=wire.headers)
        if answer.status_code // 100 != 2:
            raise LevelFailed(f"seed webhook answered {answer.status_code}: {answer.text[:200]}")

    await asyncio.gather(*(one(k) for k in range(len(mix.leads))))


async def timed_get(client: httpx.AsyncClient) -> tuple[float, int]:
    t0 = time.perf_counter()
    try:
        answer = await client.get("/", headers=BOARD_HEADERS)
        status = answer.status_code
    except httpx.HTTPError:
        status = 0
    return (time.perf_counter() - t0) * 1000, status


async def board_gets(client: httpx.AsyncClient, count: int) -> list[float]:
    """The board fragment `count` times in a row (the baseline, nobody connected)."""
    times = []
    for _ in range(count):
        ms, status = await timed_get(client)
        if status == 200:
            times.append(ms)
    return times


async def poll_board(
    client: httpx.AsyncClient, stop: asyncio.Event, interval: float, result: Result
) -> None:
    """GET the board every `interval` s (one at a time) until `stop`."""
    while not stop.is_set():
        t0 = time.monotonic()
        ms, status = await timed_get(client)
        if status == 200:
            result.board_ms.append(ms)
        else:
            result.board_bad[status] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.monotonic() - t0)))


async def post_webhooks(
    client: httpx.AsyncClient, mix: DeliveryMix, tag: str, posts: Posts, rate: float, t0: float
) -> None:
    """posts.total webhooks, webhook i due at t0 + i / rate, none waiting for another's answer."""
    gate = asyncio.Semaphore(MAX_POSTS_IN_FLIGHT)

    async def one(seq: int) -> None:
        lead = mix.leads[seq % len(mix.leads)]
        text = f"{marker(tag, seq)} {INBOUND_TEXTS[seq % len(INBOUND_TEXTS)]}"
        wire = mix.inbound(lead, text)
        async with gate:
            sent = time.monotonic()
            try:
                answer = await client.post(WEBHOOK_PATH, content=wire.body, headers=wire.headers)
                status = answer.status_code
            except httpx.HTTPError as exc:
                status = 0
                posts.errors[type(exc).__name__] += 1
            done = time.monotonic()
        posts.sent_at[seq] = sent
        posts.statuses[status] += 1
        if 200 <= status < 300:
            posts.ok_at[seq] = done
            posts.latency_ms.append((done - sent) * 1000)
            with contextlib.suppress(ValueError):
                posts.answers[str(answer.json().get("status"))] += 1

    tasks = []
    for seq in range(posts.total):
        due = t0 + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            posts.max_slip_ms = max(posts.max_slip_ms, -delay * 1000)
        tasks.append(asyncio.create_task(one(seq)))
    await asyncio.gather(*tasks)


async def drain(clients: ClientProcess, expected: int) -> tuple[float, dict[str, Any]]:
    """Wait until the browsers have every marker, nothing new came for DRAIN_QUIET_S, or
    DRAIN_LIMIT_S passed; (seconds waited, last progress)."""
    started = time.monotonic()
    last, changed = -1, started
    while True:
        progress = await clients.ask("progress", 15)
        now = time.monotonic()
        if progress["received"] >= expected:
            break
        if progress["received"] != last:
            last, changed = progress["received"], now
        elif now - changed >= DRAIN_QUIET_S or now - started >= DRAIN_LIMIT_S:
            break
        await asyncio.sleep(0.2)
    return time.monotonic() - started, progress


def load_receipts(out: Path) -> tuple[array[int], array[float]]:
    seqs, times = array("I"), array("d")
    seqs.frombytes(out.with_suffix(".seq").read_bytes())
    times.frombytes(out.with_suffix(".t").read_bytes())
    return seqs, times


def score(result: Result, posts: Posts, seqs: array[int], times: array[float]) -> None:
    """Receipts against the webhooks' 2xx times: received, latencies, complete markers."""
    nan = float("nan")
    ok_at = [posts.ok_at.get(i, nan) for i in range(posts.total)]
    sent_at = [posts.sent_at.get(i, nan) for i in range(posts.total)]
    per_marker = [0] * posts.total
    lat, lat_sent = result.lat_ms, result.lat_sent_ms
    late = 0
    for seq, at in zip(seqs, times, strict=True):
        per_marker[seq] += 1
        ok = ok_at[seq]
        if ok != ok:  # this marker's POST got no 2xx
            late += 1
            continue
        lat.append((at - ok) * 1000)
        lat_sent.append((at - sent_at[seq]) * 1000)
    result.received = len(lat)
    result.late_markers = late
    result.expected = len(posts.ok_at) * result.level.clients
    result.complete_markers = sum(
        1 for i, n in enumerate(per_marker) if n >= result.connected and ok_at[i] == ok_at[i]
    )


def server_errors(child: Child) -> list[str]:
    lines = child.log_tail(100_000).splitlines()
    return [x for x in lines if "ERROR" in x or "Traceback" in x or "CRITICAL" in x]


async def measure_level(leg: Leg, level: Level, args: argparse.Namespace, workdir: Path) -> Result:
    result = Result(leg=leg.name, level=level, duration=args.duration)
    tag = secrets.token_hex(3)
    # The same leads every level, but deliveries (idempotency keys, wamids) of their own.
    mix = DeliveryMix(leads=args.leads, seed=args.seed, stream=int(tag, 16))
    posts = Posts(total=max(1, round(level.rate * args.duration)))
    name = f"{leg.name}-{level.clients}"
    out = workdir / f"receipts-{name}-{tag}"
    timeout = httpx.Timeout(15.0)
    limits = httpx.Limits(max_connections=MAX_POSTS_IN_FLIGHT)
    serving = leadboard_server(workdir, leg.redis_url, name=name, database_url=leg.database_url)
    with serving as (base, server, _db):
        async with (
            httpx.AsyncClient(base_url=base, timeout=timeout) as board,
            httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as hooks,
        ):
            cookie = await sign_in(board, args.email, args.password)
            await seed_leads(hooks, mix, tag)
            await board_gets(board, 5)  # warm: templates, caches
            result.board_idle_ms = await board_gets(board, 20)
            await asyncio.sleep(1.0)
            result.rss_before_kb = rss_kb(server.pid)
            argv = [
                sys.executable,
                str(THIS_FILE),
                "--client",
                "--url",
                base,
                "--clients",
                str(level.clients),
                "--markers",
                str(posts.total),
                "--tag",
                tag,
                "--out",
                str(out),
                "--connect-concurrency",
                str(args.connect_concurrency),
            ]
            child = Child(
                f"sse-clients-{name}",
                argv,
                workdir / f"clients-{name}-{tag}.log",
                env={COOKIE_ENV: cookie},
                pipes=True,
            )
            child.start()
            try:
                clients = ClientProcess(child)
                hello = await clients.read(60 + level.clients / 20)
                result.connected = int(hello["connected"])
                result.connect_failed = int(hello["failed"])
                result.connect_reasons = hello["reasons"]
                result.connect_s = float(hello["seconds"])
                print(
                    f"  {result.connected:,} of {level.clients:,} streams open in "
                    f"{result.connect_s:.1f} s"
                    + (f"; failed: {result.connect_reasons}" if result.connect_failed else ""),
                    flush=True,
                )
                if result.connected == 0:
                    raise LevelFailed(f"no stream opened: {result.connect_reasons}")
                await asyncio.sleep(2.0)
                result.rss_connected_kb = rss_kb(server.pid)

                stop = asyncio.Event()
                cpu0, ccpu0, me0 = server.cpu_seconds(), child.cpu_seconds(), time.process_time()
                t0 = time.monotonic()
                poller = asyncio.create_task(poll_board(board, stop, 1 / args.board_rate, result))
                await post_webhooks(hooks, mix, tag, posts, level.rate, t0)
                window = time.monotonic() - t0
                cpu1, ccpu1, me1 = server.cpu_seconds(), child.cpu_seconds(), time.process_time()
                stop.set()
                await poller
                result.window_s = window
                result.server_cpu_pct = 100 * (cpu1 - cpu0) / window
                result.clients_cpu_pct = 100 * (ccpu1 - ccpu0) / window
                result.bench_cpu_pct = 100 * (me1 - me0) / window
                result.load_avg = os.getloadavg()[0]
                result.posts = posts

                result.drain_s, _ = await drain(clients, len(posts.ok_at) * result.connected)
                result.rss_after_kb = rss_kb(server.pid)
                result.clients = await clients.ask("stop", 60)
            finally:
                child.stop()
    result.server_errors = server_errors(server)  # shutdown included
    seqs, times = load_receipts(out)
    score(result, posts, seqs, times)
    return result


# == report ======================================================================================
def ms_triplet(values: list[float]) -> str:
    top = max(values) if values else None
    return (
        f"p50 {fmt(percentile(values, 50), 1)}  p99 {fmt(percentile(values, 99), 1)}  "
        f"max {fmt(top, 1)} ms"
    )


def report_level(r: Result) -> None:
    p = r.posts
    assert p is not None
    c = r.clients
    print(f"  [{r.leg}] {r.level.label}: {r.connected:,} browsers, window {r.window_s:.1f} s")
    print(
        f"    delivered   {r.received:,} / {r.expected:,} (lost {r.lost:,}; markers every "
        f"browser saw: {r.complete_markers:,} of {len(p.ok_at):,}; drained in {r.drain_s:.1f} s)"
    )
    negative = sum(1 for x in r.lat_ms if x < 0)
    print(f"    latency     from the 2xx: {ms_triplet(r.lat_ms)} ({negative:,} before the 2xx)")
    print(f"                from the POST: {ms_triplet(r.lat_sent_ms)}")
    print(
        f"    CPU         server {fmt(r.server_cpu_pct)} %, client process "
        f"{fmt(r.clients_cpu_pct)} %, this process {fmt(r.bench_cpu_pct)} % (100 % = one core); "
        f"machine load average {r.load_avg:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"    server RSS  {r.rss_before_kb / 1024:.1f} MB before, "
        f"{r.rss_connected_kb / 1024:.1f} MB connected ({fmt(r.kb_per_conn(), 1)} KB/conn), "
        f"{r.rss_after_kb / 1024:.1f} MB after the traffic "
        f"({fmt(r.kb_per_conn(after=True), 1)} KB/conn)"
    )
    bad = f", non-200 {dict(r.board_bad)}" if r.board_bad else ""
    print(
        f"    board GET   {ms_triplet(r.board_ms)} (n {len(r.board_ms)}{bad}); with nobody "
        f"connected {ms_triplet(r.board_idle_ms)}"
    )
    errors = f", errors {dict(p.errors)}" if p.errors else ""
    print(
        f"    webhooks    {p.total:,} posted at {r.level.rate:g}/s, answers {dict(p.answers)}, "
        f"non-2xx {p.non2xx}{errors}; {ms_triplet(p.latency_ms)}; schedule late by at most "
        f"{p.max_slip_ms:.0f} ms"
    )
    events = c.get("lead_events", 0) + c.get("stats_events", 0)
    per_event = c.get("bytes", 0) / events / 1024 if events else float("nan")
    print(
        f"    events      lead {c.get('lead_events', 0):,} (duplicates {c.get('duplicates', 0):,},"
        f" without a marker {c.get('unmarked', 0):,}), stats {c.get('stats_events', 0):,}, "
        f"status {c.get('status', {})}, refresh {c.get('refresh', 0)}, other "
        f"{c.get('other', {})}; ~{fmt(per_event, 1)} KB per event on the wire"
    )
    print(
        f"    streams     disconnects {c.get('disconnects', 0)}, reconnects "
        f"{c.get('reconnects', 0)}"
        + (f" (failed {c['reconnect_failures']})" if c.get("reconnect_failures") else "")
        + f", open at the end {c.get('open', 0):,}"
    )
    if c.get("lead_events", 0) == 0:
        print("    CHECK: the browsers received no lead event at all")
    unprocessed = sum(n for answer, n in p.answers.items() if answer != "processed")
    if unprocessed:
        print(f"    CHECK: {unprocessed} webhooks not answered 'processed': {dict(p.answers)}")
    if r.server_errors:
        print(
            f"    server log  {len(r.server_errors)} error lines; first: {r.server_errors[0][:200]}"
        )
    if r.clients_cpu_pct >= 90:
        print("    NOTE: the client process was near a full core: latencies include its queueing")
    print(flush=True)


def table(results: list[Result]) -> list[str]:
    head = (
        "| database | browsers | events/s | received / expected | delivery p50 / p99 / max ms "
        "| server CPU | KB/conn | board GET p50 / p99 ms | webhook p50 / p99 ms | non-2xx "
        "| status live / catching-up / delayed | refresh |"
    )
    rows = [head, "|" + "---|" * 12]
    for r in results:
        p = r.posts
        assert p is not None
        top = max(r.lat_ms) if r.lat_ms else None
        rows.append(
            f"| {r.leg} | {r.level.clients:,} | {r.level.rate:g} | {r.received:,} / "
            f"{r.expected:,} | {fmt(percentile(r.lat_ms, 50), 1)} / "
            f"{fmt(percentile(r.lat_ms, 99), 1)} / {fmt(top, 1)} | {fmt(r.server_cpu_pct)} % | "
            f"{fmt(r.kb_per_conn(), 1)} | {fmt(percentile(r.board_ms, 50), 1)} / "
            f"{fmt(percentile(r.board_ms, 99), 1)} | {fmt(percentile(p.latency_ms, 50), 1)} / "
            f"{fmt(percentile(p.latency_ms, 99), 1)} | {p.non2xx} | "
            + " / ".join(str(r.status_count(v)) for v in STATUS_VALUES)
            + f" | {r.clients.get('refresh', 0)} |"
        )
    return rows


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def target_lines(results: list[Result], legs: list[str]) -> list[str]:
    t = TARGETS
    lines = []
    for leg in legs:
        mine = [r for r in results if r.leg == leg]
        main = [r for r in mine if r.level.clients == t["main_clients"]]
        main = [r for r in main if r.level.rate >= t["main_rate"]] or main
        if main:
            r = main[-1]
            p99 = percentile(r.lat_ms, 99)
            kb, kb_after = r.kb_per_conn(), r.kb_per_conn(after=True)
            board99 = percentile(r.board_ms, 99)
            harsh = "" if r.level.rate == t["main_rate"] else f" (measured at {r.level.rate:g}/s)"
            lines.append(
                f"[{leg}] 1,000 browsers at 20 events/s{harsh}: 0 lost ({r.lost:,} lost: "
                f"{verdict(r.lost == 0)}), delivery p99 <= 100 ms ({fmt(p99, 1)}: "
                f"{verdict(p99 <= t['main_p99_ms'])}), <= 40 KB/conn ({fmt(kb, 1)} connected, "
                f"{fmt(kb_after, 1)} after the traffic: {verdict(kb <= t['main_kb_per_conn'])}), "
                f"board GET "
                f"p99 <= 50 ms ({fmt(board99, 1)}: {verdict(board99 <= t['main_board_p99_ms'])})"
            )
        else:
            lines.append(f"[{leg}] 1,000 browsers at 20 events/s: not measured (--levels 1000)")
        big = [r for r in mine if r.level.clients == t["big_clients"]]
        exact = [r for r in big if r.level.rate <= t["big_rate"]]
        if exact:
            p99 = percentile(exact[-1].lat_ms, 99)
            lines.append(
                f"[{leg}] 2,000 browsers at {exact[-1].level.rate:g} events/s: delivery p99 <= "
                f"250 ms ({fmt(p99, 1)}: {verdict(p99 <= t['big_p99_ms'])})"
            )
        elif big:
            r = big[-1]
            p99 = percentile(r.lat_ms, 99)
            note = (
                "met even at this higher rate"
                if p99 <= t["big_p99_ms"]
                else "not judged: run --levels 2000@5"
            )
            lines.append(
                f"[{leg}] 2,000 browsers at 5 events/s: measured at {r.level.rate:g}/s only, "
                f"p99 {fmt(p99, 1)} ms ({note})"
            )
        else:
            lines.append(f"[{leg}] 2,000 browsers at 5 events/s: not measured (--levels 2000@5)")
    return lines


# == main ========================================================================================
def parse_levels(text: str, rate: float) -> list[Level]:
    levels = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        clients, _, at = part.partition("@")
        level = Level(int(clients), float(at) if at else rate)
        if level.clients < 1 or level.rate <= 0:
            raise SystemExit(f"bad level {part!r}: N or N@rate, N >= 1, rate > 0")
        levels.append(level)
    if not levels:
        raise SystemExit("--levels: at least one level")
    return levels


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--levels",
        default=DEFAULT_LEVELS,
        help=f"browsers per level, N or N@rate, comma separated ({DEFAULT_LEVELS})",
    )
    p.add_argument("--rate", type=float, default=20.0, help="webhooks per second (20)")
    p.add_argument("--duration", type=float, default=60.0, help="traffic seconds per level (60)")
    p.add_argument(
        "--database",
        choices=["both", "sqlite", "postgres"],
        default="both",
        help="both: SQLite and PostgreSQL side by side (default)",
    )
    p.add_argument(
        "--postgres-admin-url",
        default=POSTGRES_ADMIN_URL,
        help=f"where the PostgreSQL leg creates its database ({POSTGRES_ADMIN_URL})",
    )
    p.add_argument("--leads", type=int, default=200, help="leads the webhooks cycle over (200)")
    p.add_argument("--board-rate", type=float, default=2.0, help="board GETs per second (2)")
    p.add_argument(
        "--connect-concurrency", type=int, default=100, help="streams being opened at once (100)"
    )
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--email", default=DEMO_USER_EMAIL, help=f"sign-in ({DEMO_USER_EMAIL})")
    p.add_argument("--password", default=DEMO_USER_PASSWORD, help="sign-in password")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite file)")
    # The client process (started by the benchmark itself):
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--clients", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--markers", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--tag", default="", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if urlsplit(args.postgres_admin_url).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("--postgres-admin-url: only 127.0.0.1")
    if not args.client and (args.duration <= 0 or args.duration > 3600 or args.leads < 1):
        raise SystemExit("--duration: 0 < D <= 3600; --leads >= 1")
    return args


def run_levels(
    legs: list[Leg], levels: list[Level], args: argparse.Namespace, workdir: Path
) -> tuple[list[Result], list[str]]:
    """Level by level, each on every database in turn; a failed level is reported, not fatal."""
    results: list[Result] = []
    failures: list[str] = []
    for level in levels:
        for leg in legs:
            print(f"[{leg.name}] {level.label} for {args.duration:g} s ...", flush=True)
            try:
                result = asyncio.run(measure_level(leg, level, args, workdir))
            except (LevelFailed, httpx.HTTPError, RuntimeError) as exc:
                failures.append(f"[{leg.name}] {level.label}: {type(exc).__name__}: {exc}")
                print(f"  FAILED: {exc}\n", flush=True)
                continue
            results.append(result)
            report_level(result)
    return results, failures


def main() -> int:
    args = parse_args()
    install_sigterm_handler()
    if args.client:
        return run_client(args)
    nofile = raise_nofile_limit()
    levels = parse_levels(args.levels, args.rate)
    need = max(lv.clients for lv in levels) + 200
    if nofile < need:
        print(f"warning: RLIMIT_NOFILE is {nofile}, below the {need} descriptors needed")
    started = time.monotonic()
    with scratch_dir("leadboard-bench-fanout-", args.keep) as workdir, contextlib.ExitStack() as st:
        legs: list[Leg] = []
        skipped: list[str] = []
        if args.database in ("both", "sqlite"):
            redis = st.enter_context(redis_server(workdir))
            legs.append(Leg("sqlite", f"sqlite+aiosqlite:///{workdir / 'fanout.sqlite'}", redis))
        if args.database in ("both", "postgres"):
            try:
                url = st.enter_context(postgres_database(args.postgres_admin_url))
            except PostgresUnavailable as exc:
                line = f"PostgreSQL leg skipped: {exc}"
                skipped.append(line)
                print(line, flush=True)
            else:
                print(f"PostgreSQL leg: database {url.rsplit('/', 1)[1]} (dropped afterwards)")
                legs.append(Leg("postgres", url, st.enter_context(redis_server(workdir))))
        if not legs:
            print("nothing to measure")
            return 1
        print(
            f"levels {', '.join(lv.label for lv in levels)}; {args.duration:g} s of traffic each "
            f"over {args.leads} leads; databases {', '.join(leg.name for leg in legs)}; "
            f"RLIMIT_NOFILE {nofile}\n",
            flush=True,
        )
        results, failures = run_levels(legs, levels, args, workdir)

    print("=" * 100)
    print("Leadboard SSE fan-out: N browsers on one `leadboard serve` (1 uvicorn worker, Redis)")
    print(f"command: {command_line()}")
    print(
        f"setup:   {args.duration:g} s of signed inbound webhooks per level over {args.leads} "
        f"leads, board GET {args.board_rate:g}/s meanwhile; fresh server process per level; "
        f"latency from each webhook's 2xx to each browser's receipt (CLOCK_MONOTONIC)"
    )
    for line in skipped:
        print(line)
    for line in failures:
        print(f"FAILED {line}")
    if results:
        print()
        print("\n".join(table(results)))
        print()
        print("\n".join(target_lines(results, [leg.name for leg in legs])))
    print(f"elapsed: {time.monotonic() - started:.0f} s")
    print("=" * 100)
    return 0 if results and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
