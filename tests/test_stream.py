"""The live stream, tested through its generator (an endless HTTP stream hangs a test client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from app.broker import RESYNC, Broker
from app.db import Database
from app.events import LEAD_CHANGED, Change, record_change
from app.ingest.samples import SampleLead, inbound_message, sign
from app.ingest.services import IngestService, WorkspaceDirectory
from app.live import LiveRenderer
from app.stream import LiveStream
from app.templating import create_environment
from app.workspaces.models import Workspace
from tests.conftest import KAPSO_SECRET, PHONE_NUMBER_ID

LEAD = SampleLead(phone="6281234567890", name="Budi Santoso", conversation_id="conv-1")


async def deliver(service: IngestService, lead: SampleLead, text: str) -> None:
    d = sign(
        "whatsapp.message.received", inbound_message(lead, PHONE_NUMBER_ID, text), KAPSO_SECRET
    )
    result = await service.receive_kapso({k.lower(): v for k, v in d.headers.items()}, d.body)
    assert result.outcome.value == "processed"


async def take(events: AsyncIterator, n: int, wait: float = 5.0) -> list:
    out = []
    for _ in range(n):
        out.append(await asyncio.wait_for(anext(events), wait))
    return out


def stream_for(
    db: Database,
    broker: Broker,
    workspace: Workspace,
    sub: object,
    last_id: int | None,
    limit: int = 500,
) -> LiveStream:
    return LiveStream(db, LiveRenderer(db, create_environment()), workspace, sub, last_id, limit)  # type: ignore[arg-type]


async def test_live_event_carries_the_rendered_row_and_stats(
    db: Database, workspace: Workspace
) -> None:
    broker = Broker()
    service = IngestService(db, broker, WorkspaceDirectory(db))
    async with broker.subscribe(workspace.id) as sub:  # type: ignore[arg-type]
        events = stream_for(db, broker, workspace, sub, None).events()
        [hello] = await take(events, 1)
        assert hello.comment == "live" and hello.retry == 1000
        pending = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.05)  # the stream has read the position and waits for the feed
        await deliver(service, LEAD, "Halo kak <b>bold</b>")
        event = await asyncio.wait_for(pending, 5)
    assert event.event == "lead" and int(event.id) > 0
    assert 'id="lead-' in event.data and "Budi Santoso" in event.data
    assert "&lt;b&gt;bold&lt;/b&gt;" in event.data  # untrusted text is escaped
    assert 'id="board-stats" class="stats" hx-swap-oob="true"' in event.data


async def test_reconnect_replays_missed_events_once_per_lead(
    db: Database, workspace: Workspace
) -> None:
    broker = Broker()
    service = IngestService(db, broker, WorkspaceDirectory(db))
    other = SampleLead(phone="6285712345678", name="Siti Rahmawati", conversation_id="conv-2")
    await deliver(service, LEAD, "satu")
    await deliver(service, other, "dua")
    await deliver(service, LEAD, "tiga")
    async with broker.subscribe(workspace.id) as sub:  # type: ignore[arg-type]
        events = stream_for(db, broker, workspace, sub, last_id=0).events()
        _, first, second = await take(events, 3)
    assert "Siti Rahmawati" in first.data and "dua" in first.data
    assert "Budi Santoso" in second.data and "tiga" in second.data  # latest state, one row per lead
    assert int(second.id) > int(first.id)


async def test_too_many_missed_events_ask_for_a_refresh(db: Database, workspace: Workspace) -> None:
    broker = Broker()
    async with db.write() as session:
        for _ in range(5):
            await record_change(session, workspace.id, LEAD_CHANGED, None)  # type: ignore[arg-type]
    async with broker.subscribe(workspace.id) as sub:  # type: ignore[arg-type]
        events = stream_for(db, broker, workspace, sub, last_id=0, limit=3).events()
        _, refresh = await take(events, 2)
    assert refresh.event == "refresh" and refresh.data == "refresh"


async def test_resync_marker_catches_up_from_the_log(db: Database, workspace: Workspace) -> None:
    """What happens when Redis comes back: events published while it was down are in the log."""
    broker = Broker()
    silent = Broker()  # publishes nowhere our stream listens: like a Redis outage
    service = IngestService(db, silent, WorkspaceDirectory(db))
    async with broker.subscribe(workspace.id) as sub:  # type: ignore[arg-type]
        events = stream_for(db, broker, workspace, sub, None).events()
        await take(events, 1)
        pending = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.05)
        await deliver(service, LEAD, "sent while redis was down")
        await asyncio.sleep(0.05)
        assert not pending.done()
        sub.put(RESYNC)
        event = await asyncio.wait_for(pending, 5)
    assert "sent while redis was down" in event.data


async def test_duplicate_delivery_of_an_event_is_sent_once(
    db: Database, workspace: Workspace
) -> None:
    broker = Broker()
    service = IngestService(db, broker, WorkspaceDirectory(db))
    async with broker.subscribe(workspace.id) as sub:  # type: ignore[arg-type]
        stream = stream_for(db, broker, workspace, sub, None)
        events = stream.events()
        await take(events, 1)
        pending = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.05)
        await deliver(service, LEAD, "once")
        first = await asyncio.wait_for(pending, 5)
        again = Change(id=int(first.id), workspace_id=workspace.id, kind="lead", contact_id=1)  # type: ignore[arg-type]
        sub.put(again)
        follow = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.1)
        assert not follow.done()
        follow.cancel()
