"""Reconciliation: find leads that went quiet, flag each with a note that says why, record the run.

Webhooks can fail silently; reconciliation is the safety net. The rules live here and nowhere else:

- only workspaces with a Kapso phone number configured are reconciled (the others have no feed);
- a lead is stale when its last activity is older than the workspace's threshold (default 1 h)
  and its status is neither archived nor converted;
- a stale lead is flagged at most once per 24 h, with a note giving the most specific reason;
- a run flags at most the workspace's flag limit (default 50), most recently gone quiet first, so
  every lead is flagged when it crosses the threshold even in a workspace with a long dead tail;
- every run is recorded per workspace (checked, stale, flagged, duration, error), and one failing
  workspace never stops the others.

Memory stays flat whatever the number of leads: the counts are SQL aggregates and the candidates
come from the (workspace_id, last_activity_at, id) index with a LIMIT. The flagging is one
conditional UPDATE ... RETURNING that re-checks every rule inside the write transaction, so a lead
that received a message meanwhile, or that another worker flagged first, is never flagged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database, utcnow
from app.i18n import DEFAULT_LANGUAGE, N_, translations
from app.leads.models import Contact
from app.live.broker import Broker
from app.live.outbox import Change, add_changes
from app.notes.models import Note
from app.reconcile.models import ReconciliationRun
from app.workspaces.models import Workspace

log = logging.getLogger(__name__)

contacts = Contact.__table__  # type: ignore[attr-defined]
notes = Note.__table__  # type: ignore[attr-defined]
runs = ReconciliationRun.__table__  # type: ignore[attr-defined]
workspaces = Workspace.__table__  # type: ignore[attr-defined]

EXCLUDED_STATUSES: tuple[str, ...] = ("archived", "converted")
FLAG_COOLDOWN = timedelta(hours=24)
QUALIFYING_TOO_LONG = timedelta(hours=24)
AUTHOR_NAME = "reconciliation"
NOTE_KIND = "stale"


def humanize_duration(delta: timedelta, language: str = DEFAULT_LANGUAGE) -> str:
    """'45 min', '5 h', '3 d' (in `language`): rounded down, so a reason never overstates how
    long it has been. Notes stored in the database are in English, the default."""
    say = translations(language).gettext
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return say(N_("%(n)s min")) % {"n": minutes}
    hours = minutes // 60
    if hours < 48:
        return say(N_("%(n)s h")) % {"n": hours}
    return say(N_("%(n)s d")) % {"n": hours // 24}


def stale_reason(
    *,
    now: datetime,
    threshold: timedelta,
    last_activity_at: datetime,
    status: str,
    temperature: str | None,
    phase: str | None,
    status_changed_at: datetime | None,
    last_inbound_at: datetime | None,
    last_contact_at: datetime | None,
) -> str:
    """The most specific reason a stale lead needs attention, in words a salesperson reads."""
    waiting_on_us = last_inbound_at is not None and (
        last_contact_at is None or last_inbound_at > last_contact_at
    )
    if temperature == "hot" and waiting_on_us and last_inbound_at is not None:
        waited = now - last_inbound_at
        if waited >= threshold:
            return f"hot, no reply from us for {humanize_duration(waited)}"
    if status == "qualified" and status_changed_at is not None:
        stuck = now - status_changed_at
        if stuck >= QUALIFYING_TOO_LONG:
            where = (phase or "").replace("_", " ").strip() or "qualifying"
            return f"in {where} for {humanize_duration(stuck)}"
    return f"no activity for {humanize_duration(now - last_activity_at)}"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one reconciliation of one workspace did (also stored as a reconciliation_runs row)."""

    workspace_id: int
    workspace_slug: str
    started_at: datetime
    checked: int = 0
    stale: int = 0
    flagged: int = 0
    duration_ms: int = 0
    error: str | None = None
    run_id: int | None = None
    flagged_ids: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["flagged_ids"] = list(self.flagged_ids)
        return out


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """A reconciliation of every eligible workspace."""

    runs: tuple[RunSummary, ...] = field(default_factory=tuple)
    duration_ms: int = 0

    @property
    def checked(self) -> int:
        return sum(r.checked for r in self.runs)

    @property
    def stale(self) -> int:
        return sum(r.stale for r in self.runs)

    @property
    def flagged(self) -> int:
        return sum(r.flagged for r in self.runs)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.runs if r.error is not None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "workspaces": len(self.runs),
            "checked": self.checked,
            "stale": self.stale,
            "flagged": self.flagged,
            "failed": self.failed,
            "duration_ms": self.duration_ms,
            "runs": [r.as_dict() for r in self.runs],
        }


def _active(now: datetime, threshold: timedelta) -> list[Any]:
    """The stale rule as SQL: quiet for longer than the threshold, still in play."""
    return [
        contacts.c.last_activity_at < now - threshold,
        contacts.c.status.not_in(EXCLUDED_STATUSES),
    ]


