"""Change-event transport: in-process, or Redis pub/sub with one subscription per process.

Without REDIS_URL the process is its own broker. With Redis, every process PUBLISHes to
`ws:<workspace_id>` and holds ONE pattern subscription that feeds its hub, so an event raised by
any process (app or worker) reaches every browser. Redis only makes delivery fast: when it is
unreachable, publishing falls back to local delivery, the hub is told it no longer hears other
processes (`receiving` is False: boards say "delayed") and app/live/tail.py reads their events
from the change-event log until the subscription is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.live.outbox import Change
from app.live.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RESYNC: Final = "resync"  # queue marker: catch up from the event log
CHANNEL_PREFIX: Final = "ws:"
QUEUE_SIZE: Final = 256
SEEN_IDS: Final = 50_000  # event ids remembered to drop a second copy (Redis and the log tail)

QueueItem = Change | str
ChangeListener = Callable[[Change], None]
StateListener = Callable[[bool], None]


class Subscription:
    """A queue of one workspace's changes, for code that awaits them one by one (tests, tools).
    Browsers do not use it: app/live/fanout.py writes to them straight from the hub."""

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


class RecentIds:
    """The last `size` event ids seen, to deliver each event once whichever way it came."""

    def __init__(self, size: int = SEEN_IDS) -> None:
        self._size = size
        self._ids: set[int] = set()
        self._order: deque[int] = deque()

    def add(self, event_id: int) -> bool:
        """True when the id is new (and remembers it)."""
        if event_id in self._ids:
            return False
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True


class Hub:
    """The process-local fan-out point: every change reaches it once, from any source."""

    def __init__(self) -> None:
        self._subs: dict[int, set[Subscription]] = {}
        self._listeners: list[ChangeListener] = []
        self._state_listeners: list[StateListener] = []
        self._seen = RecentIds()
        self.receiving = True  # False while this process cannot hear other processes' events

    def add(self, sub: Subscription) -> None:
        self._subs.setdefault(sub.workspace_id, set()).add(sub)

    def remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.workspace_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.workspace_id]

    def listen(self, on_change: ChangeListener, on_state: StateListener | None = None) -> None:
        self._listeners.append(on_change)
        if on_state is not None:
            self._state_listeners.append(on_state)

    def deliver(self, change: Change) -> bool:
        """Hand a change to everyone listening; False (and nothing done) for a second copy."""
        if not self._seen.add(change.id):
            return False
        for listener in self._listeners:
            listener(change)
        for sub in tuple(self._subs.get(change.workspace_id, ())):
            sub.put(change)
        return True

    def set_receiving(self, receiving: bool) -> None:
        if receiving == self.receiving:
            return
        self.receiving = receiving
        for listener in self._state_listeners:
            listener(receiving)

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
        self.hub.receiving = False  # until the subscription is up

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="redis-broker-reader")
        # Give the subscription a moment so the first events of a fresh process are not missed;
        # if Redis is down the app still starts and serves from the event log.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout=2)

    async def stop(self) -> None:
        await cancel_and_wait(self._reader)
        await self._redis.aclose()
        await self._publisher.aclose()

    @property
    def healthy(self) -> bool:
        return self._connected.is_set()

    async def publish(self, changes: list[Change]) -> None:
        if not changes:
            return
        if not self._connected.is_set():
            # Our own subscription is down: deliver here now rather than wait for the log tail.
            await super().publish(changes)
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
            # This process's browsers still see it; the others read it from the change log.
            await super().publish(changes)

    async def _read_forever(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(f"{CHANNEL_PREFIX}*")
                if not self._connected.is_set():
                    log.info("redis subscription up")
                self._connected.set()
                self.hub.set_receiving(True)
                self.hub.resync_all()
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
                self.hub.set_receiving(False)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(self._retry_seconds)


def create_broker(redis_url: str | None) -> Broker:
    return RedisBroker(redis_url) if redis_url else Broker()
