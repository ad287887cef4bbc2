"""An app process SIGKILLed under webhook traffic loses no acknowledged delivery, on SQLite and
on PostgreSQL: every delivery answered 2xx is stored exactly once after the restart, and Kapso's
redeliveries of the rest complete them without counting anything twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.db import Database
from app.ingest.samples import SampleLead, inbound_message, sign
from app.leads.models import Message
from app.workspaces.services import DEMO_PHONE_NUMBER_ID, DEMO_WEBHOOK_SECRET
from tests.conftest import free_port
from tests.e2e.support import LiveServer, http_client
from tests.helpers import count

POSTERS = 8


@dataclass
class ServerOn(LiveServer):
    """A LiveServer on any database (LiveServer's own is a SQLite file)."""

    url: str = ""

    @property
    def database_url(self) -> str:
        return self.url


@pytest.fixture
async def server_on(database_url: str, tmp_path: Path, redis_url: str) -> AsyncIterator[ServerOn]:
    live = ServerOn(free_port(), tmp_path / "unused.sqlite", redis_url, tmp_path / "s.log")
    live.url = database_url
    await live.start()
    try:
        yield live
    finally:
        await live.kill()
        live.close_logs()


async def test_sigkill_under_traffic_loses_no_acknowledged_delivery(
    server_on: ServerOn,
) -> None:
    server = server_on
    deliveries = [
        sign(
            "whatsapp.message.received",
            inbound_message(
                SampleLead(phone=f"62815500{i:05d}", name=f"Kill {i}", conversation_id=f"k-{i}"),
                DEMO_PHONE_NUMBER_ID,
                f"pesan {i}",
            ),
            DEMO_WEBHOOK_SECRET,
        )
        for i in range(4_000)
    ]
    acknowledged: set[str] = set()
    refused: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(deliveries)):
        queue.put_nowait(i)

    async def post(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            d = deliveries[queue.get_nowait()]
            try:
                response = await client.post("/webhooks/kapso", content=d.body, headers=d.headers)
            except httpx.TransportError:
                continue  # no answer: not acknowledged, Kapso retries it
            if response.status_code == 200:
                acknowledged.add(d.wamid)
            else:
                refused.append(f"{response.status_code} {response.text[:80]}")

    async with http_client(server.base_url, timeout=5) as client:
        posters = [asyncio.ensure_future(post(client)) for _ in range(POSTERS)]
        await asyncio.sleep(1.5)
        assert len(acknowledged) > 50, "too little traffic before the kill"
        await server.kill()  # SIGKILL mid-traffic
        killed_at = len(acknowledged)
        await asyncio.gather(*posters)
    assert refused == [], refused[:5]

    started = time.monotonic()
    await server.start()
    took = time.monotonic() - started
    print(f"\n{killed_at} acknowledged before the kill; answering {took:.2f} s after start")
    db = Database(server.database_url)
    try:
        stored = {
            wamid
            for wamid in acknowledged
            if await count(db, Message, Message.wamid == wamid) == 1  # type: ignore[arg-type]
        }
        assert stored == acknowledged, f"{len(acknowledged - stored)} acknowledged, not stored"
        # Kapso redelivers what got no answer (and some that did): each is stored once.
        async with http_client(server.base_url, timeout=10) as client:
            for d in deliveries[: killed_at + 200]:
                response = await client.post("/webhooks/kapso", content=d.body, headers=d.headers)
                assert response.status_code == 200, response.text
        for d in deliveries[: killed_at + 200]:
            assert await count(db, Message, Message.wamid == d.wamid) == 1  # type: ignore[arg-type]
    finally:
        await db.dispose()
