"""Sync failures: logged without failing the caller, listed, resolved, and kept bounded."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import keep_newest, utcnow
from app.sync.models import SyncFailure

failures = SyncFailure.__table__  # type: ignore[attr-defined]
KEEP_PER_WORKSPACE = 1000


def log_sync_failure(
    conn: Connection,
    workspace_id: int,
    *,
    source: str,
    error: str,
    contact_phone: str | None = None,
    payload: Any = None,
    keep: int = KEEP_PER_WORKSPACE,
) -> int:
    """Record a failure and trim the workspace's log to its newest `keep` rows.

    The trim finds the cut-off id through the (workspace_id, id) index with OFFSET: it never
    counts the table.
    """
    text = (
        payload if isinstance(payload, str) or payload is None else json.dumps(payload, default=str)
    )
    result = conn.execute(
        insert(failures)
        .values(
            workspace_id=workspace_id,
            source=source[:40],
            contact_phone=(contact_phone or None) and contact_phone[:40],
            error=error[:4000],
            payload=text[:20000] if text else None,
            created_at=utcnow(),
            resolved=False,
        )
        .returning(failures.c.id)
    )
    new_id = int(result.scalar_one())
    keep_newest(conn, failures, workspace_id, keep)
    return new_id


async def list_sync_failures(
    session: AsyncSession,
    workspace_id: int,
    *,
    source: str | None = None,
    include_resolved: bool = True,
    limit: int = 50,
) -> list[dict[str, Any]]:
    query = select(failures).where(failures.c.workspace_id == workspace_id)
    if source:
        query = query.where(failures.c.source == source)
    if not include_resolved:
        query = query.where(failures.c.resolved.is_(False))
    rows = await session.execute(
        query.order_by(failures.c.id.desc()).limit(max(1, min(limit, 500)))
    )
    return [_as_dict(r._mapping) for r in rows]


def _as_dict(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
    return out


async def resolve_sync_failures(session: AsyncSession, workspace_id: int, ids: list[int]) -> int:
    if not ids:
        return 0
    result = await session.execute(
        update(failures)
        .where(
            failures.c.workspace_id == workspace_id,
            failures.c.id.in_(ids),
            failures.c.resolved.is_(False),
        )
        .values(resolved=True, resolved_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
