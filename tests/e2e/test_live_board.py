"""The live board in a real browser against a real `leadboard serve` process.

Every test drives Chromium through Playwright's async API, posts signed Kapso webhooks with httpx
and waits on the DOM with Playwright's auto-retrying `expect` (never sleeps).
"""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser, Locator, Page, Request, expect

from app.ingest.samples import SampleLead
from tests.e2e.support import LiveServer, post_inbound, save_screenshot, server_html, sign_in

pytestmark = pytest.mark.e2e

LIVE_WAIT = 10_000  # ms for a live update to reach the page
RECONNECT_WAIT = 15_000  # ms for a reconnecting stream to catch up
ROW_ID = re.compile(r"^lead-\d+$")
LEAD_ROWS = "tr[id^='lead-']"  # every lead row on the page, wherever htmx put it


def make_lead(name: str, seed: int) -> SampleLead:
    """A lead with a valid Indonesian mobile number and the given WhatsApp profile name."""
    sample = SampleLead.random(random.Random(seed))
    return SampleLead(phone=sample.phone, name=name, conversation_id=str(uuid.uuid4()))


def row_for(page: Page, name: str) -> Locator:
    return page.locator(LEAD_ROWS, has_text=name)


async def mark_page(page: Page) -> None:
    """Leave a marker in the window: it survives live updates and disappears on any reload."""
    await page.evaluate("window.__e2eMarker = 'no-reload'")


async def assert_not_reloaded(page: Page) -> None:
    assert await page.evaluate("window.__e2eMarker") == "no-reload", "the page was reloaded"


async def row_ids(page: Page) -> list[str]:
    ids: list[str] = await page.locator(LEAD_ROWS).evaluate_all("rows => rows.map(r => r.id)")
    return ids


async def assert_rows_in_table(page: Page) -> None:
    """Every lead row sits in tbody#lead-rows (an inherited hx-target once put live rows in the
    surrounding <section>, outside the table)."""
    stray: list[str] = await page.locator(LEAD_ROWS).evaluate_all(
        "rows => rows.filter(r => r.parentElement.id !== 'lead-rows')"
        ".map(r => r.id + ' in ' + r.parentElement.tagName + '#' + r.parentElement.id)"
    )
    assert not stray, f"lead rows outside tbody#lead-rows: {stray}"


async def assert_no_duplicate_ids(page: Page) -> None:
    ids: list[str] = await page.evaluate(
        "Array.from(document.querySelectorAll('[id]'), el => el.id)"
    )
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate ids in the DOM: {duplicates}"


async def resume_position(req: Request) -> int | None:
    """The event id an /events request resumes after: Last-Event-ID, else ?after=."""
    header = (await req.all_headers()).get("last-event-id")
    after = parse_qs(urlsplit(req.url).query).get("after", [None])[0]
    raw = header or after
    return int(raw) if raw and raw.isdigit() else None


async def open_live_board(page: Page, server: LiveServer) -> None:
    await sign_in(page, server)
    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", "live", timeout=LIVE_WAIT
    )
    await mark_page(page)


async def test_inbound_message_appears_without_reload(
    server: LiveServer, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    await sign_in(page, server)
    await expect(page.locator("#empty-state")).to_be_visible()
    await expect(page.locator(LEAD_ROWS)).to_have_count(0)
    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", "live", timeout=LIVE_WAIT
    )
    await mark_page(page)

    lead = make_lead("Budi Santoso", seed=1)
    text = "Halo kak, unit tipe 36 masih ada?"
    await post_inbound(server, lead, text)

    row = row_for(page, lead.name)
    await expect(row).to_have_count(1, timeout=LIVE_WAIT)
    await expect(row).to_have_id(ROW_ID)
    await expect(row.locator(".lead-name")).to_have_text(lead.name)
    await expect(row.locator(".preview")).to_have_text(text)
    await expect(page.locator("#empty-state")).to_have_count(0)
    status = page.locator("#live-status")
    await expect(status).to_have_attribute("data-state", "live")
    await expect(status).to_have_text(re.compile(r"^\s*live\s*$", re.IGNORECASE))
    await expect(page.locator("#offline-banner")).to_be_hidden()
    await assert_not_reloaded(page)

    # The live row is the row the server renders for that lead.
    row_id = await row.get_attribute("id")
    assert f'id="{row_id}"' in await server_html(server)
    assert page_errors == []
    await save_screenshot(page, request.node.name)
    await assert_rows_in_table(page)


