"""Workspaces: creation, lookup by the WhatsApp number a webhook names, and the demo workspace."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

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
