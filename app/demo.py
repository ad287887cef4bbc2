"""The demo workspace and its demo user, created by `leadboard serve` on an empty database."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.services import create_user
from app.workspaces.models import Workspace
from app.workspaces.services import DEMO_USER_EMAIL, DEMO_USER_PASSWORD, ensure_demo_workspace


async def ensure_demo(session: AsyncSession) -> Workspace | None:
    """The demo workspace with an admin who can sign in; None when the database has workspaces."""
    workspace = await ensure_demo_workspace(session)
    if workspace is None:
        return None
    await create_user(
        session,
        email=DEMO_USER_EMAIL,
        password=DEMO_USER_PASSWORD,
        workspace=workspace,
        role="admin",
        name="Demo Admin",
    )
    return workspace
