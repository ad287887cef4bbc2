"""What a sales team does on the board, in a real browser against one real `leadboard serve`.

One server per module (`module_server`), filled once through signed Kapso webhooks and Sarah's
state API: 30 leads across every status, temperatures and scores. Each test works on leads it
creates itself or only reads the seeded ones, so the tests do not depend on each other's order.
Browsers reuse one signed-in session cookie (the sign-in form itself is covered elsewhere and is
rate limited per minute). Every wait is Playwright's auto-retrying `expect`, never a sleep.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from app.ingest.samples import FIRST_NAMES, LAST_NAMES, SampleLead
from tests.e2e.support import (
    LiveServer,
    lead_id_for,
    post_inbound,
    post_outbound,
    post_sarah,
    save_screenshot,
    session_cookies,
)

pytestmark = pytest.mark.e2e

LIVE_WAIT = 10_000  # ms for a live update to reach the page
LEAD_ROWS = "#lead-rows > tr.lead-row"
SEEDS = 30
PHONE_LEAD = 7  # the seed whose number is +62 812-3456-7890: found by typing "0812 3456"
PHONE_DIGITS = "6281234567890"


@dataclass(frozen=True)
class Seed:
    lead: SampleLead
    status: str
    temperature: str | None
    score: int | None


@dataclass(frozen=True)
class Board:
    server: LiveServer
    cookies: list[dict[str, Any]]
    seeds: list[Seed]
    user_name: str


def new_lead(name: str, phone: str) -> SampleLead:
    return SampleLead(phone=phone, name=name, conversation_id=str(uuid.uuid4()))


def unique_phone(tag: int) -> str:
    """A valid Indonesian mobile number (0878...) no seed uses."""
    return f"62878{tag:08d}"


# Sarah's view of seed i: (bot state, the status it implies, temperature, score); None: no post.
def sarah_plan(i: int) -> tuple[str, str, str, int] | None:
    kind = i % 5
    if kind == 0:
        return "qualifying", "qualified", "warm" if i % 10 == 0 else "hot", 50 + i
    if kind == 1:
        return "handoff", "contacted", "lukewarm", 30 + i
    if kind == 2:
        return "collect_name", "new", "cold", 5 + i
    if kind == 3:
        return "completed", "converted", "warm", 70 + i
    return None


def seed_leads() -> list[Seed]:
    seeds = []
    for i in range(SEEDS):
        name = f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[(i * 3) % len(LAST_NAMES)]}"
        phone = PHONE_DIGITS if i == PHONE_LEAD else f"62857{10_000_000 + i * 1_234_567:08d}"
        plan = sarah_plan(i)
        seeds.append(
            Seed(
                lead=new_lead(name, phone),
                status=plan[1] if plan else "new",
                temperature=plan[2] if plan else None,
                score=plan[3] if plan else None,
            )
        )
    assert len({s.lead.name for s in seeds}) == SEEDS
    assert sum("8123456" in s.lead.phone for s in seeds) == 1
    return seeds


@pytest.fixture(scope="module")
async def board(module_server: LiveServer) -> AsyncIterator[Board]:
    """The module's server with 30 leads: webhooks first, then Sarah's state for most of them."""
    seeds = seed_leads()
    now = datetime.now(UTC)
    gate = asyncio.Semaphore(6)

    async def fill(i: int, seed: Seed) -> None:
        async with gate:
            at = now - timedelta(minutes=SEEDS - i)
            await post_inbound(module_server, seed.lead, f"Halo kak, saya {seed.lead.name}", at=at)
            plan = sarah_plan(i)
            if plan is not None:
                state, _, temperature, score = plan
                await post_sarah(
                    module_server,
                    seed.lead.phone,
                    state=state,
                    score=score,
                    temperature=temperature,
                )

    await asyncio.gather(*(fill(i, s) for i, s in enumerate(seeds)))
    cookies = await session_cookies(module_server)
    yield Board(server=module_server, cookies=cookies, seeds=seeds, user_name="Demo Admin")


async def open_board(page: Page, board: Board, path: str = "/") -> None:
    """The board (or `path`) signed in as the demo admin, its live stream connected."""
    await page.context.add_cookies(board.cookies)  # type: ignore[arg-type]
    await page.goto(board.server.base_url + path)
    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", "live", timeout=LIVE_WAIT
    )
    await page.evaluate("window.__e2eMarker = 'no-reload'")


async def assert_not_reloaded(page: Page) -> None:
    assert await page.evaluate("window.__e2eMarker") == "no-reload", "the page was reloaded"


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


async def row_ids(page: Page) -> list[str]:
    ids: list[str] = await page.locator(LEAD_ROWS).evaluate_all("rows => rows.map(r => r.id)")
    return ids


async def row_facts(page: Page) -> list[dict[str, Any]]:
    """What each row shows: id, name, status pill, temperature badge, score."""
    facts: list[dict[str, Any]] = await page.locator(LEAD_ROWS).evaluate_all(
        """rows => rows.map(r => ({
            id: r.id,
            name: r.querySelector('.lead-name').textContent.trim(),
            status: r.querySelector('.col-status .pill').className.match(/status-(\\w+)/)[1],
            temperature: (r.querySelector('.col-temp .badge[class*=temp-badge-]') || {}).className
                ? r.querySelector('.col-temp .badge[class*=temp-badge-]').className
                    .match(/temp-badge-(\\w+)/)[1]
                : null,
            score: r.querySelector('.score-num')
                ? parseInt(r.querySelector('.score-num').textContent, 10) : null,
        }))"""
    )
    return facts


def row_for(page: Page, name: str) -> Locator:
    return page.locator(LEAD_ROWS, has_text=name)


def column(page: Page, status: str) -> Locator:
    return page.locator(f"section.pipeline-col[data-status='{status}']")


# ---- filters, search, sort, pages ---------------------------------------------------------------
async def test_filters_change_rows_and_url_and_back_restores(
    board: Board, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    await open_board(page, board)
    everything = await row_facts(page)
    assert len(everything) >= SEEDS
    qualified = [r["id"] for r in everything if r["status"] == "qualified"]
    qualified_warm = [
        r["id"] for r in everything if r["status"] == "qualified" and r["temperature"] == "warm"
    ]
    assert 0 < len(qualified_warm) < len(qualified) < len(everything)

    status = page.locator("#filters select[name=status]")
    temperature = page.locator("#filters select[name=temperature]")
    await status.select_option("qualified")
    await expect(page).to_have_url(re.compile(r"[?&]status=qualified"))
    await expect(page.locator(LEAD_ROWS)).to_have_count(len(qualified))
    assert sorted(await row_ids(page)) == sorted(qualified)
    assert {r["status"] for r in await row_facts(page)} == {"qualified"}

    await temperature.select_option("warm")
    await expect(page).to_have_url(re.compile(r"[?&]temperature=warm"))
    await expect(page.locator(LEAD_ROWS)).to_have_count(len(qualified_warm))
    assert query_of(page)["status"] == ["qualified"]
    assert sorted(await row_ids(page)) == sorted(qualified_warm)
    await assert_not_reloaded(page)  # htmx swapped the view in place

    # Back: the status-only view, rows and selects as they were.
    await page.go_back()
    await expect(page).not_to_have_url(re.compile(r"temperature=warm"))
    await expect(page).to_have_url(re.compile(r"[?&]status=qualified"))
    await expect(page.locator(LEAD_ROWS)).to_have_count(len(qualified))
    await expect(page.locator("#filters select[name=status]")).to_have_value("qualified")
    await expect(page.locator("#filters select[name=temperature]")).to_have_value("")
    assert sorted(await row_ids(page)) == sorted(qualified)

    # Back again: the whole board.
    await page.go_back()
    await expect(page).to_have_url(board.server.base_url + "/")
    await expect(page.locator(LEAD_ROWS)).to_have_count(len(everything))
    await expect(page.locator("#filters select[name=status]")).to_have_value("")
    assert page_errors == []
    await save_screenshot(page, request.node.name)


async def test_search_by_name_then_by_phone(
    board: Board, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    await open_board(page, board)
    search = page.locator("#search")
    target = board.seeds[25].lead  # "Dewi Siregar"; seed 3 is another Dewi
    first_name = target.name.split()[0]
    same_first = [s.lead.name for s in board.seeds if first_name.lower() in s.lead.name.lower()]
    assert len(same_first) == 2, same_first

    await search.fill(first_name)
    await expect(page).to_have_url(re.compile(rf"[?&]q={first_name}"))
    await expect(page.locator(LEAD_ROWS)).to_have_count(2)
    await search.fill(target.name)
    await expect(page.locator(LEAD_ROWS)).to_have_count(1)
    await expect(page.locator(f"{LEAD_ROWS} .lead-name")).to_have_text(target.name)

    # A phone typed the way people write it: leading 0, spaces.
    phone_lead = board.seeds[PHONE_LEAD].lead
    await search.fill("0812 3456")
    await expect(page).to_have_url(re.compile(r"[?&]q=0812(\+|%20)3456"))
    await expect(page.locator(LEAD_ROWS)).to_have_count(1)
    row = page.locator(LEAD_ROWS)
    await expect(row.locator(".lead-name")).to_have_text(phone_lead.name)
    await expect(row.locator(".lead-phone")).to_have_text("+62 812-3456-7890")
    await assert_not_reloaded(page)
    assert page_errors == []
    await save_screenshot(page, request.node.name)


async def test_sort_by_score_puts_highest_first(
    board: Board, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    await open_board(page, board)
    best = max((s for s in board.seeds if s.score is not None), key=lambda s: s.score or 0)
    await page.locator("#filters select[name=sort]").select_option("score")
    await expect(page).to_have_url(re.compile(r"[?&]sort=score"))
    await expect(page.locator("#board-view")).to_have_attribute("data-sort", "score")
    await expect(page.locator(LEAD_ROWS).first.locator(".lead-name")).to_have_text(best.lead.name)
    scores = [r["score"] for r in await row_facts(page)]
    scored = [s for s in scores if s is not None]
    assert scored == sorted(scored, reverse=True), scores
    assert scored[0] == best.score
    # Unscored leads come after every scored one.
    assert scores[: len(scored)] == scored, scores
    assert page_errors == []
    await save_screenshot(page, request.node.name)


async def test_paginate_25_rows_next_and_first_page(
    board: Board, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    await open_board(page, board)
    await expect(page.locator(".pager a[rel=next]")).to_have_count(0)  # all of them fit in 50
    everything = await row_ids(page)
    assert 25 < len(everything) <= 50

    await page.locator("#filters select[name=size]").select_option("25")
    await expect(page).to_have_url(re.compile(r"[?&]size=25"))
    await expect(page.locator(LEAD_ROWS)).to_have_count(25)
    first_page = await row_ids(page)
    assert first_page == everything[:25]

    await page.get_by_role("link", name=re.compile("Next page")).click()
    await expect(page).to_have_url(re.compile(r"[?&]cursor="))
    await expect(page.locator(LEAD_ROWS)).to_have_count(len(everything) - 25)
    assert await row_ids(page) == everything[25:]
    assert query_of(page)["size"] == ["25"]
    await expect(page.locator(".pager a[rel=next]")).to_have_count(0)
    await save_screenshot(page, f"{request.node.name}_page2")

    await page.get_by_role("link", name=re.compile("First page")).click()
    await expect(page).not_to_have_url(re.compile(r"cursor="))
    await expect(page.locator(LEAD_ROWS)).to_have_count(25)
    assert await row_ids(page) == first_page
    await assert_not_reloaded(page)
    assert page_errors == []
    await save_screenshot(page, request.node.name)


# ---- pipeline -----------------------------------------------------------------------------------
async def test_pipeline_drag_and_drop_and_card_select(
    board: Board, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    server = board.server
    lead = new_lead("Gita Pramesti", unique_phone(101))
    await post_inbound(server, lead, "Kak, ruko yang di Cikarang masih ada?")
    lead_id = await lead_id_for(server, lead.phone)
    card = f"#card-{lead_id}"

    await open_board(page, board)
    await page.locator("nav.view-switch").get_by_role("link", name="Pipeline").click()
    await expect(page).to_have_url(re.compile(r"[?&]view=pipeline"))
    await expect(column(page, "new").locator(card)).to_have_count(1)

    def status_post(response: Any) -> bool:
        return response.url.endswith(f"/leads/{lead_id}/status") and (
            response.request.method == "POST"
        )

    async with page.expect_response(status_post) as posted:
        # Drop on the column's header: always on screen, however long the column is.
        await page.drag_and_drop(card, "section.pipeline-col[data-status='qualified'] header")
    assert (await posted.value).ok
    await expect(column(page, "qualified").locator(card)).to_have_count(1)
    await expect(column(page, "new").locator(card)).to_have_count(0)

    # The move was saved: after a reload the card is still in its new column...
    await page.reload()
    await expect(page).to_have_url(re.compile(r"[?&]view=pipeline"))
    await expect(column(page, "qualified").locator(card)).to_have_count(1)
    await expect(column(page, "new").locator(card)).to_have_count(0)
    await expect(page.locator(f"{card} select[name=status]")).to_have_value("qualified")
    await save_screenshot(page, f"{request.node.name}_dragged")

    # ... and the lead's own page says so, with the change in its timeline.
    detail = await page.context.new_page()
    await detail.goto(f"{server.base_url}/leads/{lead_id}")
    await expect(detail.locator(".lead-header .pill")).to_have_class(
        re.compile(r"\bstatus-qualified\b")
    )
    await expect(detail.locator("#status-select")).to_have_value("qualified")
    change = detail.locator("#timeline li.tl-change").first
    await expect(change.locator(".old")).to_have_text("new")
    await expect(change.locator(".new")).to_have_text("qualified")
    await detail.close()

    # The card's own select (the keyboard way) moves it as well.
    async with page.expect_response(status_post) as posted:
        await page.locator(f"{card} select[name=status]").select_option("contacted")
    assert (await posted.value).ok
    await page.reload()
    await expect(column(page, "contacted").locator(card)).to_have_count(1)
    await expect(column(page, "qualified").locator(card)).to_have_count(0)
    assert page_errors == []
    await save_screenshot(page, request.node.name)


async def test_pipeline_card_select_moves_card_live(
    board: Board, page: Page, request: pytest.FixtureRequest
) -> None:
    lead = new_lead("Hana Wibisono", unique_phone(102))
    await post_inbound(board.server, lead, "Boleh minta pricelist?")
    lead_id = await lead_id_for(board.server, lead.phone)
    card = f"#card-{lead_id}"
    await open_board(page, board, "/?view=pipeline")
    await expect(column(page, "new").locator(card)).to_have_count(1)

    await page.locator(f"{card} select[name=status]").select_option("contacted")
    await save_screenshot(page, request.node.name)
    await expect(column(page, "contacted").locator(card)).to_have_count(1, timeout=4_000)
    await expect(column(page, "new").locator(card)).to_have_count(0)
    await assert_not_reloaded(page)


# ---- the lead page ------------------------------------------------------------------------------
async def test_lead_page_from_keyboard_timeline_note_status_claim_archive(
    board: Board, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    server = board.server
    now = datetime.now(UTC)
    older = new_lead("Kirana Putri", unique_phone(201))
    newer = new_lead("Kirana Sari", unique_phone(202))
    inbound = "Halo, harga ruko 2 lantai berapa?"
    outbound = "Siap kak, mulai 850 juta, bisa KPR."
    await post_inbound(server, older, inbound, at=now - timedelta(seconds=8))
    await post_outbound(server, older, outbound, at=now - timedelta(seconds=7))
    await post_inbound(server, newer, "Ada brosurnya kak?", at=now - timedelta(seconds=5))
    older_id = await lead_id_for(server, older.phone)

    # The board narrowed to the two Kiranas: newest first, so j, j selects the older one.
    await open_board(page, board, "/?q=kirana")
    rows = page.locator(LEAD_ROWS)
    await expect(rows).to_have_count(2)
    await expect(rows.nth(1).locator(".lead-name")).to_have_text(older.name)
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    await expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{server.base_url}/leads/{older_id}")
    await expect(page.locator(".lead-title h1")).to_have_text(older.name)
    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", "live", timeout=LIVE_WAIT
    )
    await page.evaluate("window.__e2eMarker = 'no-reload'")

    timeline = page.locator("#timeline")
    await expect(timeline.locator("li.tl-inbound .body")).to_have_text(inbound)
    await expect(timeline.locator("li.tl-outbound .body")).to_have_text(outbound)

    # A note appears without a reload, and the box is emptied.
    note = "Sudah ditelepon, minta brosur lewat email"
    await page.locator("#note-body").fill(note)
    await page.get_by_role("button", name="Add note").click()
    await expect(timeline.locator("li.tl-note .body")).to_have_text(note, timeout=LIVE_WAIT)
    await expect(timeline.locator("li.tl-note .who")).to_contain_text(board.user_name)
    await expect(page.locator("#note-body")).to_have_value("")

    # A status change shows in the header and in the timeline.
    header_pill = page.locator(".lead-header .pill")
    await page.locator("#status-select").select_option("qualified")
    await page.get_by_role("button", name="Set status").click()
    await expect(header_pill).to_have_class(re.compile(r"\bstatus-qualified\b"), timeout=LIVE_WAIT)
    change = timeline.locator("li.tl-change", has=page.locator(".new", has_text="qualified"))
    await expect(change).to_have_count(1)
    await expect(change.locator(".old")).to_have_text("new")
    await expect(change.locator(".who")).to_contain_text(board.user_name)

    # Claim: the owner is shown and the button goes away.
    await page.locator("#claim").click()
    owner = page.locator(".lead-details div", has=page.locator("dt", has_text="Owner"))
    await expect(owner.locator("dd")).to_have_text(board.user_name, timeout=LIVE_WAIT)
    await expect(page.locator("#claim")).to_have_count(0)
    await expect(page.locator(".lead-actions select[name=owner] option:checked")).to_have_text(
        board.user_name
    )

    # Archive.
    await page.get_by_role("button", name="Archive").click()
    await expect(header_pill).to_have_class(re.compile(r"\bstatus-archived\b"), timeout=LIVE_WAIT)
    await expect(page.get_by_role("button", name="Archive")).to_have_count(0)
    archived = timeline.locator("li.tl-change", has=page.locator(".new", has_text="archived"))
    await expect(archived.locator(".old")).to_have_text("qualified")
    await assert_not_reloaded(page)

    # All of it was saved.
    await page.reload()
    await expect(header_pill).to_have_class(re.compile(r"\bstatus-archived\b"))
    await expect(timeline.locator("li.tl-note .body")).to_have_text(note)
    await expect(owner.locator("dd")).to_have_text(board.user_name)
    assert page_errors == []
    await save_screenshot(page, request.node.name)


# ---- hot-lead alert -----------------------------------------------------------------------------
async def test_hot_alert_toast_and_claim_clears_highlight(
    board: Board, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    server = board.server
    lead = new_lead("Citra Maharani", unique_phone(301))
    await post_inbound(server, lead, "Kak, saya mau DP minggu ini, bisa?")
    lead_id = await lead_id_for(server, lead.phone)

    await open_board(page, board)
    row = page.locator(f"#lead-{lead_id}")
    await expect(row).to_have_count(1)
    await expect(row).not_to_have_class(re.compile(r"\bis-hot\b"))

    await post_sarah(server, lead.phone, state="close_attempt", score=92, temperature="hot")
    toast = page.locator("#toasts .toast", has_text=lead.name)
    await expect(toast).to_be_visible(timeout=LIVE_WAIT)
    await expect(toast).to_contain_text("just turned hot")
    await expect(toast.locator("a")).to_have_attribute("href", f"/leads/{lead_id}")
    await expect(row).to_have_class(re.compile(r"\bis-hot\b"), timeout=LIVE_WAIT)
    await expect(row.locator(".hot-since")).to_contain_text("hot for")
    await expect(row.locator(".temp-badge-hot")).to_have_count(1)
    await assert_not_reloaded(page)
    await save_screenshot(page, f"{request.node.name}_hot")

    # Someone claims it on the lead's page, in another tab: the open board stops alerting.
    other = await page.context.new_page()
    await other.goto(f"{server.base_url}/leads/{lead_id}")
    await expect(other.locator(".lead-header")).to_have_class(re.compile(r"\bis-hot\b"))
    await other.locator("#claim").click()
    await expect(other.locator("#claim")).to_have_count(0, timeout=LIVE_WAIT)

    await expect(row).not_to_have_class(re.compile(r"\bis-hot\b"), timeout=LIVE_WAIT)
    await expect(row.locator(".hot-since")).to_have_count(0)
    await expect(row.locator(".owner")).to_have_text(board.user_name)
    await expect(row.locator(".temp-badge-hot")).to_have_count(1)  # still hot, just handled
    await assert_not_reloaded(page)
    await other.close()
    assert page_errors == []
    await save_screenshot(page, request.node.name)


# ---- CSV export ---------------------------------------------------------------------------------
async def download_csv(page: Page) -> list[dict[str, str]]:
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Export CSV").click()
    download = await info.value
    assert download.suggested_filename.endswith(".csv"), download.suggested_filename
    path = await download.path()
    text = path.read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


async def test_export_csv_matches_filtered_view(
    board: Board, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    # A filtered view opened from its URL (a shared link, a reload).
    await open_board(page, board, "/?status=contacted&sort=score")
    facts = await row_facts(page)
    assert facts and {r["status"] for r in facts} == {"contacted"}

    rows = await download_csv(page)
    assert [f"lead-{r['id']}" for r in rows] == [r["id"] for r in facts]
    assert [r["name"] for r in rows] == [r["name"] for r in facts]
    assert {r["status"] for r in rows} == {"contacted"}
    assert [int(r["score"]) if r["score"] else None for r in rows] == [r["score"] for r in facts]
    assert page_errors == []
    await save_screenshot(page, request.node.name)


async def test_export_csv_follows_filters_changed_in_place(
    board: Board, page: Page, request: pytest.FixtureRequest
) -> None:
    await open_board(page, board)
    await page.locator("#filters select[name=status]").select_option("converted")
    await expect(page).to_have_url(re.compile(r"[?&]status=converted"))
    await expect(page.locator(f"{LEAD_ROWS} .col-status .pill").first).to_have_class(
        re.compile(r"\bstatus-converted\b")
    )
    facts = await row_facts(page)
    assert {r["status"] for r in facts} == {"converted"}
    await save_screenshot(page, request.node.name)
    rows = await download_csv(page)
    assert [f"lead-{r['id']}" for r in rows] == [r["id"] for r in facts]


# ---- language -----------------------------------------------------------------------------------
async def test_language_switch_to_indonesian_and_back(
    board: Board, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    await open_board(page, board)
    title = page.locator(".board-title h1")
    await expect(title).to_have_text("Leads")
    switch = page.locator(".lang-switch")

    await switch.get_by_role("link", name="ID", exact=True).click()
    await expect(title).to_have_text("Prospek")
    await expect(page.locator("html")).to_have_attribute("lang", "id")
    await expect(switch.locator("a[aria-current=true]")).to_have_text("ID")
    await expect(page.get_by_role("link", name="Ekspor CSV")).to_have_count(1)
    await page.reload()
    await expect(title).to_have_text("Prospek")
    await expect(page.locator("html")).to_have_attribute("lang", "id")
    await save_screenshot(page, request.node.name)

    await switch.get_by_role("link", name="EN", exact=True).click()
    await expect(title).to_have_text("Leads")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await page.reload()
    await expect(title).to_have_text("Leads")
    assert page_errors == []


# ---- keyboard -----------------------------------------------------------------------------------
async def test_keyboard_slash_focuses_search_and_j_k_move_selection(
    board: Board, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    await open_board(page, board)
    search = page.locator("#search")
    await page.keyboard.press("/")
    await expect(search).to_be_focused()
    await expect(search).to_have_value("")  # the "/" itself is not typed
    await page.keyboard.press("Escape")
    await expect(search).not_to_be_focused()

    rows = page.locator(LEAD_ROWS)
    selected = page.locator(f"{LEAD_ROWS}.selected")
    await page.keyboard.press("j")
    await expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))
    await page.keyboard.press("j")
    await expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    await expect(selected).to_have_count(1)
    await page.keyboard.press("j")
    await expect(rows.nth(2)).to_have_class(re.compile(r"\bselected\b"))
    await page.keyboard.press("k")
    await expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    await expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
    await expect(selected).to_have_count(1)
    await page.keyboard.press("k")
    await page.keyboard.press("k")  # stays on the first row
    await expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))
    await expect(selected).to_have_count(1)
    await assert_not_reloaded(page)
    assert page_errors == []
    await save_screenshot(page, request.node.name)


# ---- phone width, light and dark ----------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_phone_width_has_no_horizontal_overflow(
    board: Board, browser: Browser, scheme: str, request: pytest.FixtureRequest
) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    context.set_default_timeout(15_000)
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await open_board(page, board)
        await expect(page.locator(LEAD_ROWS).first).to_be_visible()
        assert await page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") is (
            scheme == "dark"
        )
        sizes = await page.evaluate(
            "({scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth})"
        )
        assert sizes["scroll"] <= sizes["inner"] + 1, f"the board overflows sideways: {sizes}"
        await save_screenshot(page, f"{request.node.name}_board")

        first = page.locator(f"{LEAD_ROWS} a.lead-name").first
        await first.click()
        await expect(page).to_have_url(re.compile(r"/leads/\d+$"))
        await expect(page.locator("#timeline")).to_be_visible()
        sizes = await page.evaluate(
            "({scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth})"
        )
        assert sizes["scroll"] <= sizes["inner"] + 1, f"the lead page overflows sideways: {sizes}"
        await save_screenshot(page, f"{request.node.name}_lead")
        assert errors == []
    finally:
        await context.close()
