"""The client process of bench/fanout.py: N browsers' /events streams on asyncio Protocols
(raw HTTP/1.1, chunked transfer and SSE parsed as bytes arrive), reporting receipts to the
benchmark on stdout."""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import sys
import time
from array import array
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from _common import (
    raise_nofile_limit,
)

SESSION_COOKIE = "lb_session"
COOKIE_ENV = "FANOUT_COOKIE"  # the session cookie reaches the client process through its env
MAX_RECONNECTS = 3  # per browser: a dropped stream is reopened with Last-Event-ID, like htmx
RECONNECT_DELAY_S = 1.0  # the stream's own `retry: 1000`


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
