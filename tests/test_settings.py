"""Workspace settings: admins only; secrets and tokens shown once and stored hashed."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import insert, select

from app.db import Database
from app.leads.models import Contact
from app.workspaces.models import ApiToken, Workspace
from tests.conftest import add_user, sign_in

Client = AsyncTestClient[Litestar]


def form(client: Client, **values: str) -> dict[str, str]:
    return {"_csrf_token": client.cookies.get("csrftoken", ""), **values}


async def as_admin(client: Client, database_url: str, workspace: Workspace) -> None:
    await add_user(database_url, workspace, "boss@example.com", "admin")
    assert await sign_in(client, "boss@example.com") == 303


async def test_agents_cannot_open_settings(client: Client, agent: str) -> None:
    assert (await client.get("/settings/")).status_code == 403
    assert (await client.post("/settings/rotate-sarah-key", data=form(client))).status_code == 403


async def test_admin_edits_settings(
    client: Client, db: Database, database_url: str, workspace: Workspace
) -> None:
    await as_admin(client, database_url, workspace)
    assert (await client.get("/settings/")).status_code == 200
    r = await client.post(
        "/settings/",
        data=form(
            client,
            kapso_phone_number_id="111222333",
            stale_threshold_minutes="120",
            timezone="Asia/Makassar",
            meta_app_secret="",
            meta_verify_token="",
        ),
        follow_redirects=False,
    )
    assert r.status_code == 303
    async with db.session() as session:
        ws = await session.get(Workspace, workspace.id)
    assert ws is not None
    assert (ws.kapso_phone_number_id, ws.stale_threshold_minutes, ws.timezone) == (
        "111222333",
        120,
        "Asia/Makassar",
    )
    assert ws.meta_app_secret == workspace.meta_app_secret  # empty field keeps the secret
    # Pages take the time zone from the viewer, remembered for a few seconds: saving forgets it.
    async with db.write() as session:
        await session.execute(
            insert(Contact.__table__).values(  # type: ignore[attr-defined]
                workspace_id=workspace.id,
                name="Budi",
                status="new",
                message_count=0,
                last_activity_at=datetime(2026, 11, 22, 1, 0, tzinfo=UTC),
                created_at=datetime(2026, 11, 22, 1, 0, tzinfo=UTC),
                updated_at=datetime(2026, 11, 22, 1, 0, tzinfo=UTC),
            )
        )
    assert 'title="22 Nov 2026 09:00 WITA"' in (await client.get("/")).text
    bad = await client.post(
        "/settings/", data=form(client, timezone="Mars/Olympus", stale_threshold_minutes="60")
    )
    assert bad.status_code == 400 and "time zone" in bad.text


async def test_rotated_keys_are_shown_once_and_work(
    client: Client, db: Database, database_url: str, workspace: Workspace
) -> None:
    await as_admin(client, database_url, workspace)
    page = (await client.post("/settings/rotate-sarah-key", data=form(client))).text
    key = re.search(r'<code class="secret">([^<]+)</code>', page).group(1)  # type: ignore[union-attr]
    assert key.startswith("sk_sarah_")
    ok = await client.get(
        "/sarah/state",
        params={"contact_phone": "+6281234567890"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert ok.status_code == 200
    assert key not in (await client.get("/settings/")).text  # never shown again

    page = (await client.post("/settings/api-tokens", data=form(client, name="reporting"))).text
    token = re.search(r'<code class="secret">([^<]+)</code>', page).group(1)  # type: ignore[union-attr]
    async with db.session() as session:
        stored = (await session.execute(select(ApiToken))).scalar_one()
    assert stored.token_hash != token and token not in stored.token_hash
    stats = await client.get("/api/stats", headers={"Authorization": f"Bearer {token}"})
    assert stats.status_code == 200
    await client.post(f"/settings/api-tokens/{stored.id}/revoke", data=form(client))
    gone = await client.get("/api/stats", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401

    page = (await client.post("/settings/rotate-webhook-secret", data=form(client))).text
    secret = re.search(r'<code class="secret">([^<]+)</code>', page).group(1)  # type: ignore[union-attr]
    async with db.session() as session:
        ws = await session.get(Workspace, workspace.id)
    assert ws is not None and ws.webhook_secret == secret != workspace.webhook_secret
