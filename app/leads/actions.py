"""What a person does to a lead from the board or its page: claim, assign, change status, note.

Each function runs in the caller's write transaction and records one change event, published by
the caller after the commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from app.accounts.services import is_member
from app.db import utcnow
from app.leads.changes import set_status_by_human
from app.leads.models import Contact
from app.live.outbox import LEAD_CHANGED, Change, add_change
from app.notes.services import add_note

contacts = Contact.__table__  # type: ignore[attr-defined]


class ActionError(ValueError):
    pass


def _lock(conn: Connection, workspace_id: int, contact_id: int) -> Any:
    row = (
        conn.execute(
            select(contacts.c.id, contacts.c.owner_user_id, contacts.c.hot_since)
            .where(contacts.c.workspace_id == workspace_id, contacts.c.id == contact_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise LookupError("no such lead")
    return row


def assign_owner(
    conn: Connection, workspace_id: int, contact_id: int, owner_id: int | None
) -> Change | None:
    """Give the lead an owner (None: unassign). Claiming also ends a hot-lead alert."""
    row = _lock(conn, workspace_id, contact_id)
    if owner_id is not None and not is_member(conn, workspace_id, owner_id):
        raise ActionError("that person is not in this workspace")
    values: dict[str, Any] = {}
    if row.owner_user_id != owner_id:
        values["owner_user_id"] = owner_id
    if owner_id is not None and row.hot_since is not None:
        values["hot_since"] = None
    if not values:
        return None
    values["updated_at"] = utcnow()
    conn.execute(update(contacts).where(contacts.c.id == contact_id).values(**values))
    return add_change(conn, workspace_id, LEAD_CHANGED, contact_id)


def change_status(
    conn: Connection, workspace_id: int, contact_id: int, status: str, actor: str
) -> Change | None:
    if set_status_by_human(conn, workspace_id, contact_id, status, actor):
        return add_change(conn, workspace_id, LEAD_CHANGED, contact_id)
    return None


def note(
    conn: Connection,
    workspace_id: int,
    contact_id: int,
    body: str,
    *,
    user_id: int,
    author_name: str,
) -> Change:
    _lock(conn, workspace_id, contact_id)
    add_note(conn, workspace_id, contact_id, body, author_name=author_name, user_id=user_id)
    return add_change(conn, workspace_id, LEAD_CHANGED, contact_id)
