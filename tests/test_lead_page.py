"""The lead page and what a person does there, over HTTP: timeline, note, status, claim, assign,
archive, export; the same actions from htmx; other workspaces' leads stay invisible."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.db import Database
from app.ingest.samples import SampleLead, inbound_message, outbound_message, sign
from app.workspaces.models import Workspace
from tests import helpers
from tests.conftest import KAPSO_SECRET, PHONE_NUMBER_ID, add_user, add_workspace, sign_in

Client = AsyncTestClient[Litestar]
BUDI = SampleLead(phone="6281234567890", name="Budi Santoso", conversation_id="conv-b")


async def deliver(client: Client, payload: dict, event: str = "whatsapp.message.received") -> None:
    d = sign(event, payload, KAPSO_SECRET)
    assert (
        await client.post("/webhooks/kapso", content=d.body, headers=d.headers)
    ).status_code == 200


def form(client: Client, **values: str) -> dict[str, str]:
    return {"_csrf_token": client.cookies.get("csrftoken", ""), **values}


async def budi(client: Client, db: Database) -> int:
    await deliver(client, inbound_message(BUDI, PHONE_NUMBER_ID, "Halo, unit tipe 36 masih ada?"))
    await deliver(
        client,
        outbound_message(BUDI, PHONE_NUMBER_ID, "Masih kak!", status="read"),
        "whatsapp.message.read",
    )
    [contact] = await helpers.contacts(db)
    assert contact.id is not None
    return contact.id


async def test_lead_page_tells_the_whole_story(client: Client, db: Database, agent: str) -> None:
    lead_id = await budi(client, db)
    page = await client.get(f"/leads/{lead_id}")
    assert page.status_code == 200
    text = page.text
    assert (
        "Budi Santoso" in text and "Halo, unit tipe 36 masih ada?" in text and "Masih kak!" in text
    )
    assert text.index("Masih kak!") < text.index("Halo, unit tipe 36")  # newest first
    assert 'class="delivery delivery-read"' in text


async def test_note_status_claim_and_archive(client: Client, db: Database, agent: str) -> None:
    lead_id = await budi(client, db)
    r = await client.post(
        f"/leads/{lead_id}/notes",
        data=form(client, body="Call him at 3 <b>pm</b>"),
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = await client.post(
        f"/leads/{lead_id}/status", data=form(client, status="qualified"), follow_redirects=False
    )
    assert r.status_code == 303
    r = await client.post(f"/leads/{lead_id}/claim", data=form(client), follow_redirects=False)
    assert r.status_code == 303
    [contact] = await helpers.contacts(db)
    assert (contact.status, contact.status_source, contact.owner_user_id is not None) == (
        "qualified",
        "human",
        True,
    )
    page = (await client.get(f"/leads/{lead_id}")).text
    assert "Call him at 3 &lt;b&gt;pm&lt;/b&gt;" in page  # escaped
    assert 'new</span> → <span class="new">qualified' in page  # the change on the timeline
    r = await client.post(
        f"/leads/{lead_id}/status",
        data=form(client, status="archived"),
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 204
    [contact] = await helpers.contacts(db)
    assert contact.status == "archived"


async def test_bad_actions_are_refused_clearly(client: Client, db: Database, agent: str) -> None:
    lead_id = await budi(client, db)
    r = await client.post(
        f"/leads/{lead_id}/status", data=form(client, status="won"), headers={"HX-Request": "true"}
    )
    assert r.status_code == 400 and "status must be one of" in r.json()["error"]
    r = await client.post(
        f"/leads/{lead_id}/notes", data=form(client, body="   "), follow_redirects=False
    )
    assert r.status_code == 303 and "error=" in r.headers["location"]
    r = await client.post(
        f"/leads/{lead_id}/owner", data=form(client, owner="99999"), headers={"HX-Request": "true"}
    )
    assert r.status_code == 400
    assert (await client.post("/leads/424242/claim", data=form(client))).status_code == 404


async def test_another_workspaces_lead_is_404(
    client: Client, db: Database, database_url: str, workspace: Workspace
) -> None:
    other = await add_workspace(
        database_url, name="Other", phone_number_id="555", webhook_secret="other-secret"
    )
    d = sign("whatsapp.message.received", inbound_message(BUDI, "555", "rahasia"), "other-secret")
    await client.post("/webhooks/kapso", content=d.body, headers=d.headers)
    [theirs] = await helpers.contacts(db)
    await add_user(database_url, workspace, "ours@example.com")
    await sign_in(client, "ours@example.com")
    assert (await client.get(f"/leads/{theirs.id}")).status_code == 404
    assert (await client.post(f"/leads/{theirs.id}/claim", data=form(client))).status_code == 404
    assert other.id is not None


async def test_board_filters_views_and_export_over_http(
    client: Client, db: Database, agent: str
) -> None:
    await budi(client, db)
    siti = SampleLead(phone="6285712345678", name="Siti Rahmawati", conversation_id="conv-s")
    await deliver(client, inbound_message(siti, PHONE_NUMBER_ID, "Kak, akad kreditnya?"))
    page = await client.get("/", params={"q": "siti"})
    assert "Siti Rahmawati" in page.text and "Budi Santoso" not in page.text
    fragment = await client.get(
        "/", params={"q": "budi"}, headers={"HX-Request": "true", "HX-Target": "board-view"}
    )
    assert fragment.text.lstrip().startswith('<section id="board-view"') and "Budi" in fragment.text
    assert fragment.headers["vary"] == "HX-Request"
    needs = await client.get("/", params={"needs_reply": "1"})
    assert "Siti Rahmawati" in needs.text and "Budi Santoso" not in needs.text  # we replied to Budi
    pipeline = await client.get("/", params={"view": "pipeline"})
    assert 'class="pipeline"' in pipeline.text and 'id="card-' in pipeline.text
    export = await client.get("/export.csv", params={"q": "siti"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    lines = export.text.lstrip("\ufeff").strip().splitlines()
    assert len(lines) == 2 and "Siti Rahmawati" in lines[1]


def column_counts(html: str) -> dict[str, int]:
    found = re.findall(
        r'<section class="pipeline-col" data-status="(\w+)".*?<span class="count">([\d,.]+)</span>',
        html,
        re.S,
    )
    return {status: int(n.replace(",", "").replace(".", "")) for status, n in found}


async def test_pipeline_counts_move_with_a_persons_status_change(
    client: Client, db: Database, agent: str
) -> None:
    """The unfiltered pipeline takes its counts from the (cached) status menu; the person who
    moves a card sees them move; a filtered pipeline counts its own columns."""
    lead_id = await budi(client, db)
    before = column_counts((await client.get("/", params={"view": "pipeline"})).text)
    assert before == {"new": 1, "qualified": 0, "contacted": 0, "converted": 0, "archived": 0}
    moved = await client.post(
        f"/leads/{lead_id}/status", data=form(client, status="qualified"), follow_redirects=False
    )
    assert moved.status_code == 303
    after = column_counts((await client.get("/", params={"view": "pipeline"})).text)
    assert after == {"new": 0, "qualified": 1, "contacted": 0, "converted": 0, "archived": 0}
    none = column_counts((await client.get("/", params={"view": "pipeline", "q": "siti"})).text)
    assert set(none.values()) == {0}
