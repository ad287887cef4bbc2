"""Sarah's state API: validate, save the state, sync it onto the lead, never fail the save.

The state is saved first; the sync runs in a savepoint of the same transaction. Whatever fails in
the sync rolls back to that savepoint, is logged as a sync failure, and the answer says
`sync: false` with the reason; the state is committed either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database, savepoint, utcnow
from app.ingest.records import LeadRef
from app.leads import statements as st
from app.leads.changes import BOT, bot_may_set_status, history_row, record_history
from app.leads.models import Contact
from app.leads.services import SEARCH_FIELDS, find_or_create_contact, search_text_for
from app.live.broker import Broker
from app.live.outbox import LEAD_CHANGED, Change, add_change
from app.phones import normalize_phone
from app.prepared import Prepared
from app.sarah.models import SarahState
from app.sarah.rules import (
    DEFAULT_STATE,
    clamp_score,
    merge_extracted,
    status_for_state,
    valid_temperature,
)
from app.sync.services import log_sync_failure

log = logging.getLogger(__name__)
states = SarahState.__table__  # type: ignore[attr-defined]
contacts = Contact.__table__  # type: ignore[attr-defined]
BOT_ACTOR = "sarah-bot"


class InvalidSarahBody(ValueError):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True, slots=True)
class SarahUpdate:
    contact_phone: str  # E.164
    state: str
    lead_score: int
    lead_temperature: str
    extracted_data: dict[str, Any]
    language: str
    message_count: int


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_phone(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidSarahBody({"contact_phone": "required, a phone number as text"})
    phone = normalize_phone(raw)
    if phone is None:
        raise InvalidSarahBody({"contact_phone": f"{raw!r} is not a valid phone number"})
    return phone


def parse_update(body: object) -> SarahUpdate:
    """The seed's POST body; missing optional fields take the seed's defaults."""
    if not isinstance(body, dict):
        raise InvalidSarahBody({"body": "must be a JSON object"})
    errors: dict[str, str] = {}
    phone: str | None = None
    try:
        phone = parse_phone(body.get("contact_phone"))
    except InvalidSarahBody as exc:
        errors.update(exc.fields)
    state = body.get("state") or DEFAULT_STATE["state"]
    if not isinstance(state, str) or len(state) > 40:
        errors["state"] = "must be text (at most 40 characters)"
    score = body.get("lead_score", 0)
    if score is None:
        score = 0
    if not _number(score):
        errors["lead_score"] = "must be a number"
    temperature = body.get("lead_temperature") or "cold"
    if not isinstance(temperature, str):
        errors["lead_temperature"] = "must be text"
    extracted = body.get("extracted_data")
    if extracted is None:
        extracted = {}
    if not isinstance(extracted, dict):
        errors["extracted_data"] = "must be an object"
    language = body.get("language") or "id"
    if not isinstance(language, str) or len(language) > 10:
        errors["language"] = "must be a language code such as 'id' or 'en'"
    count = body.get("message_count", 0)
    if count is None:
        count = 0
    if not _number(count) or count < 0:
        errors["message_count"] = "must be a whole number, 0 or more"
    if errors:
        raise InvalidSarahBody(errors)
    assert phone is not None
    return SarahUpdate(
        contact_phone=phone,
        state=state.strip(),
        lead_score=clamp_score(score),
        lead_temperature=valid_temperature(temperature),
        extracted_data=extracted,
        language=language.strip() or "id",
        message_count=int(count),
    )


async def get_state(session: AsyncSession, workspace_id: int, phone: str) -> dict[str, Any]:
    row = (
        await session.execute(
            select(states).where(
                states.c.workspace_id == workspace_id, states.c.contact_phone == phone
            )
        )
    ).first()
    if row is None:
        return {"contact_phone": phone, **DEFAULT_STATE, "extracted_data": {}}
    return {
        "contact_phone": row.contact_phone,
        "state": row.state,
        "lead_score": row.lead_score,
        "lead_temperature": row.lead_temperature,
        "extracted_data": row.extracted_data or {},
        "language": row.language,
        "message_count": row.message_count,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


@dataclass(slots=True)
class SyncResult:
    synced: bool
    reason: str | None = None
    contact_id: int | None = None
    changes: list[Change] = field(default_factory=list)


_STATE_VALUES = (
    "state",
    "lead_score",
    "lead_temperature",
    "extracted_data",
    "language",
    "message_count",
    "updated_at",
)


@lru_cache(maxsize=4)
def _upsert_state(dialect: str) -> Prepared:
    """Built once per dialect (see app/leads/statements.py for why)."""
    table_insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(states)
    stmt = table_insert.values(
        {c: bindparam(c) for c in ("workspace_id", "contact_phone", "created_at", *_STATE_VALUES)}
    )
    return Prepared(
        stmt.on_conflict_do_update(
            index_elements=["workspace_id", "contact_phone"],
            set_={c: stmt.excluded[c] for c in _STATE_VALUES},
        )
    )


def _save_state(conn: Connection, workspace_id: int, upd: SarahUpdate) -> None:
    now = utcnow()
    _upsert_state(conn.dialect.name).run(
        conn,
        {
            "workspace_id": workspace_id,
            "contact_phone": upd.contact_phone,
            "created_at": now,
            "state": upd.state,
            "lead_score": upd.lead_score,
            "lead_temperature": upd.lead_temperature,
            "extracted_data": upd.extracted_data,
            "language": upd.language,
            "message_count": upd.message_count,
            "updated_at": now,
        },
    )


_SYNC_COLUMNS = (
    contacts.c.id,
    contacts.c.status,
    contacts.c.status_source,
    contacts.c.score,
    contacts.c.temperature,
    contacts.c.phase,
    contacts.c.language,
    contacts.c.name,
    contacts.c.profile_name,
    contacts.c.username,
    contacts.c.phone_e164,
    contacts.c.business_type,
    contacts.c.location,
    contacts.c.business_duration,
    contacts.c.team_size,
    contacts.c.pain_points,
    contacts.c.goals,
    contacts.c.priority,
    contacts.c.urgency_level,
)


_SYNC_ROW = Prepared(
    select(*_SYNC_COLUMNS).where(contacts.c.id == bindparam("_id")).with_for_update()
)


def sync_to_lead(conn: Connection, workspace_id: int, upd: SarahUpdate) -> tuple[int, bool]:
    """Apply the bot's view to the lead; returns (contact id, whether anything changed)."""
    now = utcnow()
    found = find_or_create_contact(conn, workspace_id, LeadRef(phone_e164=upd.contact_phone), now)
    if found is None:
        raise LookupError("the lead could not be created")
    row = _SYNC_ROW.first(conn, {"_id": found.id})
    current = dict(row._mapping)
    values = merge_extracted(current, upd.extracted_data)
    history = []
    status = status_for_state(upd.state)
    if status and status != row.status and bot_may_set_status(row.status_source):
        values.update(
            status=status, status_source=BOT, status_changed_at=now, status_changed_by=BOT_ACTOR
        )
        history.append(
            history_row(workspace_id, row.id, "status", row.status, status, BOT, BOT_ACTOR)
        )
    if upd.lead_score != row.score:
        values["score"] = upd.lead_score
        history.append(
            history_row(workspace_id, row.id, "score", row.score, upd.lead_score, BOT, BOT_ACTOR)
        )
    if upd.lead_temperature != row.temperature:
        values["temperature"] = upd.lead_temperature
        # The hot-lead alert runs from here until a person replies or claims the lead.
        values["hot_since"] = now if upd.lead_temperature == "hot" else None
        history.append(
            history_row(
                workspace_id,
                row.id,
                "temperature",
                row.temperature,
                upd.lead_temperature,
                BOT,
                BOT_ACTOR,
            )
        )
    if upd.state != row.phase:
        values["phase"] = upd.state
    if upd.language != row.language:
        values["language"] = upd.language
    if not values:
        return row.id, False
    values["updated_at"] = now
    if SEARCH_FIELDS.intersection(values):
        # In the same UPDATE: a second one rewrote the row and each of its indexes again
        # (0.6 ms on PostgreSQL, for 4 in 10 of the bot's updates).
        values["search_text"] = search_text_for(
            **{field: values.get(field, current[field]) for field in SEARCH_FIELDS}
        )
    st.update_contact(frozenset(values), False).run(conn, {**values, "_id": row.id})
    record_history(conn, history)
    return row.id, True


