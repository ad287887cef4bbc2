"""GET /events as a browser gets it: the real response and fan-out, written to an ASGI stand-in
(an endless HTTP stream hangs a test client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.db import Database
from app.ingest.samples import SampleLead
from app.ingest.services import IngestService, WorkspaceDirectory
from app.leads.cache import BoardCache
from app.leads.queries import LeadRow
from app.live.broker import Broker
from app.live.outbox import LEAD_CHANGED, Change, record_change
from app.live.pipeline import LivePipeline
from app.live.render import LiveEvent, LiveRenderer
from app.templating import create_environment
from app.workspaces.models import Workspace
from tests.helpers import deliver_inbound
from tests.live_streams import OpenStream, parse_events

LEAD = SampleLead(phone="6281234567890", name="Budi Santoso", conversation_id="conv-1")
OTHER = SampleLead(phone="6285712345678", name="Siti Rahmawati", conversation_id="conv-2")


class CountingRenderer(LiveRenderer):
    """Counts the renders and the lead reads that happen (not the shared, cached ones)."""

    renders = 0
    reads = 0

    async def _render(self, change: Change, tz: str, lang: str) -> LiveEvent | None:
        type(self).renders += 1
        return await super()._render(change, tz, lang)

    async def _read_row(self, change: Change) -> LeadRow | None:
        type(self).reads += 1
        return await super()._read_row(change)


@pytest.fixture
async def live(db: Database) -> AsyncIterator[LivePipeline]:
    pipeline = LivePipeline(db, create_environment(), BoardCache(db), redis_url=None)
    pipeline.fanout.stats_delay = 0.2
    await pipeline.start()
    yield pipeline
    await pipeline.stop()


@pytest.fixture
def ingest(db: Database, live: LivePipeline) -> IngestService:
    return IngestService(db, live.broker, WorkspaceDirectory(db))


def test_parse_events_reads_sse_blocks() -> None:
    text = ": live\r\nretry: 1000\r\n\r\nid: 3\r\nevent: lead\r\ndata: a\r\ndata: b\r\n\r\n"
    assert [(e.event, e.data, e.id) for e in parse_events(text)] == [
        ("comment", "", None),
        ("lead", "a\nb", "3"),
    ]


async def test_live_event_carries_the_rendered_row_and_stats(
    live: LivePipeline, ingest: IngestService, workspace: Workspace
) -> None:
    async with OpenStream(live, workspace) as browser:
        status = await browser.next("status")
        assert status.data == "live"
        await deliver_inbound(ingest, LEAD, "Halo kak <b>bold</b>")
        event = await browser.next("lead")
        stats = await browser.next("stats")
    assert browser.started is not None and browser.started["status"] == 200
    assert browser.events[0].event == "comment"  # the hello, with a short retry
    assert b"retry: 1000" in browser.chunks[0]
    assert event.id is not None and int(event.id) > 0
    assert 'id="lead-' in event.data and "Budi Santoso" in event.data
    assert "&lt;b&gt;bold&lt;/b&gt;" in event.data  # untrusted text is escaped
    assert 'id="board-stats" class="stats" hx-swap-oob="true"' in event.data
    assert 'id="board-stats"' in stats.data and stats.id is None
    assert browser.ended  # leaving ended the response
    assert live.fanout.connection_count == 0


async def test_reconnect_replays_missed_events_once_per_lead(
    live: LivePipeline, ingest: IngestService, workspace: Workspace
) -> None:
    await deliver_inbound(ingest, LEAD, "satu")
    await deliver_inbound(ingest, OTHER, "dua")
    await deliver_inbound(ingest, LEAD, "tiga")
    async with OpenStream(live, workspace, last_id=0) as browser:
        first = await browser.next("lead")
        second = await browser.next("lead")
        assert await browser.quiet("lead")
    assert "Siti Rahmawati" in first.data and "dua" in first.data
    assert "Budi Santoso" in second.data and "tiga" in second.data  # latest state, one per lead
    assert int(second.id or 0) > int(first.id or 0)


async def test_too_many_missed_events_ask_for_a_refresh(
    live: LivePipeline, db: Database, workspace: Workspace
) -> None:
    assert workspace.id is not None
    async with db.write() as session:
        for _ in range(5):
            await record_change(session, workspace.id, LEAD_CHANGED, None)
    async with OpenStream(live, workspace, last_id=0, replay_limit=3) as browser:
        refresh = await browser.next("refresh")
    assert refresh.data == "refresh" and refresh.id == "5"


async def test_each_change_is_rendered_once_per_variant_whatever_the_browser_count(
    db: Database, workspace: Workspace
) -> None:
    CountingRenderer.renders = CountingRenderer.reads = 0
    live = LivePipeline(db, create_environment(), BoardCache(db), redis_url=None)
    live.renderer = CountingRenderer(db, create_environment())
    live.fanout._renderer = live.renderer
    await live.start()
    ingest = IngestService(db, live.broker, WorkspaceDirectory(db))
    try:
        english = [OpenStream(live, workspace) for _ in range(20)]
        indonesian = [OpenStream(live, workspace, lang="id") for _ in range(5)]
        for browser in english + indonesian:
            await browser.__aenter__()
        await deliver_inbound(ingest, LEAD, "satu untuk semua")
        rows = [await browser.next("lead") for browser in english + indonesian]
        for browser in english + indonesian:
            await browser.leave()
    finally:
        await live.stop()
    assert CountingRenderer.renders == 2  # once in English, once in Indonesian
    assert CountingRenderer.reads == 1  # the lead read once for both
    assert len({row.data for row in rows[:20]}) == 1 and len({row.data for row in rows[20:]}) == 1
    assert rows[0].data != rows[20].data  # the Indonesian row is in Indonesian


async def test_a_second_copy_of_an_event_is_sent_once(
    live: LivePipeline, ingest: IngestService, workspace: Workspace
) -> None:
    async with OpenStream(live, workspace) as browser:
        await deliver_inbound(ingest, LEAD, "once")
        first = await browser.next("lead")
        again = Change(int(first.id or 0), workspace.id or 0, LEAD_CHANGED, 1)
        assert live.broker.hub.deliver(again) is False  # e.g. from Redis and from the log tail
        assert await browser.quiet("lead")


async def test_status_says_delayed_while_other_processes_cannot_be_heard(
    live: LivePipeline, workspace: Workspace
) -> None:
    hub = live.broker.hub
    async with OpenStream(live, workspace) as browser:
        assert (await browser.next("status")).data == "live"
        hub.set_receiving(False)  # what the Redis broker does when its subscription drops
        assert (await browser.next("status")).data == "delayed"
        async with OpenStream(live, workspace) as late:  # a browser that opens the board now
            assert (await late.next("status")).data == "delayed"
        hub.set_receiving(True)
        assert (await browser.next("status")).data == "live"


async def test_a_burst_handled_late_says_catching_up_then_live(
    live: LivePipeline, ingest: IngestService, workspace: Workspace
) -> None:
    live.fanout.behind_seconds = 0.0  # every burst counts as late
    async with OpenStream(live, workspace) as browser:
        await browser.next("status")
        await deliver_inbound(ingest, LEAD, "late")
        await browser.next("lead")
        states = [(await browser.next("status")).data, (await browser.next("status")).data]
    assert states == ["catching-up", "live"]
    order = [e.event for e in browser.events if e.event in ("status", "lead")]
    assert order == ["status", "status", "lead", "status"]  # catching-up comes before the row


async def test_server_shutdown_ends_every_stream(live: LivePipeline, workspace: Workspace) -> None:
    browsers = [OpenStream(live, workspace) for _ in range(3)]
    for browser in browsers:
        await browser.__aenter__()
    await browsers[0].next("status")
    live.fanout.close_all()
    await asyncio.sleep(0.05)
    assert all(browser.ended for browser in browsers)
    for browser in browsers:
        await browser.leave()
    assert live.fanout.connection_count == 0


async def test_pings_are_shared_and_keep_the_stream_open(
    live: LivePipeline, workspace: Workspace
) -> None:
    live.fanout.ping_seconds = 0.1
    async with OpenStream(live, workspace) as one, OpenStream(live, workspace) as two:
        await asyncio.sleep(1.2)
    assert b": ping\r\n\r\n" in b"".join(one.chunks)
    assert b": ping\r\n\r\n" in b"".join(two.chunks)


async def test_a_broker_without_browsers_renders_nothing(
    db: Database, workspace: Workspace
) -> None:
    CountingRenderer.renders = 0
    live = LivePipeline(db, create_environment(), BoardCache(db), redis_url=None, broker=Broker())
    live.renderer = CountingRenderer(db, create_environment())
    live.fanout._renderer = live.renderer
    await live.start()
    try:
        await deliver_inbound(
            IngestService(db, live.broker, WorkspaceDirectory(db)), LEAD, "nobody"
        )
        await live.fanout.drain()
    finally:
        await live.stop()
    assert CountingRenderer.renders == 0
