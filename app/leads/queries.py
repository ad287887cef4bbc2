"""Reads for the board: lead rows (the one row partial's data), one row, the stats header."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.leads.models import Contact
from app.phones import display_phone

contacts = Contact.__table__  # type: ignore[attr-defined]
users = User.__table__  # type: ignore[attr-defined]
REPLY_WINDOW = timedelta(hours=24)

ROW_COLUMNS = (
    contacts.c.id,
    contacts.c.name,
    contacts.c.profile_name,
    contacts.c.username,
    contacts.c.phone_e164,
    contacts.c.bsuid,
    contacts.c.status,
    contacts.c.temperature,
    contacts.c.score,
    contacts.c.last_message_preview,
    contacts.c.last_message_direction,
    contacts.c.message_count,
    contacts.c.last_activity_at,
    contacts.c.last_inbound_at,
    contacts.c.phase,
    contacts.c.business_type,
    contacts.c.location,
    contacts.c.pain_points,
    contacts.c.owner_user_id,
    contacts.c.hot_since,
    contacts.c.stale_flagged_at,
    contacts.c.needs_reply,
    contacts.c.created_at,
    users.c.name.label("owner_name"),
)
_ROW_WIDTH = len(ROW_COLUMNS)
ROW_FROM = contacts.outerjoin(users, users.c.id == contacts.c.owner_user_id)


def row_select(*extra: Any) -> Any:
    return select(*ROW_COLUMNS, *extra).select_from(ROW_FROM)


@dataclass(frozen=True, slots=True)
class LeadRow:
    id: int
    display_name: str
    phone_e164: str | None
    bsuid: str | None  # WhatsApp's business-scoped id, for a lead whose phone is hidden
    status: str
    temperature: str | None
    score: int | None
    preview: str
    preview_direction: str | None
    message_count: int
    last_activity_at: datetime
    last_inbound_at: datetime | None
    phase: str | None = None
    business_type: str | None = None
    location: str | None = None
    pain_points: tuple[str, ...] = ()
    owner_id: int | None = None
    owner_name: str | None = None
    hot_since: datetime | None = None
    stale_flagged_at: datetime | None = None
    needs_reply: bool = False
    created_at: datetime | None = None

    @property
    def phase_label(self) -> str:
        return (self.phase or "").replace("_", " ")

    @property
    def sort_key(self) -> str:
        """What the live board compares to place a row: later activity sorts first."""
        return f"{self.last_activity_at.isoformat()}|{self.id:012d}"

    @property
    def phone(self) -> str:
        """How the board shows the number ("+62 812-3456-7890"), or the hidden phone's id."""
        return display_phone(self.phone_e164) or self.bsuid or ""

    @property
    def named(self) -> bool:
        """Known by a name (else the board shows the phone once, as the title)."""
        return self.display_name != self.phone

    @property
    def initials(self) -> str:
        if not self.named:
            return "#"
        parts = [p for p in self.display_name.split() if p[:1].isalnum()]
        return "".join(p[0] for p in parts[:2]).upper() or "?"

    @property
    def is_stale(self) -> bool:
        """Flagged by reconciliation and quiet since."""
        return self.stale_flagged_at is not None and self.stale_flagged_at >= self.last_activity_at

    @property
    def reply_window_ends(self) -> datetime | None:
        """WhatsApp's 24-hour customer-service window, from their last message."""
        return self.last_inbound_at + REPLY_WINDOW if self.last_inbound_at else None


def to_lead_row(r: Any) -> LeadRow:
    """A row of row_select() (ROW_COLUMNS first, in order) as a LeadRow. Unpacked by position:
    reading two dozen attributes of a database row by name costs more than the whole query."""
    (
        id_,
        name,
        profile_name,
        username,
        phone_e164,
        bsuid,
        status,
        temperature,
        score,
        preview,
        preview_direction,
        message_count,
        last_activity_at,
        last_inbound_at,
        phase,
        business_type,
        location,
        pain_points,
        owner_id,
        hot_since,
        stale_flagged_at,
        needs_reply,
        created_at,
        owner_name,
    ) = r[:_ROW_WIDTH]
    return LeadRow(
        id=id_,
        # The phone is formatted only when it stands in for a name (tens of µs each).
        display_name=name
        or profile_name
        or username
        or display_phone(phone_e164)
        or bsuid
        or "Unknown",
        phone_e164=phone_e164,
        bsuid=bsuid,
        status=status,
        temperature=temperature,
        score=score,
        preview=preview or "",
        preview_direction=preview_direction,
        message_count=message_count,
        last_activity_at=last_activity_at,
        last_inbound_at=last_inbound_at,
        phase=phase,
        business_type=business_type,
        location=location,
        pain_points=tuple(pain_points or ()),
        owner_id=owner_id,
        owner_name=owner_name,
        hot_since=hot_since,
        stale_flagged_at=stale_flagged_at,
        needs_reply=bool(needs_reply),
        created_at=created_at,
    )


def lead_row(conn: Connection, workspace_id: int, contact_id: int) -> LeadRow | None:
    found = conn.execute(
        row_select().where(contacts.c.workspace_id == workspace_id, contacts.c.id == contact_id)
    ).first()
    return to_lead_row(found) if found is not None else None