class SarahService:
    def __init__(self, db: Database, broker: Broker) -> None:
        self.db = db
        self.broker = broker

    async def get(self, workspace_id: int, raw_phone: object) -> dict[str, Any]:
        phone = parse_phone(raw_phone)
        async with self.db.session() as session:
            return await get_state(session, workspace_id, phone)

    async def save(self, workspace_id: int, body: object) -> SyncResult:
        upd = parse_update(body)
        result = await self.db.run_write(
            lambda conn: save_and_sync(conn, workspace_id, upd, body),
            order=f"{workspace_id}:{upd.contact_phone}",
        )
        await self.broker.publish(result.changes)
        return result


def save_and_sync(
    conn: Connection, workspace_id: int, upd: SarahUpdate, body: object
) -> SyncResult:
    """Save the state; sync it onto the lead in a savepoint that a failure rolls back alone."""
    result = SyncResult(synced=False)
    _save_state(conn, workspace_id, upd)
    try:
        with savepoint(conn):
            contact_id, changed = sync_to_lead(conn, workspace_id, upd)
    except Exception as exc:  # the sync must never fail the state save
        log.warning("sarah sync failed for a lead: %s", type(exc).__name__)
        result.reason = f"{type(exc).__name__}: {exc}"[:500]
        log_sync_failure(
            conn,
            workspace_id,
            source="sarah",
            error=result.reason,
            contact_phone=upd.contact_phone,
            payload=body,
        )
        return result
    result.synced, result.contact_id = True, contact_id
    if changed:
        result.changes.append(add_change(conn, workspace_id, LEAD_CHANGED, contact_id))
    return result