def _flaggable(now: datetime, cooldown: timedelta) -> Any:
    return or_(contacts.c.stale_flagged_at.is_(None), contacts.c.stale_flagged_at <= now - cooldown)


async def _count_and_pick(
    session: AsyncSession,
    workspace_id: int,
    *,
    now: datetime,
    threshold: timedelta,
    cooldown: timedelta,
    limit: int,
) -> tuple[int, int, list[int]]:
    in_ws = contacts.c.workspace_id == workspace_id
    checked = (
        await session.execute(select(func.count()).select_from(contacts).where(in_ws))
    ).scalar_one()
    stale = (
        await session.execute(
            select(func.count()).select_from(contacts).where(in_ws, *_active(now, threshold))
        )
    ).scalar_one()
    if stale == 0 or limit <= 0:
        return int(checked), int(stale), []
    # Walk the board index backwards from the threshold: the most recently gone quiet first.
    candidates = await session.execute(
        select(contacts.c.id)
        .where(in_ws, *_active(now, threshold), _flaggable(now, cooldown))
        .order_by(contacts.c.last_activity_at.desc(), contacts.c.id.desc())
        .limit(limit)
    )
    return int(checked), int(stale), [int(i) for i in candidates.scalars()]


async def _flag(
    session: AsyncSession,
    workspace_id: int,
    ids: Sequence[int],
    *,
    now: datetime,
    threshold: timedelta,
    cooldown: timedelta,
) -> tuple[list[int], list[Change]]:
    """Flag the candidates that still match every rule; a note and a change event for each."""
    flagged = await session.execute(
        update(contacts)
        .where(
            contacts.c.workspace_id == workspace_id,
            contacts.c.id.in_(list(ids)),
            *_active(now, threshold),
            _flaggable(now, cooldown),
        )
        .values(stale_flagged_at=now)
        .returning(
            contacts.c.id,
            contacts.c.last_activity_at,
            contacts.c.status,
            contacts.c.temperature,
            contacts.c.phase,
            contacts.c.status_changed_at,
            contacts.c.last_inbound_at,
            contacts.c.last_contact_at,
        )
    )
    rows = sorted(flagged.all(), key=lambda r: (r.last_activity_at, r.id), reverse=True)
    if not rows:
        return [], []
    await session.execute(
        insert(notes),
        [
            {
                "workspace_id": workspace_id,
                "contact_id": r.id,
                "author_kind": "system",
                "author_name": AUTHOR_NAME,
                "user_id": None,
                "kind": NOTE_KIND,
                "body": stale_reason(
                    now=now,
                    threshold=threshold,
                    last_activity_at=r.last_activity_at,
                    status=r.status,
                    temperature=r.temperature,
                    phase=r.phase,
                    status_changed_at=r.status_changed_at,
                    last_inbound_at=r.last_inbound_at,
                    last_contact_at=r.last_contact_at,
                ),
                "created_at": now,
            }
            for r in rows
        ],
    )
    changes = await _record_changes(session, workspace_id, [int(r.id) for r in rows])
    return [int(r.id) for r in rows], changes


async def _record_changes(
    session: AsyncSession, workspace_id: int, contact_ids: list[int]
) -> list[Change]:
    return await session.run_sync(
        lambda sync: add_changes(sync.connection(), workspace_id, contact_ids)
    )


async def _record_run(session: AsyncSession, summary: RunSummary, finished_at: datetime) -> int:
    result = await session.execute(
        insert(runs)
        .values(
            workspace_id=summary.workspace_id,
            started_at=summary.started_at,
            finished_at=finished_at,
            checked=summary.checked,
            stale=summary.stale,
            flagged=summary.flagged,
            duration_ms=summary.duration_ms,
            error=summary.error,
        )
        .returning(runs.c.id)
    )
    return int(result.scalar_one())


def _finished(now: datetime, summary: RunSummary) -> datetime:
    return now + timedelta(milliseconds=summary.duration_ms)


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