_DETAIL_COLUMNS = (
    contacts.c.name,
    contacts.c.profile_name,
    contacts.c.username,
    contacts.c.phone_e164,
    contacts.c.bsuid,
    contacts.c.business_type,
    contacts.c.location,
    contacts.c.business_duration,
    contacts.c.team_size,
    contacts.c.pain_points,
    contacts.c.goals,
    contacts.c.priority,
    contacts.c.urgency_level,
    contacts.c.language,
    contacts.c.phase,
    contacts.c.status_source,
    contacts.c.status_changed_at,
    contacts.c.status_changed_by,
    contacts.c.created_at,
    contacts.c.last_contact_at,
)


def lead_details(conn: Connection, workspace_id: int, contact_id: int) -> dict[str, Any]:
    """Everything the bot extracted and where the status came from (the lead page's side)."""
    row = conn.execute(
        select(*_DETAIL_COLUMNS).where(
            contacts.c.workspace_id == workspace_id, contacts.c.id == contact_id
        )
    ).one()
    return dict(row._mapping)


@dataclass(frozen=True, slots=True)
class BoardStats:
    total: int
    hot: int
    warm: int
    lukewarm: int
    cold: int
    average_score: float | None
    new_today: int
    needs_reply: int


def board_stats(conn: Connection, workspace_id: int, today_start: datetime) -> BoardStats:
    """The header, as four queries that each stay inside one index (no table lookups)."""
    c = contacts.c
    ws = c.workspace_id == workspace_id
    per_temperature = {
        t: n
        for t, n in conn.execute(
            select(c.temperature, func.count()).where(ws).group_by(c.temperature)
        )
    }
    needs_reply = conn.execute(select(func.count()).where(ws, c.needs_reply.is_(True))).scalar_one()
    new_today = conn.execute(
        select(func.count()).where(ws, c.created_at >= today_start)
    ).scalar_one()
    # avg over coalesce(score, -1) >= 0 reads the score index alone (unscored leads are -1).
    score_key = func.coalesce(c.score, literal_column("-1"))
    average = conn.execute(select(func.avg(score_key)).where(ws, score_key >= 0)).scalar()
    return BoardStats(
        total=sum(per_temperature.values()),
        hot=per_temperature.get("hot", 0),
        warm=per_temperature.get("warm", 0),
        lukewarm=per_temperature.get("lukewarm", 0),
        cold=per_temperature.get("cold", 0),
        average_score=round(float(average), 1) if average is not None else None,
        new_today=new_today,
        needs_reply=needs_reply,
    )


_API_COLUMNS = (
    contacts.c.id,
    contacts.c.name,
    contacts.c.profile_name,
    contacts.c.phone_e164,
    contacts.c.bsuid,
    contacts.c.status,
    contacts.c.status_source,
    contacts.c.temperature,
    contacts.c.score,
    contacts.c.phase,
    contacts.c.business_type,
    contacts.c.location,
    contacts.c.pain_points,
    contacts.c.language,
    contacts.c.message_count,
    contacts.c.last_message_preview,
    contacts.c.last_activity_at,
    contacts.c.created_at,
)


async def list_leads(
    session: AsyncSession,
    workspace_id: int,
    *,
    temperature: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[dict[str, object]]:
    """The seed dashboard's lead list: filtered, highest score first, then latest activity."""
    query = select(*_API_COLUMNS).where(contacts.c.workspace_id == workspace_id)
    if temperature:
        query = query.where(contacts.c.temperature == temperature)
    if status:
        query = query.where(contacts.c.status == status)
    query = query.order_by(
        contacts.c.score.desc().nulls_last(),
        contacts.c.last_activity_at.desc(),
        contacts.c.id.desc(),
    ).limit(max(1, min(limit, 500)))
    out = []
    for row in await session.execute(query):
        item = dict(row._mapping)
        item["display_name"] = (
            item["name"] or item["profile_name"] or item["phone_e164"] or item["bsuid"]
        )
        for key in ("last_activity_at", "created_at"):
            item[key] = item[key].isoformat() if item[key] else None
        out.append(item)
    return out


async def lead_stats(session: AsyncSession, workspace_id: int) -> dict[str, object]:
    """Totals per temperature and status and the average score (scored leads only)."""
    where = contacts.c.workspace_id == workspace_id
    by_temperature = {
        (t or "unscored"): n
        for t, n in await session.execute(
            select(contacts.c.temperature, func.count())
            .where(where)
            .group_by(contacts.c.temperature)
        )
    }
    by_status = {
        s: n
        for s, n in await session.execute(
            select(contacts.c.status, func.count()).where(where).group_by(contacts.c.status)
        )
    }
    average = (await session.execute(select(func.avg(contacts.c.score)).where(where))).scalar()
    return {
        "total": sum(by_status.values()),
        "by_temperature": {t: by_temperature.get(t, 0) for t in ("hot", "warm", "lukewarm", "cold")}
        | ({"unscored": by_temperature["unscored"]} if "unscored" in by_temperature else {}),
        "by_status": {
            s: by_status.get(s, 0)
            for s in ("new", "qualified", "contacted", "converted", "archived")
        },
        "average_score": round(float(average), 1) if average is not None else None,
    }
