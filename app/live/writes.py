"""Writing to a thousand streams from one callback: an ASGI send run inline until it must wait.

uvicorn's `send` for a response body is a coroutine that only suspends when the socket's write
buffer is full (flow control); otherwise it frames the chunk, calls `transport.write` and
returns without ever yielding to the event loop. `start_write` runs it that far, inline: when it
completes (nearly always) nothing was scheduled at all; when it must wait, it hands back an
awaitable that finishes the same send, which the caller runs as a task of that one stream.

Why: with one writer task per browser, a change woke 1,000 tasks, and every request in flight
(a board GET needs about six hops through the loop) queued behind those wake-ups at each hop:
`bench/fanout.py` at 1,000 browsers and 20 events/s measured board GET p99 132-147 ms. Written
from one callback per loop turn, the same fan-out leaves the loop's queue alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

from litestar.types import Message, Send


class _Finish:
    """The rest of a send that had to wait: first the future it yielded, then the coroutine."""

    __slots__ = ("_coro", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    def __await__(self) -> Generator[Any, None, None]:
        try:
            yield self._waiting  # the task sleeps until the socket drains (the future is done)
        except BaseException:
            self._coro.close()
            raise
        return (yield from self._coro.__await__())


def start_write(send: Send, message: Message) -> Awaitable[None] | None:
    """Run `send(message)` until it completes (None) or has to wait (an awaitable finishing it).
    Exceptions of the send are raised here, or by the awaitable."""
    coro = send(message)
    if not isinstance(coro, Coroutine):  # a send that is not a coroutine: await it normally
        return coro
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return _Finish(coro, waiting)
