"""GET / renders the board server-side (works without JavaScript) and escapes strangers' text."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.ingest.samples import SampleLead, inbound_message, sign
from tests.conftest import KAPSO_SECRET, PHONE_NUMBER_ID


async def test_empty_board_explains_how_to_start(
    client: AsyncTestClient[Litestar], agent: str
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "No leads yet" in response.text and "/webhooks/kapso" in response.text
    assert response.headers["vary"] == "HX-Request"


async def test_rows_are_rendered_and_escaped(client: AsyncTestClient[Litestar], agent: str) -> None:
    lead = SampleLead(
        phone="6281234567890", name='<img src=x onerror="alert(1)">', conversation_id="c1"
    )
    d = sign(
        "whatsapp.message.received",
        inbound_message(lead, PHONE_NUMBER_ID, "<script>alert(2)</script>"),
        KAPSO_SECRET,
    )
    assert (
        await client.post("/webhooks/kapso", content=d.body, headers=d.headers)
    ).status_code == 200
    page = (await client.get("/")).text
    assert 'id="lead-1"' in page and "+62 812-3456-7890" in page
    assert (
        "<script>alert(2)</script>" not in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    )
    assert "<img src=x" not in page
    assert 'sse-connect="/events?ws=test-team&amp;after=1"' in page


async def test_unknown_workspace_is_404(client: AsyncTestClient[Litestar], agent: str) -> None:
    response = await client.get("/?ws=nope")
    assert response.status_code == 404 and "Traceback" not in response.text


async def test_healthz(client: AsyncTestClient[Litestar]) -> None:
    body = (await client.get("/healthz")).json()
    assert body["ok"] is True and body["broker"] == "RedisBroker" and body["broker_healthy"] is True


async def test_a_lead_without_a_name_shows_its_phone_once(
    client: AsyncTestClient[Litestar], agent: str
) -> None:
    lead = SampleLead(phone="6285712345678", name="", conversation_id="c-noname")
    d = sign("whatsapp.message.received", inbound_message(lead, PHONE_NUMBER_ID, "P"), KAPSO_SECRET)
    assert (
        await client.post("/webhooks/kapso", content=d.body, headers=d.headers)
    ).status_code == 200

    board = (await client.get("/")).text
    lead_page = (await client.get("/leads/1")).text

    for page in (board, lead_page):
        assert page.count(">+62 857-1234-5678<") == 1  # as the name; no phone line under it
        assert '<span class="avatar' in page and ">#</span>" in page
