"""Sign-in, sessions, workspace isolation, CSRF, security headers and throttling over HTTP."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.accounts.passwords import hash_password, verify_password
from app.db import Database
from app.ingest.samples import SampleLead, inbound_message, sign
from app.leads.cache import BoardCache
from app.live.outbox import LEAD_CHANGED, record_change
from app.live.pipeline import LivePipeline
from app.templating import create_environment
from app.workspaces.models import Workspace
from tests import helpers
from tests.conftest import (
    KAPSO_SECRET,
    PHONE_NUMBER_ID,
    add_user,
    add_workspace,
    sign_in,
)
from tests.live_streams import OpenStream

Client = AsyncTestClient[Litestar]


def test_passwords_are_argon2_and_verify() -> None:
    hashed = hash_password("s3cret-pass")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "s3cret-pass") and not verify_password(hashed, "wrong")
    assert not verify_password(None, "anything")


async def test_pages_redirect_to_sign_in_and_machines_get_401(client: Client) -> None:
    page = await client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code in (302, 303) and page.headers["location"].startswith("/login")
    assert (await client.get("/events")).status_code == 401
    assert (await client.get("/api/stats")).status_code == 401
    htmx = await client.get("/", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"] == "/login"


async def test_sign_in_sign_out(client: Client, database_url: str, workspace: Workspace) -> None:
    await add_user(database_url, workspace, "rina@example.com")
    assert await sign_in(client, "rina@example.com", "wrong password") == 401
    assert await sign_in(client, "RINA@example.com") == 303  # emails are case-insensitive
    board = await client.get("/")
    assert board.status_code == 200 and "rina" in board.text
    token = client.cookies.get("csrftoken", "")
    out = await client.post("/logout", data={"_csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    again = await client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert again.status_code in (302, 303)


async def test_post_without_csrf_token_is_refused(client: Client, agent: str) -> None:
    response = await client.post("/logout", data={}, follow_redirects=False)
    assert response.status_code == 403
    assert (await client.get("/")).status_code == 200  # still signed in


async def test_open_redirect_is_not_followed(
    client: Client, database_url: str, workspace: Workspace
) -> None:
    await add_user(database_url, workspace, "x@example.com")
    await client.get("/login")
    response = await client.post(
        "/login",
        data={
            "email": "x@example.com",
            "password": "correct horse battery",
            "_csrf_token": client.cookies.get("csrftoken", ""),
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


async def test_sign_in_is_throttled(
    client: Client, database_url: str, workspace: Workspace
) -> None:
    await add_user(database_url, workspace, "t@example.com")
    for _ in range(5):
        assert await sign_in(client, "t@example.com", "nope") == 401
    assert await sign_in(client, "t@example.com", "nope") == 429
    # Even the right password waits until the window passes.
    assert await sign_in(client, "t@example.com") == 429


async def test_security_headers(client: Client) -> None:
    response = await client.get("/login")
    csp = response.headers["content-security-policy"]
    assert (
        "script-src 'self'" in csp
        and "frame-ancestors 'none'" in csp
        and "unsafe-inline" not in csp
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    webhook = await client.post("/webhooks/kapso", content=b"{}")
    assert webhook.headers["x-content-type-options"] == "nosniff"


# -- isolation -----------------------------------------------------------------------------------
async def two_teams(client: Client, database_url: str, workspace: Workspace) -> Workspace:
    """Our workspace has Budi; the other one has Siti. We are an agent of ours only."""
    other = await add_workspace(
        database_url,
        name="Other Team",
        phone_number_id="555",
        webhook_secret="other-secret",
        sarah_key="other-key",
    )
    for phone_id, secret, lead in (
        (PHONE_NUMBER_ID, KAPSO_SECRET, SampleLead("6281234567890", "Budi Santoso", "c1")),
        ("555", "other-secret", SampleLead("6285712345678", "Siti Rahasia", "c2")),
    ):
        d = sign("whatsapp.message.received", inbound_message(lead, phone_id, "halo"), secret)
        assert (
            await client.post("/webhooks/kapso", content=d.body, headers=d.headers)
        ).status_code == 200
    await add_user(database_url, workspace, "ours@example.com")
    assert await sign_in(client, "ours@example.com") == 303
    return other


async def test_another_workspace_is_invisible(
    client: Client, db: Database, database_url: str, workspace: Workspace
) -> None:
    other = await two_teams(client, database_url, workspace)
    board = (await client.get("/")).text
    assert "Budi Santoso" in board and "Siti Rahasia" not in board
    assert (await client.get(f"/?ws={other.slug}")).status_code == 404
    assert (await client.get(f"/events?ws={other.slug}")).status_code == 404
    stats = (await client.get("/api/stats")).json()  # the session works for the JSON API too
    assert stats["total"] == 1
    leads = (await client.get("/api/leads", headers={"Authorization": "Bearer other-key"})).json()
    assert [lead["display_name"] for lead in leads["leads"]] == ["Siti Rahasia"]


async def test_a_membership_added_elsewhere_works_at_once(
    client: Client, db: Database, database_url: str, workspace: Workspace
) -> None:
    """The viewer's workspaces are remembered for a few seconds, but a workspace missing from
    what was remembered is looked up again before it is refused."""
    other = await two_teams(client, database_url, workspace)
    assert (await client.get("/")).status_code == 200  # remembered: ours only
    assert (await client.get(f"/?ws={other.slug}")).status_code == 404
    await add_user(database_url, other, "ours@example.com")  # `leadboard user create` elsewhere
    board = await client.get(f"/?ws={other.slug}")
    assert board.status_code == 200 and "Siti Rahasia" in board.text
    assert "Budi Santoso" not in board.text


async def test_api_post_with_a_session_needs_the_csrf_header(
    client: Client, db: Database, database_url: str, workspace: Workspace
) -> None:
    await two_teams(client, database_url, workspace)
    [ours] = [c for c in await helpers.contacts(db) if c.workspace_id == workspace.id]
    url = f"/api/leads/{ours.id}/status"
    assert (await client.post(url, json={"status": "qualified"})).status_code == 403
    ok = await client.post(
        url,
        json={"status": "qualified"},
        headers={"X-CSRFToken": client.cookies.get("csrftoken", "")},
    )
    assert ok.status_code == 200 and ok.json() == {"changed": True}


async def test_crafted_last_event_id_replays_only_our_workspace(
    db: Database, database_url: str, workspace: Workspace
) -> None:
    other = await add_workspace(database_url, name="Other Team", phone_number_id="555")
    async with db.write() as session:
        for _ in range(3):
            await record_change(session, other.id, LEAD_CHANGED, None)  # type: ignore[arg-type]
    live = LivePipeline(db, create_environment(), BoardCache(db), redis_url=None)
    await live.start()
    try:
        async with OpenStream(live, workspace, last_id=0) as browser:
            await browser.next("status")
            assert await browser.quiet("lead") and await browser.quiet("refresh")
    finally:
        await live.stop()
    assert [e.event for e in browser.events] == ["comment", "status"]  # nothing of theirs


@pytest.mark.parametrize("path", ["/webhooks/kapso", "/sarah/state"])
async def test_public_endpoints_are_rate_limited(
    database_url: str, redis_url: str, workspace: Workspace, path: str
) -> None:
    from app.asgi import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database_url, redis_url, rate_limit_webhooks_per_minute=3))
    async with AsyncTestClient(app=app) as client:
        codes = [(await client.post(path, content=b"{}")).status_code for _ in range(5)]
    assert codes[:3] != [429, 429, 429] and codes[3:] == [429, 429]
