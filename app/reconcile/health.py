"""The health of a workspace's data feed: is the board still being fed, and is the worker alive?

A board that silently stopped updating is the worst failure a sales team can meet, so the board
header carries a small indicator (ok / amber / red, with the reason) computed by `feed_health`
from a few indexed queries, and /sync shows the whole picture (`sync_health`).

The judgement is `assess_feed`, a pure function of the figures, so its rules are in one place:

- red: no background worker ever seen, or its heartbeat is older than WORKER_RED_AFTER; nothing
  received for far longer than usual (see `silence_limits`);
- amber: the worker's heartbeat is late; nothing received for longer than usual, or nothing ever;
  webhook events whose processing failed (waiting for a retry, or given up in the last day);
  the latest reconciliation failed; unresolved sync failures.

"Usual" comes from the last day's traffic: the average gap between deliveries, times a factor,
clamped so a busy number turns amber after half an hour of silence and a quiet one after 12 h.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Integer, bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from app.db import Database, insert_on_conflict, utcnow
from app.i18n import DEFAULT_LANGUAGE, N_, current_language, translations
from app.ingest.models import WebhookInbox
from app.ingest.retry import MAX_ATTEMPTS
from app.prepared import Prepared
from app.reconcile.models import ReconciliationRun, WorkerHeartbeat
from app.reconcile.services import RunsSummary, humanize_duration, recent_runs, summarize_runs
from app.sync.models import SyncFailure
from app.workspaces.models import Workspace

inbox = WebhookInbox.__table__  # type: ignore[attr-defined]
heartbeats = WorkerHeartbeat.__table__  # type: ignore[attr-defined]
runs = ReconciliationRun.__table__  # type: ignore[attr-defined]
failures = SyncFailure.__table__  # type: ignore[attr-defined]

FeedState = Literal["ok", "amber", "red"]
_RANK: dict[str, int] = {"ok": 0, "amber": 1, "red": 2}

HEARTBEAT_SECONDS = 30  # how often the worker (or the in-process schedule) says it is alive
WORKER_AMBER_AFTER = timedelta(minutes=2)
WORKER_RED_AFTER = timedelta(minutes=10)
SILENCE_AMBER_FACTOR = 4
SILENCE_RED_FACTOR = 12
SILENCE_AMBER_RANGE = (timedelta(minutes=30), timedelta(hours=12))
SILENCE_RED_RANGE = (timedelta(hours=3), timedelta(hours=48))


Figures = tuple[tuple[str, int | timedelta], ...]


def _say(language: str, msgid: str, figures: Figures) -> str:
    """A feed message in `language`, its durations written in that language too."""
    values = {
        name: humanize_duration(value, language) if isinstance(value, timedelta) else value
        for name, value in figures
    }
    return translations(language).gettext(msgid) % values


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with the feed: the catalogue's message and the figures that go into it, so
    each reader gets it in their language (`text`), and APIs and logs in English (`message`)."""

    state: FeedState
    msgid: str
    figures: Figures = ()

    @property
    def message(self) -> str:
        return _say(DEFAULT_LANGUAGE, self.msgid, self.figures)

    @property
    def text(self) -> str:
        return _say(current_language.get(), self.msgid, self.figures)


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    name: str | None
    last_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """What the indicator shows, and the figures it was judged on."""

    workspace_id: int
    workspace_slug: str
    now: datetime
    last_webhook_at: datetime | None
    events_last_hour: int
    events_last_day: int
    inbox_backlog: int  # processing failed, will be retried
    inbox_failed: int  # processing failed MAX_ATTEMPTS times: given up
    inbox_failed_last_day: int
    oldest_unprocessed_at: datetime | None
    sync_failures_unresolved: int
    last_run_error: str | None  # the latest reconciliation's error (None: it went well)
    worker: WorkerStatus
    issues: tuple[Issue, ...] = field(default_factory=tuple)

    @property
    def state(self) -> FeedState:
        return self.issues[0].state if self.issues else "ok"

    @property
    def reason(self) -> str:
        """The headline, in English (APIs, logs)."""
        return self._headline().message

    @property
    def reason_text(self) -> str:
        """The headline in the reader's language (the indicator)."""
        return self._headline().text

    def _headline(self) -> Issue:
        if self.issues:
            return self.issues[0]
        if self.last_webhook_at is None:
            return Issue("ok", N_("receiving normally"))
        since = self.now - self.last_webhook_at
        if since < timedelta(minutes=1):
            return Issue("ok", N_("last webhook just now"))
        return Issue("ok", N_("last webhook %(since)s ago"), (("since", since),))

    @property
    def usual_gap(self) -> timedelta | None:
        return usual_gap(self.events_last_day)

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "issues": [{"state": i.state, "message": i.message} for i in self.issues],
        }


