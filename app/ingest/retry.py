"""Retrying webhook deliveries whose processing failed.

A delivery whose processing failed is kept in the inbox unprocessed (processed_at NULL), with its
error and the number of attempts made. The retry job re-parses the stored raw body and applies it
exactly as the webhook request would have (app.ingest.services.apply_delivery), in one
transaction with marking the row processed, then publishes the change events after the commit.

Attempts are bounded (MAX_ATTEMPTS, the request's own attempt included) and spaced out
exponentially from the moment the delivery was received: attempt n+1 is due
BACKOFF_BASE * (4**n - 1) / 3 after receipt, i.e. 1, 5, 21 and 85 minutes, so a database outage of
about an hour is ridden out. A failed retry keeps the latest error; after the last attempt the row
stays visible on /sync as given up. Rows are claimed with a conditional UPDATE, so a retry never
applies a delivery that a provider's redelivery (or another worker) completed meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database, utcnow
from app.ingest.kapso import parse_kapso
from app.ingest.meta import parse_meta
from app.ingest.models import WebhookInbox
from app.ingest.records import MalformedPayload, ParsedDelivery, UnsupportedEvent
from app.ingest.services import apply_delivery
from app.live.broker import Broker
from app.live.outbox import Change

log = logging.getLogger(__name__)
inbox = WebhookInbox.__table__  # type: ignore[attr-defined]

MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(minutes=1)
BATCH_SIZE = 100


class Unretryable(Exception):
    """The stored body cannot be applied however often we try (it no longer parses)."""


def retry_delay(attempts: int, base: timedelta = BACKOFF_BASE) -> timedelta:
    """How long after receipt the next attempt is due, given the attempts made so far."""
    if attempts <= 0:
        return timedelta(0)
    return base * ((4**attempts - 1) // 3)


def _due(now: datetime, max_attempts: int, base: timedelta) -> Any:
    """Rows whose next attempt is due: one indexed range (processed_at IS NULL), then this."""
    return or_(
        inbox.c.attempts <= 0,
        *(
            and_(inbox.c.attempts == n, inbox.c.received_at <= now - retry_delay(n, base))
            for n in range(1, max_attempts)
        ),
    )


def parse_stored(provider: str, event_type: str, body: str) -> ParsedDelivery:
    """Parse an inbox row's raw body the way its webhook endpoint did."""
    try:
        payload = msgspec.json.decode(body.encode())
    except msgspec.DecodeError as exc:
        raise Unretryable(f"stored body is not valid JSON: {exc}") from None
    try:
        if provider == "kapso":
            # Kapso marks batches with a header we do not store; a batch is the only Kapso body
            # that carries a top-level data array.
            batch = isinstance(payload, dict) and isinstance(payload.get("data"), list)
            return parse_kapso(event_type, payload, batch_header=batch)
        if provider == "meta":
            return parse_meta(payload)
    except (MalformedPayload, UnsupportedEvent) as exc:
        raise Unretryable(f"stored body no longer parses: {exc}") from None
    raise Unretryable(f"unknown provider {provider!r}")


@dataclass(frozen=True, slots=True)
class RetryReport:
    due: int = 0
    succeeded: int = 0
    failed: int = 0  # failed again; retried later
    gave_up: int = 0  # failed on the last attempt, or cannot be applied at all
    skipped: int = 0  # completed meanwhile by someone else

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


async def _due_rows(
    session: AsyncSession, now: datetime, max_attempts: int, base: timedelta, limit: int
) -> list[Any]:
    result = await session.execute(
        select(
            inbox.c.id,
            inbox.c.workspace_id,
            inbox.c.provider,
            inbox.c.event_type,
            inbox.c.attempts,
        )
        .where(
            inbox.c.processed_at.is_(None),
            inbox.c.attempts < max_attempts,
            _due(now, max_attempts, base),
        )
        .order_by(inbox.c.id)
        .limit(limit)
    )
    return list(result)


async def _apply(
    db: Database, row: Any, parsed: ParsedDelivery, now: datetime
) -> list[Change] | None:
    """Claim the row and apply it in one transaction; None when it was completed meanwhile."""
    async with db.write() as session:
        claimed = await session.execute(
            update(inbox)
            .where(inbox.c.id == row.id, inbox.c.processed_at.is_(None))
            .values(processed_at=now, error=None, attempts=inbox.c.attempts + 1)
            .returning(inbox.c.id)
        )
        if claimed.first() is None:
            return None
        _applied, changes = await apply_delivery(session, row.workspace_id, parsed)
    return changes


async def _body(db: Database, row_id: int) -> str:
    # One body at a time: a batch of due rows never holds a hundred raw bodies in memory.
    async with db.session() as session:
        body = (
            await session.execute(select(inbox.c.body).where(inbox.c.id == row_id))
        ).scalar_one()
    return str(body)


async def _record_failure(db: Database, row_id: int, error: str, attempts: Any) -> None:
    async with db.write() as session:
        await session.execute(
            update(inbox)
            .where(inbox.c.id == row_id, inbox.c.processed_at.is_(None))
            .values(error=error[:2000], attempts=attempts)
        )


async def retry_failed_deliveries(
    db: Database,
    broker: Broker | None = None,
    *,
    now: datetime | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    base: timedelta = BACKOFF_BASE,
    limit: int = BATCH_SIZE,
) -> RetryReport:
    """Retry the inbox rows whose next attempt is due (oldest first, at most `limit`)."""
    now = now or utcnow()
    async with db.session() as session:
        rows = await _due_rows(session, now, max_attempts, base, limit)
    succeeded = failed = gave_up = skipped = 0
    for row in rows:
        try:
            parsed = parse_stored(row.provider, row.event_type, await _body(db, row.id))
        except Unretryable as exc:
            log.warning("inbox row %s cannot be retried: %s", row.id, exc)
            await _record_failure(db, row.id, str(exc), max(max_attempts, row.attempts))
            gave_up += 1
            continue
        try:
            changes = await _apply(db, row, parsed, now)
        except Exception as exc:  # the database said no again: keep the error, back off
            last = row.attempts + 1 >= max_attempts
            log.warning(
                "retry %d of inbox row %s failed%s: %s",
                row.attempts + 1,
                row.id,
                "; giving up" if last else "",
                exc,
            )
            await _record_failure(db, row.id, f"{type(exc).__name__}: {exc}", inbox.c.attempts + 1)
            if last:
                gave_up += 1
            else:
                failed += 1
            continue
        if changes is None:
            skipped += 1
            continue
        succeeded += 1
        if broker is not None and changes:
            await broker.publish(changes)
    report = RetryReport(
        due=len(rows), succeeded=succeeded, failed=failed, gave_up=gave_up, skipped=skipped
    )
    if rows:
        log.info("inbox retry: %s", report.as_dict())
    return report
