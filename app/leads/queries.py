"""Reads for the board: one page of lead rows (keyset on last activity), one row, the stats."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.leads.models import Contact
from app.phones import display_phone

contacts = Contact.__table__  # type: ignore[attr-defined]

_ROW_COLUMNS = (
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
)


@dataclass(frozen=True, slots=True)
class LeadRow:
    id: int
    display_name: str
    phone: str
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

    @property
    def phase_label(self) -> str:
        return (self.phase or "").replace("_", " ")

    @property
    def sort_key(self) -> str:
        """What the live board compares to place a row: later activity sorts first."""
        return f"{self.last_activity_at.isoformat()}|{self.id:012d}"

    @property
    def initials(self) -> str:
        parts = [p for p in self.display_name.replace("+", "").split() if p[:1].isalnum()]
        return "".join(p[0] for p in parts[:2]).upper() or "?"


def _row(r: object) -> LeadRow:
    phone = display_phone(r.phone_e164)  # type: ignore[attr-defined]
    name = r.name or r.profile_name or r.username or phone or r.bsuid or "Unknown"  # type: ignore[attr-defined]
    return LeadRow(
        id=r.id,  # type: ignore[attr-defined]
        display_name=name,
        phone=phone or (r.bsuid or ""),  # type: ignore[attr-defined]
        status=r.status,  # type: ignore[attr-defined]
        temperature=r.temperature,  # type: ignore[attr-defined]
        score=r.score,  # type: ignore[attr-defined]
        preview=r.last_message_preview or "",  # type: ignore[attr-defined]
        preview_direction=r.last_message_direction,  # type: ignore[attr-defined]
        message_count=r.message_count,  # type: ignore[attr-defined]
        last_activity_at=r.last_activity_at,  # type: ignore[attr-defined]
        last_inbound_at=r.last_inbound_at,  # type: ignore[attr-defined]
        phase=r.phase,  # type: ignore[attr-defined]
        business_type=r.business_type,  # type: ignore[attr-defined]
        location=r.location,  # type: ignore[attr-defined]
        pain_points=tuple(r.pain_points or ()),  # type: ignore[attr-defined]
    )


def encode_cursor(row: LeadRow) -> str:
    raw = f"{row.last_activity_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, ident = raw.partition("|")
        return datetime.fromisoformat(at), int(ident)
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True, slots=True)
class BoardPage:
    rows: list[LeadRow]
    next_cursor: str | None
    is_first: bool


async def board_page(
    session: AsyncSession, workspace_id: int, *, cursor: str | None, page_size: int
) -> BoardPage:
    """Leads by latest activity; keyset pagination, so page 1,000 costs what page 1 costs."""
    query = select(*_ROW_COLUMNS).where(contacts.c.workspace_id == workspace_id)
    position = decode_cursor(cursor)
    if position is not None:
        at, ident = position
        query = query.where(
            or_(
                contacts.c.last_activity_at < at,
                and_(contacts.c.last_activity_at == at, contacts.c.id < ident),
            )
        )
    query = query.order_by(contacts.c.last_activity_at.desc(), contacts.c.id.desc()).limit(
        page_size + 1
    )
    rows = [_row(r) for r in await session.execute(query)]
    more = len(rows) > page_size
    rows = rows[:page_size]
    return BoardPage(
        rows=rows,
        next_cursor=encode_cursor(rows[-1]) if more and rows else None,
        is_first=position is None,
    )


async def lead_row(session: AsyncSession, workspace_id: int, contact_id: int) -> LeadRow | None:
    found = (
        await session.execute(
            select(*_ROW_COLUMNS).where(
                contacts.c.workspace_id == workspace_id, contacts.c.id == contact_id
            )
        )
    ).first()
    return _row(found) if found is not None else None


@dataclass(frozen=True, slots=True)
class BoardStats:
    total: int
    hot: int
    active_today: int


async def board_stats(session: AsyncSession, workspace_id: int, since: datetime) -> BoardStats:
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(contacts.c.temperature == "hot"),
                func.count().filter(contacts.c.last_activity_at >= since),
            ).where(contacts.c.workspace_id == workspace_id)
        )
    ).one()
    return BoardStats(total=row[0], hot=row[1], active_today=row[2])


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