async def record_heartbeat(
    db: Database, name: str, *, now: datetime | None = None, details: str | None = None
) -> None:
    """Say that a worker (or the in-process schedule) is alive: one upserted row per name."""
    now = now or utcnow()
    values = {"last_seen_at": now, "details": details[:2000] if details else None}
    async with db.write() as session:
        await session.execute(
            insert_on_conflict(session, heartbeats)
            .values(name=name[:120], **values)
            .on_conflict_do_update(index_elements=["name"], set_=values)
        )


def usual_gap(events_last_day: int) -> timedelta | None:
    return timedelta(days=1) / events_last_day if events_last_day > 0 else None


def _clamp(value: timedelta, bounds: tuple[timedelta, timedelta]) -> timedelta:
    return max(bounds[0], min(bounds[1], value))


def silence_limits(events_last_day: int) -> tuple[timedelta, timedelta]:
    """(amber, red): how long without a delivery is longer than usual, and far longer."""
    gap = usual_gap(events_last_day)
    if gap is None:
        return SILENCE_AMBER_RANGE[1], SILENCE_RED_RANGE[1]
    return (
        _clamp(gap * SILENCE_AMBER_FACTOR, SILENCE_AMBER_RANGE),
        _clamp(gap * SILENCE_RED_FACTOR, SILENCE_RED_RANGE),
    )


def assess_feed(
    *,
    now: datetime,
    last_webhook_at: datetime | None,
    events_last_day: int,
    inbox_backlog: int,
    inbox_failed_last_day: int,
    sync_failures_unresolved: int,
    last_run_error: str | None,
    worker_last_seen_at: datetime | None,
) -> tuple[Issue, ...]:
    """Every problem with the feed, the worst first (an empty tuple: all is well)."""
    issues: list[Issue] = []
    if worker_last_seen_at is None:
        issues.append(Issue("red", N_("no background worker has run: start `leadboard worker`")))
    else:
        quiet = now - worker_last_seen_at
        if quiet > WORKER_RED_AFTER:
            stopped = N_("background worker stopped %(quiet)s ago")
            issues.append(Issue("red", stopped, (("quiet", quiet),)))
        elif quiet > WORKER_AMBER_AFTER:
            silent = N_("background worker silent for %(quiet)s")
            issues.append(Issue("amber", silent, (("quiet", quiet),)))
    if last_webhook_at is None:
        issues.append(Issue("amber", N_("no webhook received yet")))
    else:
        silence = now - last_webhook_at
        amber, red = silence_limits(events_last_day)
        gap = usual_gap(events_last_day)
        if silence > amber:
            state: FeedState = "red" if silence > red else "amber"
            if gap is None:
                quiet_feed = N_("nothing received for %(silence)s")
                issues.append(Issue(state, quiet_feed, (("silence", silence),)))
            else:
                usually = N_("nothing received for %(silence)s (usually every %(gap)s)")
                issues.append(Issue(state, usually, (("silence", silence), ("gap", gap))))
    if inbox_failed_last_day:
        n = inbox_failed_last_day
        given_up = (
            N_("%(n)s webhook event could not be processed (given up)")
            if n == 1
            else N_("%(n)s webhook events could not be processed (given up)")
        )
        issues.append(Issue("amber", given_up, (("n", n),)))
    if inbox_backlog:
        n = inbox_backlog
        retrying = (
            N_("%(n)s webhook event failed, retrying")
            if n == 1
            else N_("%(n)s webhook events failed, retrying")
        )
        issues.append(Issue("amber", retrying, (("n", n),)))
    if last_run_error:
        issues.append(Issue("amber", N_("the last reconciliation failed")))
    if sync_failures_unresolved:
        n = sync_failures_unresolved
        unresolved = (
            N_("%(n)s unresolved sync failure") if n == 1 else N_("%(n)s unresolved sync failures")
        )
        issues.append(Issue("amber", unresolved, (("n", n),)))
    return tuple(sorted(issues, key=lambda i: -_RANK[i.state]))


