"""Change-event fan-out: one subscription per process, one queue per connected browser.

Without REDIS_URL the process is its own broker. With Redis, every process PUBLISHes to
`ws:<workspace_id>` and holds ONE pattern subscription that feeds its local subscribers, so an event
raised by any process (app or worker) reaches every browser. When Redis is unreachable, publishing
falls back to local delivery and subscribers are told to resync from the event log once the
subscription is back: nothing is lost, since every change is already in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.events import Change

log = logging.getLogger(__name__)

RESYNC: Final = "resync"  # queue marker: catch up from the event log
CHANNEL_PREFIX: Final = "ws:"
QUEUE_SIZE: Final = 256

QueueItem = Change | str


class Subscription:
    """A browser's queue. A browser that falls behind is told to resync; it never blocks others."""

    def __init__(self, workspace_id: int) -> None:
        self.workspace_id = workspace_id
        self._queue: asyncio.Queue[QueueItem] = asyncio.Queue(maxsize=QUEUE_SIZE)

    def put(self, item: QueueItem) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._drain()
            self._queue.put_nowait(RESYNC)

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def get(self) -> QueueItem:
        return await self._queue.get()


class Hub:
    """The process-local fan-out to subscriptions, by workspace."""

    def __init__(self) -> None:
        self._subs: dict[int, set[Subscription]] = {}

    def add(self, sub: Subscription) -> None:
        self._subs.setdefault(sub.workspace_id, set()).add(sub)

    def remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.workspace_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.workspace_id]

    def deliver(self, change: Change) -> None:
        for sub in tuple(self._subs.get(change.workspace_id, ())):
            sub.put(change)

    def resync_all(self) -> None:
        for subs in tuple(self._subs.values()):
            for sub in tuple(subs):
                sub.put(RESYNC)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())


class Broker:
    """In-process broker; RedisBroker overrides transport but keeps the same hub."""

    def __init__(self) -> None:
        self.hub = Hub()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, changes: list[Change]) -> None:
        for change in changes:
            self.hub.deliver(change)

    @asynccontextmanager
    async def subscribe(self, workspace_id: int) -> AsyncIterator[Subscription]:
        sub = Subscription(workspace_id)
        self.hub.add(sub)
        try:
            yield sub
        finally:
            self.hub.remove(sub)

    @property
    def healthy(self) -> bool:
        return True


class RedisBroker(Broker):
    def __init__(self, url: str, *, retry_seconds: float = 1.0) -> None:
        super().__init__()
        self.url = url
        self._redis: Redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=None)
        self._publisher: Redis = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self._reader: asyncio.Task[None] | None = None
        self._retry_seconds = retry_seconds
        self._connected = asyncio.Event()
        self._publish_failed = False

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="redis-broker-reader")
        # Give the subscription a moment so the first events of a fresh process are not missed;
        # if Redis is down the app still starts and serves from the event log.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout=2)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._redis.aclose()
        await self._publisher.aclose()

    @property
    def healthy(self) -> bool:
        return self._connected.is_set()

    async def publish(self, changes: list[Change]) -> None:
        if not changes:
            return
        try:
            async with self._publisher.pipeline(transaction=False) as pipe:
                for change in changes:
                    pipe.publish(f"{CHANNEL_PREFIX}{change.workspace_id}", change.to_json())
                await pipe.execute()
            self._publish_failed = False
        except (RedisError, OSError) as exc:
            if not self._publish_failed:
                log.warning("redis publish failed, delivering locally: %s", exc)
            self._publish_failed = True
            # This process's browsers still see it; the others resync when Redis is back.
            await super().publish(changes)

    async def _read_forever(self) -> None:
        first = True
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(f"{CHANNEL_PREFIX}*")
                self._connected.set()
                if not first:
                    log.info("redis subscription restored; browsers resync from the event log")
                    self.hub.resync_all()
                first = False
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    try:
                        self.hub.deliver(Change.from_json(message["data"]))
                    except (ValueError, KeyError, TypeError):
                        log.warning("dropping a malformed change event from redis")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._connected.is_set():
                    log.warning("redis subscription lost: %s", exc)
                self._connected.clear()
                first = False
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(self._retry_seconds)


def create_broker(redis_url: str | None) -> Broker:
    return RedisBroker(redis_url) if redis_url else Broker()
