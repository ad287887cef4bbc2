"""The change-event broker: in-process, and Redis with several processes and a Redis outage."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable

from app.live.broker import QUEUE_SIZE, RESYNC, Broker, RedisBroker
from app.live.outbox import Change


async def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Poll a condition the broker exposes no event for (its health flag)."""
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def change(i: int, ws: int = 1) -> Change:
    return Change(id=i, workspace_id=ws, kind="lead", contact_id=i)


async def next_item(sub: object, wait: float = 5.0) -> object:
    return await asyncio.wait_for(sub.get(), wait)  # type: ignore[attr-defined]


async def test_in_process_broker_delivers_to_the_workspace_only() -> None:
    broker = Broker()
    async with broker.subscribe(1) as mine, broker.subscribe(2) as theirs:
        await broker.publish([change(1, ws=1)])
        assert await next_item(mine) == change(1, ws=1)
        assert theirs._queue.empty()
    assert broker.hub.subscriber_count == 0


async def test_slow_subscriber_is_told_to_resync_instead_of_blocking() -> None:
    broker = Broker()
    async with broker.subscribe(1) as slow:
        await broker.publish([change(i) for i in range(QUEUE_SIZE + 10)])
        items = []
        while not slow._queue.empty():
            items.append(slow._queue.get_nowait())
        assert RESYNC in items
        assert len(items) < QUEUE_SIZE + 10


async def test_redis_fans_out_across_processes(redis_url: str) -> None:
    """Two brokers stand for two app processes: an event published by one reaches the other's."""
    app_a, app_b = RedisBroker(redis_url), RedisBroker(redis_url)
    await app_a.start()
    await app_b.start()
    try:
        assert app_a.healthy and app_b.healthy
        async with app_b.subscribe(7) as browser_on_b, app_a.subscribe(7) as browser_on_a:
            await app_a.publish([change(42, ws=7)])
            assert await next_item(browser_on_b) == change(42, ws=7)
            assert await next_item(browser_on_a) == change(42, ws=7)
    finally:
        await app_a.stop()
        await app_b.stop()


async def test_redis_outage_falls_back_locally_then_resyncs(
    restartable_redis: tuple[int, list[subprocess.Popen[bytes]], object],
) -> None:
    port, procs, start = restartable_redis
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0", retry_seconds=0.1)
    await broker.start()
    try:
        async with broker.subscribe(1) as sub:
            procs[0].kill()
            procs[0].wait()
            # Redis is down: publishing must not raise, and this process's browsers still hear it.
            await broker.publish([change(1)])
            assert await next_item(sub) == change(1)
            await wait_until(lambda: not broker.healthy)
            start()  # type: ignore[operator]
            # Back: the subscriber is told to catch up from the event log.
            assert await next_item(sub, wait=10) == RESYNC
            assert broker.healthy
            await broker.publish([change(2)])
            assert await next_item(sub) == change(2)
    finally:
        await broker.stop()


def test_change_round_trips_through_json() -> None:
    assert Change.from_json(change(5, ws=3).to_json()) == change(5, ws=3)
