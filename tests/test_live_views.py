"""Views the server keeps current: which they are, and one read per view per burst for all of
its browsers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.db import Database
from app.ingest.samples import SampleLead
from app.ingest.services import IngestService, WorkspaceDirectory
from app.leads.board import BoardQuery
from app.leads.cache import BoardCache
from app.live.outbox import changes_since
from app.live.pipeline import LivePipeline
from app.live.views import LiveView, ViewRenderer, lead_view, live_view, live_view_key
from app.templating import create_environment
from app.workspaces.models import Workspace
from tests.helpers import deliver_inbound
from tests.live_streams import OpenStream


@pytest.mark.parametrize(
    ("params", "kept"),
    [
        ({}, None),  # the plain board: browsers place rows themselves
        ({"status": "new"}, "status=new"),
        ({"sort": "score"}, "sort=score"),
        ({"view": "pipeline"}, "view=pipeline"),
        ({"status": "new", "cursor": "abc"}, None),  # a later page: rows in place only
    ],
)
def test_which_views_the_server_keeps(params: dict[str, str], kept: str | None) -> None:
    assert live_view_key(BoardQuery.from_params(params)) == kept


def test_owner_me_is_a_view_per_person() -> None:
    mine, yours = live_view("owner=me", 1, 50), live_view("owner=me", 2, 50)
    assert mine is not None and yours is not None and mine.key != yours.key
    assert live_view("status=new", 1, 50) == LiveView(
        key="status=new", query=BoardQuery(status="new"), user_id=1
    )
    assert live_view("", 1, 50) is None and live_view(None, 1, 50) is None


class CountingViews(ViewRenderer):
    reads = 0

    async def read(self, workspace_id: int, view: LiveView) -> Any:
        type(self).reads += 1
        return await super().read(workspace_id, view)


def lead(i: int) -> SampleLead:
    return SampleLead(phone=f"62812999{i:05d}", name=f"View Lead {i}", conversation_id=f"w-{i}")


async def deliver(service: IngestService, who: SampleLead) -> None:
    await deliver_inbound(service, who, "hi")


@pytest.fixture
async def counted(db: Database) -> AsyncIterator[tuple[LivePipeline, IngestService]]:
    """A live pipeline whose view reads are counted, and webhooks into it."""
    env = create_environment()
    live = LivePipeline(db, env, BoardCache(db), redis_url=None)
    CountingViews.reads = 0
    live.fanout._view_renderer = CountingViews(db, env, BoardCache(db))
    await live.start()
    yield live, IngestService(db, live.broker, WorkspaceDirectory(db))
    await live.stop()


async def test_one_read_per_view_per_burst_for_all_its_browsers(
    counted: tuple[LivePipeline, IngestService], workspace: Workspace
) -> None:
    live, ingest = counted
    view = live_view("status=new", None, 50)
    assert view is not None and workspace.id is not None
    browsers = []
    try:
        for _ in range(30):
            browser = OpenStream(live, workspace, view=view)
            await browser.__aenter__()
            browsers.append(browser)
        for i in range(5):  # one burst
            await deliver(ingest, lead(i))
        events = [json.loads((await b.next("view")).data) for b in browsers]
    finally:
        for browser in browsers:
            await browser.leave()
    assert CountingViews.reads <= 2  # one per burst (the five may land in one or two)
    last = events[-1]
    assert last["view"] == "status=new" and len(last["ids"]) >= 1
    assert all("View Lead" in e["rows"] for e in events)  # the new leads' rows came along


async def test_a_lead_page_is_read_only_when_its_lead_changed(
    counted: tuple[LivePipeline, IngestService], db: Database, workspace: Workspace
) -> None:
    live, ingest = counted
    await deliver(ingest, lead(1))
    await deliver(ingest, lead(2))
    await live.fanout.drain()
    leads = await db.read(lambda c: changes_since(c, 0, 10))
    first, second = leads[0].contact_id, leads[1].contact_id
    assert first is not None and second is not None
    async with OpenStream(live, workspace, view=lead_view(first, None)) as browser:
        await deliver(ingest, lead(2))  # another lead: this page is not read
        assert await browser.quiet("view", 0.6)
        await deliver(ingest, lead(1))
        event = json.loads((await browser.next("view")).data)
    assert CountingViews.reads == 1
    assert event["lead"] == first and f"/leads/{first}/notes" in event["html"]
    assert 'name="_csrf_token" value=""' in event["html"]  # the page puts in its own
