"""Filtered, sorted and pipeline boards kept current by the server: a lead enters, moves within
and leaves the view live, and the browser never re-fetches its board to find out."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from playwright.async_api import Page, Request, expect

from app.ingest.samples import SampleLead
from tests.e2e.support import (
    LiveServer,
    http_client,
    lead_id_for,
    post_inbound,
    post_sarah,
    save_screenshot,
    sign_in,
    signed_in_client,
)

ROWS = "#lead-rows tr.lead-row"


def lead(i: int, name: str) -> SampleLead:
    return SampleLead(phone=f"62817200{i:05d}", name=name, conversation_id=f"v-{i}")


def count_fetches(page: Page, path: str = "/") -> list[str]:
    """Every GET the tab makes from now on of `path` (default: the board, page or fragment)."""
    fetched: list[str] = []

    def on_request(request: Request) -> None:
        if request.method == "GET" and urlsplit(request.url).path == path:
            fetched.append(request.url)

    page.on("request", on_request)
    return fetched


async def set_status(server: LiveServer, lead_id: int, status: str) -> None:
    """Another person changes the lead's status (their own signed-in session)."""
    client = await signed_in_client(server)
    try:
        token = client.cookies.get("csrftoken", "")
        response = await client.post(
            f"/leads/{lead_id}/status",
            data={"status": status},
            headers={"HX-Request": "true", "X-CSRFToken": token},
        )
        assert response.status_code in (200, 204), response.text
    finally:
        await client.aclose()


async def names(page: Page) -> list[str]:
    found: list[str] = await page.locator(f"{ROWS} a.lead-name").all_text_contents()
    return [n.strip() for n in found]


async def test_a_filtered_view_gains_and_loses_leads_live(server: LiveServer, page: Page) -> None:
    await post_inbound(server, lead(1, "Ayu Lestari"), "Halo, masih ada unit?")
    await post_inbound(server, lead(2, "Bima Saputra"), "Minta brosur")
    await sign_in(page, server, "/?status=new")
    await expect(page.locator(ROWS)).to_have_count(2)
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    fetched = count_fetches(page)
    await page.evaluate("window.__marker = 'no-reload'")

    # A new lead enters the view at the top...
    await post_inbound(server, lead(3, "Citra Dewi"), "Kak, tipe 45?")
    await expect(page.locator(ROWS).first).to_contain_text("Citra Dewi")
    # ... and one another person qualified leaves it.
    ayu = await lead_id_for(server, lead(1, "").phone)
    await set_status(server, ayu, "qualified")
    await expect(page.locator(f"#lead-{ayu}")).to_have_count(0)
    assert await names(page) == ["Citra Dewi", "Bima Saputra"]
    await save_screenshot(page, "live-view-filtered")
    assert fetched == [], f"the board was fetched again: {fetched}"
    assert await page.evaluate("window.__marker") == "no-reload"


async def test_a_score_sorted_view_reorders_live(server: LiveServer, page: Page) -> None:
    for i, (name, score) in enumerate([("Dewi", 40), ("Eko", 60), ("Fajar", 20)], start=10):
        who = lead(i, name)
        await post_inbound(server, who, "Halo")
        await post_sarah(server, who.phone, state="qualifying", score=score, temperature="warm")
    await sign_in(page, server, "/?sort=score")
    await expect(page.locator(ROWS)).to_have_count(3)
    assert await names(page) == ["Eko", "Dewi", "Fajar"]
    fetched = count_fetches(page)
    # Fajar's score jumps: his row moves to the top, the others keep their order.
    await post_sarah(server, lead(12, "").phone, state="scoring", score=95, temperature="hot")
    await expect(page.locator(ROWS).first).to_contain_text("Fajar")
    assert await names(page) == ["Fajar", "Eko", "Dewi"]
    assert fetched == []


async def test_the_pipeline_moves_a_card_between_columns_live(
    server: LiveServer, page: Page
) -> None:
    who = lead(20, "Gilang Ramadhan")
    await post_inbound(server, who, "Mau survey lokasi")
    lead_id = await lead_id_for(server, who.phone)
    await sign_in(page, server, "/?view=pipeline")
    card = f"#card-{lead_id}"
    new, contacted = (
        page.locator(f"section.pipeline-col[data-status='{status}'] {card}")
        for status in ("new", "contacted")
    )
    await expect(new).to_have_count(1)
    fetched = count_fetches(page)
    await set_status(server, lead_id, "contacted")
    await expect(contacted).to_have_count(1)
    await expect(new).to_have_count(0)
    # The card's own menu still works (the page put its own form token in the new cards).
    token = await page.locator(f"{card} input[name=_csrf_token]").get_attribute("value")
    assert token
    async with page.expect_response(re.compile(rf"/leads/{lead_id}/status$")) as moved:
        await page.locator(f"{card} select[name=status]").select_option("qualified")
    assert (await moved.value).ok
    await page.locator("h1").click()  # leave the menu: the live columns may now swap in
    await expect(
        page.locator(f"section.pipeline-col[data-status='qualified'] {card}")
    ).to_have_count(1)
    assert fetched == []
    async with http_client(server.base_url) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_a_lead_page_updates_live_and_keeps_a_note_being_typed(
    server: LiveServer, page: Page
) -> None:
    who = lead(30, "Hendra Gunawan")
    await post_inbound(server, who, "Kapan bisa survey?")
    lead_id = await lead_id_for(server, who.phone)
    await sign_in(page, server, f"/leads/{lead_id}")
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    fetched = count_fetches(page, f"/leads/{lead_id}")
    note = page.locator("#note-body")
    await note.click()
    await note.type("Sudah saya telepon, minta")

    # Their next message and another person's status change arrive while the note is typed.
    await post_inbound(server, who, "Sabtu pagi bisa kak")
    await set_status(server, lead_id, "contacted")
    await expect(page.locator("#timeline")).to_contain_text("Sabtu pagi bisa kak")
    await expect(page.locator(".lead-header .pill").first).to_have_class(
        re.compile(r"\bstatus-contacted\b")
    )
    # The draft, its focus and its caret survived: typing goes on where it was.
    await note.type(" dikirim brosur")
    assert await note.input_value() == "Sudah saya telepon, minta dikirim brosur"
    assert await page.evaluate("document.activeElement.id") == "note-body"
    await save_screenshot(page, "live-lead-page-draft-kept")
    assert fetched == [], f"the lead page was fetched again: {fetched}"

    # A choice made and not yet sent survives too, focus elsewhere or not.
    owner = page.locator(".lead-actions select[name=owner]")
    chosen = await owner.locator("option").nth(1).get_attribute("value")
    assert chosen
    await owner.select_option(chosen)
    await page.locator(".lead-title h1").click()
    await post_inbound(server, who, "Alamatnya di mana kak?")
    await expect(page.locator("#timeline")).to_contain_text("Alamatnya di mana kak?")
    assert await owner.input_value() == chosen

    # Sent, the note is on the timeline; the next live update swaps the form as usual.
    async with page.expect_response(re.compile(rf"/leads/{lead_id}/notes$")) as sent:
        await page.get_by_role("button", name="Add note").click()
    assert (await sent.value).ok
    await expect(page.locator("#timeline")).to_contain_text("dikirim brosur")
    assert await note.input_value() == ""
