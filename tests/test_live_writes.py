"""Writing streams from one callback: a send that completes inline, and one that has to wait
(a browser that reads slowly) without holding up the others."""

from __future__ import annotations

import asyncio
from typing import Any

from app.db import Database
from app.leads.cache import BoardCache
from app.live.fanout import Fanout
from app.live.render import LiveRenderer
from app.live.writes import start_write
from app.templating import create_environment


class Socket:
    """An ASGI send as uvicorn's behaves: inline, unless its buffer is "full" (then it waits)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.full: asyncio.Future[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.full is not None:
            await self.full
        self.written.append(message["body"])


async def test_a_send_that_need_not_wait_completes_inline() -> None:
    socket = Socket()
    assert start_write(socket.send, {"body": b"a"}) is None  # type: ignore[arg-type]
    assert socket.written == [b"a"]


async def test_a_send_that_must_wait_is_finished_by_the_awaitable() -> None:
    socket = Socket()
    socket.full = asyncio.get_running_loop().create_future()
    pending = start_write(socket.send, {"body": b"a"})  # type: ignore[arg-type]
    assert pending is not None and socket.written == []
    task = asyncio.ensure_future(pending)  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert not task.done()
    socket.full.set_result(None)
    await task
    assert socket.written == [b"a"]


async def test_a_slow_browser_coalesces_and_never_holds_up_the_others(db: Database) -> None:
    fanout = Fanout(LiveRenderer(db, create_environment(), BoardCache(db)), behind_seconds=0.05)
    slow_socket, quick_socket = Socket(), Socket()
    slow = fanout.connect(1, ("en", "Asia/Jakarta"))
    quick = fanout.connect(1, ("en", "Asia/Jakarta"))
    slow.start(slow_socket.send)  # type: ignore[arg-type]
    quick.start(quick_socket.send)  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the initial status is written
    slow_socket.full = asyncio.get_running_loop().create_future()
    for version in range(1, 4):  # lead 7 changes three times while the slow socket is full
        for conn in (slow, quick):
            conn.offer(("lead", 7), f"row v{version};".encode(), 0.0, version)
        await asyncio.sleep(0)
    assert quick_socket.written[1:] == [b"row v1;", b"row v2;", b"row v3;"]
    assert slow.writer is not None  # its first row waits in its own task
    fanout._tick(1.0, ping=False)  # a second later it is behind: it will say so
    slow_socket.full.set_result(None)
    slow_socket.full = None
    await asyncio.wait_for(slow.writer, 1)
    await asyncio.sleep(0)
    rows = b"".join(slow_socket.written[1:])
    # v1 was in flight; v2 was replaced by v3 while waiting; then it caught up and says live.
    assert rows.startswith(b"row v1;") and b"row v2;" not in rows and b"row v3;" in rows
    assert b"data: catching-up" in rows and rows.rstrip().endswith(b"data: live")
    slow.close()
    quick.close()
    await slow.finished()