# The indicator's six small indexed queries, built once (a board page reads them every time).
_LAST_WEBHOOK = Prepared(
    select(inbox.c.received_at)
    .where(inbox.c.workspace_id == bindparam("ws"))
    .order_by(inbox.c.received_at.desc())
    .limit(1)
)
# Both counts walk the (workspace_id, received_at) index over the last day only.
_RECENT = Prepared(
    select(
        func.count(),
        func.coalesce(
            func.sum(case((inbox.c.received_at >= bindparam("hour_ago"), 1), else_=0)), 0
        ),
    ).where(inbox.c.workspace_id == bindparam("ws"), inbox.c.received_at >= bindparam("day_ago"))
)
# The indicator's estimate on busy days: when this many arrived in the last day, the usual gap is
# taken from the newest of them (an index walk of this many entries, whatever the day's volume).
RATE_SAMPLE = 500
_SAMPLE_START = Prepared(
    select(inbox.c.received_at)
    .where(inbox.c.workspace_id == bindparam("ws"), inbox.c.received_at >= bindparam("day_ago"))
    .order_by(inbox.c.received_at.desc())
    .offset(RATE_SAMPLE - 1)
    .limit(1)
)
# The unprocessed rows: the (processed_at, id) index holds them apart, and there are few.
_GIVEN_UP = inbox.c.attempts >= MAX_ATTEMPTS
_PENDING = Prepared(
    select(
        func.coalesce(func.sum(case((_GIVEN_UP, 0), else_=1)), 0),
        func.coalesce(func.sum(case((_GIVEN_UP, 1), else_=0)), 0),
        func.coalesce(
            func.sum(case((_GIVEN_UP & (inbox.c.received_at >= bindparam("day_ago")), 1), else_=0)),
            0,
        ),
        func.min(inbox.c.received_at),
    )
    # `+workspace_id`: the same test, through the unprocessed index only. SQLite without
    # statistics (a database grown since its last ANALYZE) walked the day's rows by
    # (workspace_id, received_at) instead: 80 ms at 100,000 a day (bench/board.py).
    .where(
        inbox.c.processed_at.is_(None),
        UnaryExpression(inbox.c.workspace_id, operator=custom_op("+"), type_=Integer())
        == bindparam("ws"),
    )
)
_UNRESOLVED = Prepared(
    select(func.count())
    .select_from(failures)
    .where(failures.c.workspace_id == bindparam("ws"), failures.c.resolved.is_(False))
)
_LAST_RUN_ERROR = Prepared(
    select(runs.c.error)
    .where(runs.c.workspace_id == bindparam("ws"))
    .order_by(runs.c.id.desc())
    .limit(1)
)
_LAST_HEARTBEAT = Prepared(
    select(heartbeats.c.name, heartbeats.c.last_seen_at)
    .order_by(heartbeats.c.last_seen_at.desc())
    .limit(1)
)


def _day_and_hour(conn: Connection, values: dict[str, Any], exact: bool) -> tuple[int, int]:
    """(deliveries in the last day, in the last hour); not exact: the day's as a rate estimated
    from the newest RATE_SAMPLE when there were more (the hour's then 0, not shown)."""
    if not exact:
        start = _SAMPLE_START.first(conn, values)
        if start is not None:
            span = max(values["now"] - start[0], timedelta(seconds=1))
            return max(RATE_SAMPLE, round(RATE_SAMPLE * (timedelta(days=1) / span))), 0
    recent = _RECENT.first(conn, values)
    return int(recent[0]), int(recent[1])


