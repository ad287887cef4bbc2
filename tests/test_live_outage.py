"""Two app processes on one database and one Redis, Redis killed and restarted: every browser
still gets every change (from the change-event log), says "delayed" meanwhile, and is "live"
again once Redis is back. The processes are two live pipelines in this test process, each with
its own Redis connections, exactly as two `leadboard serve` processes would hold them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator

import pytest

from app.db import Database
from app.ingest.samples import SampleLead
from app.ingest.services import IngestService, WorkspaceDirectory
from app.leads.cache import BoardCache
from app.live.broker import RedisBroker
from app.live.pipeline import LivePipeline
from app.templating import create_environment
from app.workspaces.models import Workspace
from tests.helpers import deliver_inbound
from tests.live_streams import OpenStream

Redis = tuple[int, list[subprocess.Popen[bytes]], object]


def lead(i: int) -> SampleLead:
    return SampleLead(phone=f"62812000{i:05d}", name=f"Lead {i}", conversation_id=f"conv-{i}")


async def process(db: Database, url: str) -> LivePipeline:
    live = LivePipeline(
        db,
        create_environment(),
        BoardCache(db),
        redis_url=url,
        broker=RedisBroker(url, retry_seconds=0.2),
    )
    await live.start()
    return live


@pytest.fixture
async def two_processes(
    database_url: str, restartable_redis: Redis
) -> AsyncIterator[tuple[LivePipeline, LivePipeline, Database, Database]]:
    port = restartable_redis[0]
    url = f"redis://127.0.0.1:{port}/0"
    db_a, db_b = Database(database_url), Database(database_url)
    a, b = await process(db_a, url), await process(db_b, url)
    yield a, b, db_a, db_b
    for live in (a, b):
        await live.stop()
    await db_a.dispose()
    await db_b.dispose()


async def test_a_redis_outage_delays_but_never_loses_a_change(
    two_processes: tuple[LivePipeline, LivePipeline, Database, Database],
    restartable_redis: Redis,
    workspace: Workspace,
) -> None:
    a, b, db_a, db_b = two_processes
    _, procs, start = restartable_redis
    webhooks_to_a = IngestService(db_a, a.broker, WorkspaceDirectory(db_a))
    webhooks_to_b = IngestService(db_b, b.broker, WorkspaceDirectory(db_b))
    async with OpenStream(b, workspace) as browser_on_b, OpenStream(a, workspace) as browser_on_a:
        assert (await browser_on_b.next("status")).data == "live"
        assert (await browser_on_a.next("status")).data == "live"
        await deliver_inbound(webhooks_to_a, lead(1), "before the outage")
        assert "before the outage" in (await browser_on_b.next("lead", wait=2)).data
        assert "before the outage" in (await browser_on_a.next("lead", wait=2)).data

        procs[0].kill()
        procs[0].wait()
        killed = time.monotonic()
        assert (await browser_on_b.next("status", wait=5)).data == "delayed"
        assert (await browser_on_a.next("status", wait=5)).data == "delayed"
        assert time.monotonic() - killed < 5

        # B raises changes of its own (higher ids), A raises others: B's browser gets A's too.
        for i in range(2, 8):
            await deliver_inbound(webhooks_to_b if i % 2 else webhooks_to_a, lead(i), f"outage {i}")
        seen_on_b = [await browser_on_b.next("lead", wait=5) for _ in range(6)]
        seen_on_a = [await browser_on_a.next("lead", wait=5) for _ in range(6)]
        for seen in (seen_on_a, seen_on_b):
            assert sorted(
                t for i in range(2, 8) for e in seen if (t := f"outage {i}") in e.data
            ) == [f"outage {i}" for i in range(2, 8)]

        start()  # type: ignore[operator]
        back = time.monotonic()
        assert (await browser_on_b.next("status", wait=5)).data == "live"
        assert (await browser_on_a.next("status", wait=5)).data == "live"
        assert time.monotonic() - back < 2.5
        await deliver_inbound(webhooks_to_a, lead(9), "after the outage")
        assert "after the outage" in (await browser_on_b.next("lead", wait=2)).data
        assert "after the outage" in (await browser_on_a.next("lead", wait=2)).data
    # Each change reached each browser once: no row came twice through Redis and the log.
    for browser in (browser_on_a, browser_on_b):
        ids = [e.id for e in browser.events if e.event == "lead"]
        assert len(ids) == len(set(ids)) == 8
