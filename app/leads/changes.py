"""Status, score and temperature changes: who may change what, and the history of every change.

A status a person set is not overwritten by the bot; a person can hand the lead back to the bot.
Only real changes are recorded, once each.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from app.db import utcnow
from app.leads.models import Contact, LeadChange
from app.prepared import Prepared

contacts = Contact.__table__  # type: ignore[attr-defined]
lead_changes = LeadChange.__table__  # type: ignore[attr-defined]

LEAD_STATUSES = ("new", "qualified", "contacted", "converted", "archived")
BOT = "bot"
HUMAN = "human"
SYSTEM = "system"


class StatusError(ValueError):
    pass


def history_row(
    workspace_id: int,
    contact_id: int,
    field: str,
    old: object,
    new: object,
    source: str,
    actor: str,
) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "contact_id": contact_id,
        "field": field,
        "old_value": None if old is None else str(old),
        "new_value": None if new is None else str(new),
        "source": source,
        "actor": actor[:120],
        "created_at": utcnow(),
    }


_HISTORY_COLUMNS = (
    "workspace_id",
    "contact_id",
    "field",
    "old_value",
    "new_value",
    "source",
    "actor",
    "created_at",
)
_INSERT_HISTORY = Prepared(insert(lead_changes).values({c: bindparam(c) for c in _HISTORY_COLUMNS}))


def record_history(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Add history_row()s to the caller's transaction."""
    _INSERT_HISTORY.run_many(conn, rows)


def bot_may_set_status(current_source: str | None) -> bool:
    return current_source != HUMAN


def set_status_by_human(
    conn: Connection,
    workspace_id: int,
    contact_id: int,
    status: str | None,
    actor: str,
    *,
    release_to_bot: bool = False,
) -> bool:
    """A person sets the status (or hands the lead back to the bot). True if anything changed."""
    if status is not None and status not in LEAD_STATUSES:
        raise StatusError(f"status must be one of {', '.join(LEAD_STATUSES)}")
    row = conn.execute(
        select(contacts.c.status, contacts.c.status_source)
        .where(contacts.c.workspace_id == workspace_id, contacts.c.id == contact_id)
        .with_for_update()
    ).first()
    if row is None:
        raise LookupError("no such lead")
    now = utcnow()
    values: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    if status is not None and status != row.status:
        values.update(status=status, status_changed_at=now, status_changed_by=actor[:120])
        history.append(
            history_row(workspace_id, contact_id, "status", row.status, status, HUMAN, actor)
        )
    new_source = BOT if release_to_bot else HUMAN if status is not None else row.status_source
    if new_source != row.status_source:
        values["status_source"] = new_source
    if not values:
        return False
    values["updated_at"] = now
    conn.execute(update(contacts).where(contacts.c.id == contact_id).values(**values))
    record_history(conn, history)
    return True
