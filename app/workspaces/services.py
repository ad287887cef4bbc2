"""Workspaces: creation, lookup by the WhatsApp number a webhook names, and the demo workspace."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.workspaces.models import Workspace

DEMO_NAME = "Demo Properti"
DEMO_PHONE_NUMBER_ID = "109876543210987"  # the id Kapso's examples and our fixtures use
DEMO_WEBHOOK_SECRET = "demo-webhook-secret"
DEMO_SARAH_KEY = "demo-sarah-key"
DEMO_USER_EMAIL = "demo@leadboard.local"
DEMO_USER_PASSWORD = "demo-password"


class WorkspaceError(ValueError):
    """A workspace cannot be created as asked (duplicate name or phone number id...)."""


@dataclass(frozen=True, slots=True)
class NewWorkspace:
    workspace: Workspace
    webhook_secret: str
    sarah_key: str


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "workspace"


def generate_secret(prefix: str = "whsec") -> str:
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def hash_key(key: str) -> str:
    """Keys are long random tokens: a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(key.strip().encode()).hexdigest()


async def set_sarah_key(session: AsyncSession, workspace: Workspace, key: str | None = None) -> str:
    """Give the workspace a (new) Sarah key; returns the key, which is shown once."""
    key = key or generate_secret("sk_sarah")
    workspace.sarah_key_hash = hash_key(key)
    session.add(workspace)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise WorkspaceError("that key is already in use") from exc
    return key


async def by_sarah_key(session: AsyncSession, key: str) -> Workspace | None:
    if not key:
        return None
    result = await session.execute(
        select(Workspace).where(Workspace.sarah_key_hash == hash_key(key))  # type: ignore[arg-type]
    )
    return result.scalar_one_or_none()


async def create_workspace(
    session: AsyncSession,
    *,
    name: str,
    kapso_phone_number_id: str | None,
    webhook_secret: str | None = None,
    meta_app_secret: str | None = None,
    meta_verify_token: str | None = None,
    timezone: str = "Asia/Jakarta",
    sarah_key: str | None = None,
) -> NewWorkspace:
    name = name.strip()
    if not name:
        raise WorkspaceError("a workspace needs a name")
    secret = webhook_secret or generate_secret()
    workspace = Workspace(
        name=name,
        slug=slugify(name),
        kapso_phone_number_id=(kapso_phone_number_id or "").strip() or None,
        webhook_secret=secret,
        meta_app_secret=meta_app_secret,
        meta_verify_token=meta_verify_token,
        timezone=timezone,
    )
    session.add(workspace)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise WorkspaceError(
            f"a workspace named {name!r} or with phone number id "
            f"{kapso_phone_number_id!r} already exists"
        ) from exc
    key = await set_sarah_key(session, workspace, sarah_key)
    return NewWorkspace(workspace=workspace, webhook_secret=secret, sarah_key=key)


async def by_phone_number_id(session: AsyncSession, phone_number_id: str) -> Workspace | None:
    result = await session.execute(
        select(Workspace).where(Workspace.kapso_phone_number_id == phone_number_id)  # type: ignore[arg-type]
    )
    return result.scalar_one_or_none()


async def by_slug(session: AsyncSession, slug: str) -> Workspace | None:
    result = await session.execute(select(Workspace).where(Workspace.slug == slug))  # type: ignore[arg-type]
    return result.scalar_one_or_none()


async def list_workspaces(session: AsyncSession) -> list[Workspace]:
    result = await session.execute(select(Workspace).order_by(Workspace.id))  # type: ignore[arg-type]
    return list(result.scalars())


async def ensure_demo_workspace(session: AsyncSession) -> Workspace | None:
    """Create the demo workspace on an empty database; None when workspaces already exist."""
    if await list_workspaces(session):
        return None
    created = await create_workspace(
        session,
        name=DEMO_NAME,
        kapso_phone_number_id=DEMO_PHONE_NUMBER_ID,
        webhook_secret=DEMO_WEBHOOK_SECRET,
        meta_app_secret="demo-meta-app-secret",
        meta_verify_token="demo-verify-token",
        sarah_key=DEMO_SARAH_KEY,
    )
    return created.workspace


# -- settings an admin changes ---------------------------------------------------------------------
async def rotate_webhook_secret(session: AsyncSession, workspace: Workspace) -> str:
    workspace.webhook_secret = generate_secret()
    session.add(workspace)
    await session.flush()
    return workspace.webhook_secret


def _valid_timezone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


async def update_workspace(
    session: AsyncSession,
    workspace: Workspace,
    *,
    kapso_phone_number_id: str | None,
    meta_app_secret: str | None,
    meta_verify_token: str | None,
    stale_threshold_minutes: int,
    timezone: str,
) -> None:
    """Change the editable settings; empty secret fields keep what is stored."""
    if not _valid_timezone(timezone):
        raise WorkspaceError(f"{timezone!r} is not a time zone (e.g. Asia/Jakarta)")
    if not 5 <= stale_threshold_minutes <= 7 * 24 * 60:
        raise WorkspaceError("the stale threshold must be between 5 minutes and 7 days")
    workspace.kapso_phone_number_id = (kapso_phone_number_id or "").strip() or None
    if meta_app_secret:
        workspace.meta_app_secret = meta_app_secret.strip()
    if meta_verify_token:
        workspace.meta_verify_token = meta_verify_token.strip()
    workspace.stale_threshold_minutes = stale_threshold_minutes
    workspace.timezone = timezone
    session.add(workspace)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise WorkspaceError("another workspace already uses that phone number id") from exc


async def create_api_token(session: AsyncSession, workspace: Workspace, name: str) -> str:
    """A new API token; returns it (shown once), keeps only its hash."""
    from app.workspaces.models import ApiToken

    name = name.strip()[:120] or "API token"
    token = generate_secret("lb_api")
    assert workspace.id is not None
    session.add(
        ApiToken(
            workspace_id=workspace.id, name=name, token_hash=hash_key(token), prefix=token[:12]
        )
    )
    await session.flush()
    return token


async def list_api_tokens(session: AsyncSession, workspace_id: int) -> list[Any]:
    from app.workspaces.models import ApiToken

    result = await session.execute(
        select(ApiToken).where(ApiToken.workspace_id == workspace_id).order_by(ApiToken.id)  # type: ignore[arg-type]
    )
    return list(result.scalars())


async def revoke_api_token(session: AsyncSession, workspace_id: int, token_id: int) -> bool:
    from sqlalchemy import delete

    from app.workspaces.models import ApiToken

    result = await session.execute(
        delete(ApiToken).where(ApiToken.workspace_id == workspace_id, ApiToken.id == token_id)  # type: ignore[arg-type]
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def by_api_token(session: AsyncSession, token: str) -> Workspace | None:
    from app.workspaces.models import ApiToken

    result = await session.execute(
        select(Workspace)
        .join(ApiToken, ApiToken.workspace_id == Workspace.id)  # type: ignore[arg-type]
        .where(ApiToken.token_hash == hash_key(token))  # type: ignore[arg-type]
    )
    return result.scalar_one_or_none()
