"""Two real `leadboard serve` processes on one database and one Redis, a board open in Chromium
on each, webhooks to one of them, and Redis killed for 20 s under that traffic.

What must hold: both boards say "delayed" within 5 s, both still show every change (the process
that got no webhook reads them from the change-event log), pages never answer 500, and both are
"live" and current within 2 s of Redis returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from app.ingest.samples import SampleLead
from tests.e2e.support import LiveServer, post_inbound, save_screenshot, sign_in, signed_in_client

Redis = tuple[int, list[subprocess.Popen[bytes]], object]
OUTAGE_SECONDS = 20


def lead(i: int) -> SampleLead:
    return SampleLead(phone=f"62813100{i:05d}", name=f"Outage Lead {i}", conversation_id=f"o-{i}")


@pytest.fixture
async def two_servers(
    tmp_path: Path, restartable_redis: Redis
) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    from tests.conftest import free_port

    url = f"redis://127.0.0.1:{restartable_redis[0]}/0"
    db_path = tmp_path / "shared.sqlite"
    servers = [
        LiveServer(free_port(), db_path, url, tmp_path / f"server-{name}.log", namespace="shared")
        for name in ("a", "b")
    ]
    try:
        for server in servers:  # one after the other: the first migrates and makes the demo
            await server.start()
        yield servers[0], servers[1]
        for server in servers:
            if server.running:
                await server.stop()
    finally:
        for server in servers:
            await server.kill()
            server.close_logs()


async def state(page: Page) -> str:
    return await page.locator("#live-status").get_attribute("data-state") or ""


async def wait_for_state(page: Page, wanted: str, limit: float) -> float:
    """Seconds until the indicator shows `wanted` (fails after `limit`)."""
    started = time.monotonic()
    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", wanted, timeout=limit * 1000
    )
    return time.monotonic() - started


async def shown_leads(page: Page) -> set[str]:
    names = await page.locator("#lead-rows a.lead-name").all_text_contents()
    return {n.strip() for n in names}


async def test_boards_on_two_processes_survive_a_redis_outage(
    two_servers: tuple[LiveServer, LiveServer],
    restartable_redis: Redis,
    context: BrowserContext,
) -> None:
    a, b = two_servers
    _, procs, start_redis = restartable_redis
    board_a, board_b = await context.new_page(), await context.new_page()
    await sign_in(board_a, a)
    await sign_in(board_b, b)
    for board in (board_a, board_b):
        await wait_for_state(board, "live", 5)

    posted: list[str] = []
    page_codes: list[int] = []

    async def traffic(until: float) -> None:
        i = len(posted)
        while time.monotonic() < until:
            i += 1
            await post_inbound(a, lead(i), f"message {i}")
            posted.append(f"Outage Lead {i}")
            await asyncio.sleep(0.7)

    async def page_loads(until: float) -> None:
        clients = [await signed_in_client(server) for server in (a, b)]
        try:
            while time.monotonic() < until:
                for client in clients:
                    with contextlib.suppress(httpx.TransportError):
                        for path in ("/", "/?temperature=hot", "/sync"):
                            page_codes.append((await client.get(path)).status_code)
                await asyncio.sleep(0.5)
        finally:
            for client in clients:
                await client.aclose()

    await traffic(time.monotonic() + 2)
    procs[0].kill()
    procs[0].wait()
    outage_end = time.monotonic() + OUTAGE_SECONDS
    during = asyncio.gather(traffic(outage_end), page_loads(outage_end))
    delayed_after = [await wait_for_state(board, "delayed", 5) for board in (board_a, board_b)]
    await during
    await save_screenshot(board_b, "redis-outage-delayed")
    # Every change is on both boards, seconds late at worst (B heard none of them from Redis).
    for board in (board_a, board_b):
        await expect(board.locator("#lead-rows tr.lead-row")).to_have_count(
            len(posted), timeout=5000
        )
        assert await shown_leads(board) == set(posted)
        assert await state(board) == "delayed"

    start_redis()  # type: ignore[operator]
    back = time.monotonic()
    for board in (board_a, board_b):
        await wait_for_state(board, "live", 2.5)
    live_after = time.monotonic() - back
    await traffic(time.monotonic() + 1)
    for board in (board_a, board_b):
        await expect(board.locator("#lead-rows tr.lead-row")).to_have_count(
            len(posted), timeout=2000
        )
    await save_screenshot(board_b, "redis-outage-recovered")

    assert page_codes and all(code == 200 for code in page_codes), sorted(set(page_codes))
    assert all(seconds < 5 for seconds in delayed_after)
    assert live_after < 2.5
    for server in (a, b):
        assert "Traceback" not in server.log_text()