async def test_update_moves_row_to_top_without_duplicates(
    server: LiveServer, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    await open_live_board(page, server)
    lead_a = make_lead("Siti Rahmawati", seed=2)
    lead_b = make_lead("Agus Wijaya", seed=3)
    # Kapso timestamps have one-second resolution and ties sort by lead id: space the messages
    # out so "latest activity first" has one right answer.
    now = datetime.now(UTC)

    await post_inbound(server, lead_a, "DP-nya berapa ya kak?", at=now - timedelta(seconds=3))
    row_a = row_for(page, lead_a.name)
    await expect(row_a).to_have_count(1, timeout=LIVE_WAIT)
    id_a = await row_a.get_attribute("id")

    await post_inbound(server, lead_b, "Lokasinya dekat KRL?", at=now - timedelta(seconds=2))
    row_b = row_for(page, lead_b.name)
    await expect(row_b).to_have_count(1, timeout=LIVE_WAIT)
    id_b = await row_b.get_attribute("id")
    assert id_a and id_b and id_a != id_b
    rows = page.locator(LEAD_ROWS)
    await expect(rows.first).to_have_id(id_b)

    latest = "Bisa survei hari Sabtu jam 10?"
    await post_inbound(server, lead_a, latest, at=now - timedelta(seconds=1))
    await expect(rows.first).to_have_id(id_a, timeout=LIVE_WAIT)
    await expect(row_a.locator(".preview")).to_have_text(latest)
    await expect(rows).to_have_count(2)
    assert await row_ids(page) == [id_a, id_b]
    await assert_no_duplicate_ids(page)
    await assert_not_reloaded(page)

    # Same order as a fresh server render.
    html = await server_html(server)
    assert re.findall(r'<tr id="(lead-\d+)"', html) == [id_a, id_b]
    assert page_errors == []
    await save_screenshot(page, request.node.name)
    await assert_rows_in_table(page)


async def test_reconnect_replays_missed_events(
    server: LiveServer, page: Page, request: pytest.FixtureRequest
) -> None:
    requests: list[Request] = []
    page.on("request", lambda req: requests.append(req))
    await open_live_board(page, server)
    lead_a = make_lead("Dewi Lestari", seed=4)
    await post_inbound(server, lead_a, "Sertifikatnya SHM atau HGB?")
    row_a = row_for(page, lead_a.name)
    await expect(row_a).to_have_count(1, timeout=LIVE_WAIT)

    # The server goes away: the page says so.
    await server.stop()
    status = page.locator("#live-status")
    banner = page.locator("#offline-banner")
    await expect(status).to_have_attribute("data-state", "down", timeout=LIVE_WAIT)
    await expect(banner).to_be_visible()

    # The browser loses its network too, so the server can come back and take a message the
    # browser cannot see: a missed event, deterministically.
    await page.context.set_offline(True)
    await server.restart()
    lead_b = make_lead("Rudi Pratama", seed=5)
    missed = "Akad kreditnya bisa minggu depan?"
    await post_inbound(server, lead_b, missed)
    assert lead_b.name in await server_html(server)
    await expect(status).to_have_attribute("data-state", "down")
    await expect(row_for(page, lead_b.name)).to_have_count(0)

    # Back online: the stream reconnects and replays what it missed, without a reload.
    online_from = len(requests)
    await page.context.set_offline(False)
    row_b = row_for(page, lead_b.name)
    await expect(row_b).to_have_count(1, timeout=RECONNECT_WAIT)
    await expect(row_b.locator(".preview")).to_have_text(missed)
    await expect(status).to_have_attribute("data-state", "live", timeout=RECONNECT_WAIT)
    await expect(banner).to_be_hidden()
    await expect(page.locator(LEAD_ROWS)).to_have_count(2)
    assert await row_ids(page) == [await row_b.get_attribute("id"), await row_a.get_attribute("id")]
    await assert_no_duplicate_ids(page)
    await assert_not_reloaded(page)

    # The row came from the stream's replay: the reconnect named the last event the page had
    # seen (Last-Event-ID on a native reconnect, ?after= on htmx's own), and the board was not
    # fetched again (no sse:refresh, no reload).
    after_online = requests[online_from:]
    assert not [r.url for r in after_online if urlsplit(r.url).path == "/"], "board re-fetched"
    positions = [await resume_position(r) for r in after_online if "/events" in r.url]
    assert positions, "the page never reconnected to /events"
    assert positions[-1] is not None and positions[-1] > 0, positions

    # And the live feed works again after the replay.
    lead_c = make_lead("Maya Kusuma", seed=6)
    await post_inbound(server, lead_c, "Masih ada promo free biaya KPR?")
    await expect(row_for(page, lead_c.name)).to_have_count(1, timeout=LIVE_WAIT)
    await expect(page.locator(LEAD_ROWS).first).to_contain_text(lead_c.name)
    await assert_no_duplicate_ids(page)
    await save_screenshot(page, request.node.name)
    await assert_rows_in_table(page)


async def test_sigterm_with_connected_browser_exits_promptly(
    server: LiveServer, page: Page, browser: Browser, request: pytest.FixtureRequest
) -> None:
    await open_live_board(page, server)
    # A second browser on the stream as well: shutdown must not wait for either.
    other = await browser.new_context()
    try:
        second = await other.new_page()
        await open_live_board(second, server)
        elapsed = await server.stop(limit=10)
    finally:
        await other.close()
    request.node.user_properties.append(("sigterm_exit_seconds", round(elapsed, 2)))
    assert elapsed < 5, f"server took {elapsed:.2f}s to exit after SIGTERM with open streams"
    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", "down", timeout=LIVE_WAIT
    )
    await expect(page.locator("#offline-banner")).to_be_visible()
    log = server.log_text()
    assert "Traceback" not in log, log
    await save_screenshot(page, request.node.name)