async def reconcile_workspace(
    db: Database,
    workspace: Workspace,
    *,
    broker: Broker | None = None,
    now: datetime | None = None,
    cooldown: timedelta = FLAG_COOLDOWN,
) -> RunSummary:
    """Reconcile one workspace and record the run. A failure rolls the flagging back and is
    recorded as the run's error (and logged) instead of raising, so the caller goes on with the
    next workspace; only a failure to record even that propagates."""
    assert workspace.id is not None
    now = now or utcnow()
    threshold = timedelta(minutes=max(1, workspace.stale_threshold_minutes))
    limit = max(0, workspace.reconcile_flag_limit)
    started = time.perf_counter()
    checked = stale = 0
    try:
        async with db.session() as session:
            checked, stale, candidates = await _count_and_pick(
                session,
                workspace.id,
                now=now,
                threshold=threshold,
                cooldown=cooldown,
                limit=limit,
            )
        async with db.write() as session:
            ids: list[int] = []
            changes: list[Change] = []
            if candidates:
                ids, changes = await _flag(
                    session,
                    workspace.id,
                    candidates,
                    now=now,
                    threshold=threshold,
                    cooldown=cooldown,
                )
            summary = RunSummary(
                workspace_id=workspace.id,
                workspace_slug=workspace.slug,
                started_at=now,
                checked=checked,
                stale=stale,
                flagged=len(ids),
                duration_ms=_elapsed_ms(started),
                flagged_ids=tuple(ids),
            )
            run_id = await _record_run(session, summary, _finished(now, summary))
    except Exception as exc:  # recorded with the run; the next workspace goes on regardless
        log.exception("reconciliation of workspace %s failed", workspace.slug)
        return await _record_failure(db, workspace, now, checked, stale, started, exc)
    if broker is not None and changes:
        await broker.publish(changes)
    log.info(
        "reconciled %s: checked %d, stale %d, flagged %d in %d ms",
        workspace.slug,
        summary.checked,
        summary.stale,
        summary.flagged,
        summary.duration_ms,
    )
    return replace(summary, run_id=run_id)


async def _record_failure(
    db: Database,
    workspace: Workspace,
    now: datetime,
    checked: int,
    stale: int,
    started: float,
    exc: BaseException,
) -> RunSummary:
    assert workspace.id is not None
    summary = RunSummary(
        workspace_id=workspace.id,
        workspace_slug=workspace.slug,
        started_at=now,
        checked=checked,
        stale=stale,
        flagged=0,
        duration_ms=_elapsed_ms(started),
        error=f"{type(exc).__name__}: {exc}"[:2000],
    )
    async with db.write() as session:
        run_id = await _record_run(session, summary, _finished(now, summary))
    return replace(summary, run_id=run_id)


async def reconcilable_workspaces(session: AsyncSession) -> list[Workspace]:
    """Workspaces with a Kapso phone number configured: the others have no feed to reconcile."""
    result = await session.execute(
        select(Workspace)
        .where(
            workspaces.c.kapso_phone_number_id.is_not(None),
            workspaces.c.kapso_phone_number_id != "",
        )
        .order_by(workspaces.c.id)
    )
    return list(result.scalars())


async def reconcile_all(
    db: Database,
    broker: Broker | None = None,
    *,
    now: datetime | None = None,
    cooldown: timedelta = FLAG_COOLDOWN,
) -> ReconcileReport:
    """Reconcile every workspace with a Kapso number; one failing workspace never stops the rest."""
    now = now or utcnow()
    started = time.perf_counter()
    async with db.session() as session:
        targets = await reconcilable_workspaces(session)
    summaries: list[RunSummary] = []
    for workspace in targets:
        try:
            summaries.append(
                await reconcile_workspace(db, workspace, broker=broker, now=now, cooldown=cooldown)
            )
        except Exception as exc:  # even recording the failure failed: log it, go on
            log.exception("reconciliation of workspace %s could not be recorded", workspace.slug)
            assert workspace.id is not None
            summaries.append(
                RunSummary(
                    workspace_id=workspace.id,
                    workspace_slug=workspace.slug,
                    started_at=now,
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                )
            )
    report = ReconcileReport(runs=tuple(summaries), duration_ms=_elapsed_ms(started))
    log.info(
        "reconciliation: %d workspaces, %d checked, %d stale, %d flagged, %d failed in %d ms",
        len(report.runs),
        report.checked,
        report.stale,
        report.flagged,
        report.failed,
        report.duration_ms,
    )
    return report


@dataclass(frozen=True, slots=True)
class RunsSummary:
    """The seed's getSyncHealth summary over the latest runs of one workspace."""

    runs: int
    last_run_at: datetime | None
    last_error: str | None
    avg_stale: int
    total_flagged: int


async def recent_runs(
    session: AsyncSession, workspace_id: int, limit: int = 10
) -> list[ReconciliationRun]:
    result = await session.execute(
        select(ReconciliationRun)
        .where(runs.c.workspace_id == workspace_id)
        .order_by(runs.c.id.desc())
        .limit(max(1, min(limit, 200)))
    )
    return list(result.scalars())


def summarize_runs(latest_first: Sequence[ReconciliationRun]) -> RunsSummary:
    if not latest_first:
        return RunsSummary(runs=0, last_run_at=None, last_error=None, avg_stale=0, total_flagged=0)
    last = latest_first[0]
    return RunsSummary(
        runs=len(latest_first),
        last_run_at=last.started_at,
        last_error=last.error,
        avg_stale=round(sum(r.stale for r in latest_first) / len(latest_first)),
        total_flagged=sum(r.flagged for r in latest_first),
    )