def feed_health(
    conn: Connection, workspace: Workspace, *, now: datetime | None = None, exact: bool = True
) -> FeedHealth:
    """The indicator's figures for one workspace.

    `exact=False` is for the indicator on every board page and its minute poll: counting a
    busy day's deliveries cost 25 ms on SQLite and 84 ms on PostgreSQL at 100,000 a day, on
    every full page; the estimate reads RATE_SAMPLE index entries and judges the same way (the
    limits are clamped to their minimums long before a day holds RATE_SAMPLE deliveries).
    """
    assert workspace.id is not None
    now = now or utcnow()
    ws = workspace.id
    values = {
        "ws": ws,
        "now": now,
        "day_ago": now - timedelta(days=1),
        "hour_ago": now - timedelta(hours=1),
    }
    last_webhook = _LAST_WEBHOOK.first(conn, values)
    last_webhook_at = last_webhook[0] if last_webhook is not None else None
    events_last_day, events_last_hour = _day_and_hour(conn, values, exact)
    pending = _PENDING.first(conn, values)
    unresolved = _UNRESOLVED.first(conn, values)[0]
    last_run = _LAST_RUN_ERROR.first(conn, values)
    last_run_error = last_run[0] if last_run is not None else None
    beat = _LAST_HEARTBEAT.first(conn, {})
    worker = WorkerStatus(
        name=beat.name if beat else None, last_seen_at=beat.last_seen_at if beat else None
    )
    issues = assess_feed(
        now=now,
        last_webhook_at=last_webhook_at,
        events_last_day=events_last_day,
        inbox_backlog=int(pending[0]),
        inbox_failed_last_day=int(pending[2]),
        sync_failures_unresolved=int(unresolved),
        last_run_error=last_run_error,
        worker_last_seen_at=worker.last_seen_at,
    )
    return FeedHealth(
        workspace_id=ws,
        workspace_slug=workspace.slug,
        now=now,
        last_webhook_at=last_webhook_at,
        events_last_hour=events_last_hour,
        events_last_day=events_last_day,
        inbox_backlog=int(pending[0]),
        inbox_failed=int(pending[1]),
        inbox_failed_last_day=int(pending[2]),
        oldest_unprocessed_at=pending[3],
        sync_failures_unresolved=int(unresolved),
        last_run_error=last_run_error,
        worker=worker,
        issues=issues,
    )


async def feed_for(
    db: Database, workspace: Workspace, *, now: datetime | None = None
) -> FeedHealth:
    """The indicator (`feed_health`, estimated on busy days) as a read of its own."""
    return await db.read(lambda conn: feed_health(conn, workspace, now=now, exact=False))