async def test_untrusted_text_is_shown_literally(
    server: LiveServer, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    await open_live_board(page, server)
    name = '<img src=x onerror="window.__xss=1">'
    body = "<script>window.__xss=2</script>"
    lead = make_lead(name, seed=7)
    await post_inbound(server, lead, body)

    row = row_for(page, name)
    await expect(row).to_have_count(1, timeout=LIVE_WAIT)
    await expect(row.locator(".lead-name")).to_have_text(name)
    await expect(row.locator(".preview")).to_have_text(body)
    await expect(row.locator("img, script")).to_have_count(0)
    assert await page.evaluate("typeof window.__xss") == "undefined"
    await assert_rows_in_table(page)

    # The server-rendered page is just as inert.
    await page.reload()
    row = row_for(page, name)
    await expect(row.locator(".lead-name")).to_have_text(name)
    await expect(row.locator(".preview")).to_have_text(body)
    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", "live", timeout=LIVE_WAIT
    )
    await expect(row.locator("img, script")).to_have_count(0)
    assert await page.evaluate("typeof window.__xss") == "undefined"
    assert page_errors == []
    await save_screenshot(page, request.node.name)


async def test_board_renders_without_javascript(
    server: LiveServer, browser: Browser, request: pytest.FixtureRequest
) -> None:
    now = datetime.now(UTC)
    older = make_lead("Joko Nugroho", seed=8)
    newer = make_lead("Putri Hidayat", seed=9)
    await post_inbound(server, older, "Brosurnya sudah saya terima", at=now - timedelta(seconds=2))
    await post_inbound(server, newer, "Kalau cash keras ada diskon?", at=now - timedelta(seconds=1))

    context = await browser.new_context(java_script_enabled=False)
    try:
        page = await context.new_page()
        await sign_in(page, server)  # a plain form post: no script needed to sign in either
        rows = page.locator("#lead-rows > tr")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0).locator(".lead-name")).to_have_text(newer.name)
        await expect(rows.nth(1).locator(".lead-name")).to_have_text(older.name)
        await expect(rows.nth(0).locator(".preview")).to_have_text("Kalau cash keras ada diskon?")
        await expect(page.locator("#empty-state")).to_have_count(0)
        await expect(page.locator("#offline-banner")).to_be_hidden()
        # Nothing ran: the indicator keeps its server-rendered state.
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "connecting")
        await save_screenshot(page, request.node.name)
    finally:
        await context.close()