@dataclass(frozen=True, slots=True)
class SyncHealth:
    """Everything /sync and GET /api/sync/health show for one workspace."""

    feed: FeedHealth
    duplicates_last_day: int
    runs: list[ReconciliationRun]
    runs_summary: RunsSummary
    failed_events: list[dict[str, Any]]
    sync_failures: list[dict[str, Any]]
    workers: list[WorkerStatus]
    reconcile_interval_minutes: int

    def as_dict(self) -> dict[str, Any]:
        feed = self.feed
        summary = self.runs_summary
        return {
            "workspace": {"id": feed.workspace_id, "slug": feed.workspace_slug},
            "generated_at": _iso(feed.now),
            "feed": feed.as_dict(),
            "webhooks": {
                "last_received_at": _iso(feed.last_webhook_at),
                "events_last_hour": feed.events_last_hour,
                "events_last_day": feed.events_last_day,
                "duplicates_dropped_last_day": self.duplicates_last_day,
            },
            "inbox": {
                "backlog": feed.inbox_backlog,
                "failed": feed.inbox_failed,
                "max_attempts": MAX_ATTEMPTS,
                "oldest_unprocessed_at": _iso(feed.oldest_unprocessed_at),
                "failures": [_jsonable(e) for e in self.failed_events],
            },
            "sync_failures": {
                "unresolved": feed.sync_failures_unresolved,
                "recent": [_jsonable(f) for f in self.sync_failures],
            },
            "reconciliation": {
                "interval_minutes": self.reconcile_interval_minutes,
                "summary": None
                if summary.runs == 0
                else {
                    "last_run": _iso(summary.last_run_at),
                    "last_error": summary.last_error,
                    "avg_stale": summary.avg_stale,
                    "total_flagged": summary.total_flagged,
                    "runs": summary.runs,
                },
                "runs": [_run_dict(r) for r in self.runs],
            },
            "worker": {
                "last_seen_at": _iso(feed.worker.last_seen_at),
                "name": feed.worker.name,
                "all": [
                    {"name": w.name, "last_seen_at": _iso(w.last_seen_at)} for w in self.workers
                ],
            },
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


def _run_dict(run: ReconciliationRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "checked": run.checked,
        "stale": run.stale,
        "flagged": run.flagged,
        "duration_ms": run.duration_ms,
        "error": run.error,
    }


async def sync_health(
    session: AsyncSession,
    workspace: Workspace,
    *,
    now: datetime | None = None,
    runs_limit: int = 10,
    list_limit: int = 20,
    reconcile_interval_minutes: int = 60,
) -> SyncHealth:
    """The feed plus the lists /sync shows: recent runs, failed events, unresolved failures."""
    assert workspace.id is not None
    feed = await session.run_sync(lambda s: feed_health(s.connection(), workspace, now=now))
    ws = workspace.id
    duplicates = (
        await session.execute(
            select(func.coalesce(func.sum(inbox.c.duplicates), 0)).where(
                inbox.c.workspace_id == ws, inbox.c.received_at >= feed.now - timedelta(days=1)
            )
        )
    ).scalar_one()
    latest = await recent_runs(session, ws, runs_limit)
    failed_rows = await session.execute(
        select(
            inbox.c.id,
            inbox.c.provider,
            inbox.c.event_type,
            inbox.c.received_at,
            inbox.c.attempts,
            inbox.c.error,
        )
        .where(inbox.c.processed_at.is_(None), inbox.c.workspace_id == ws)
        .order_by(inbox.c.id.desc())
        .limit(list_limit)
    )
    failed_events = [
        {
            "id": r.id,
            "provider": r.provider,
            "event_type": r.event_type,
            "received_at": r.received_at,
            "attempts": r.attempts,
            "gave_up": r.attempts >= MAX_ATTEMPTS,
            "error": r.error,
        }
        for r in failed_rows
    ]
    failure_rows = await session.execute(
        select(
            failures.c.id,
            failures.c.source,
            failures.c.contact_phone,
            failures.c.error,
            failures.c.created_at,
        )
        .where(failures.c.workspace_id == ws, failures.c.resolved.is_(False))
        .order_by(failures.c.id.desc())
        .limit(list_limit)
    )
    sync_failures = [
        {
            "id": r.id,
            "source": r.source,
            "contact_phone": r.contact_phone,
            "error": r.error,
            "created_at": r.created_at,
        }
        for r in failure_rows
    ]
    workers = [
        WorkerStatus(name=r.name, last_seen_at=r.last_seen_at)
        for r in await session.execute(
            select(heartbeats.c.name, heartbeats.c.last_seen_at)
            .order_by(heartbeats.c.last_seen_at.desc())
            .limit(20)
        )
    ]
    return SyncHealth(
        feed=feed,
        duplicates_last_day=int(duplicates),
        runs=latest,
        runs_summary=summarize_runs(latest),
        failed_events=failed_events,
        sync_failures=sync_failures,
        workers=workers,
        reconcile_interval_minutes=reconcile_interval_minutes,
    )
