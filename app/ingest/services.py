"""Receiving a webhook delivery: find the workspace, check the signature, store, process, publish.

The order matters. The signature is checked over the raw bytes before anything is stored. The
inbox row, the lead changes and the change events are written in one transaction, so a delivery is
either fully applied or stored unprocessed with its error for the retry job. Events are published
only after the commit.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database, insert_on_conflict, utcnow
from app.ingest.kapso import kapso_phone_number_ids, parse_kapso
from app.ingest.meta import meta_phone_number_ids, parse_meta
from app.ingest.models import WebhookInbox
from app.ingest.records import MalformedPayload, ParsedDelivery, UnsupportedEvent
from app.ingest.signatures import verify_kapso_signature, verify_meta_signature
from app.leads.services import ApplyResult, apply_records
from app.live.broker import Broker
from app.live.outbox import LEAD_CHANGED, Change, add_change
from app.prepared import Prepared
from app.workspaces.models import Workspace
from app.workspaces.services import by_phone_number_id, list_workspaces

log = logging.getLogger(__name__)
inbox = WebhookInbox.__table__  # type: ignore[attr-defined]


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    TEST = "test"
    QUEUED = "queued"  # stored; processing failed and will be retried


@dataclass(frozen=True, slots=True)
class IngestResult:
    outcome: Outcome
    detail: str = ""
    new_messages: int = 0
    status_updates: int = 0
    leads: int = 0

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.outcome.value}
        if self.detail:
            body["detail"] = self.detail
        if self.outcome is Outcome.PROCESSED:
            body.update(
                new_messages=self.new_messages, status_updates=self.status_updates, leads=self.leads
            )
        return body


class IngestError(Exception):
    """A delivery we refuse; `status` is the HTTP status the controller answers with."""

    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidBody(IngestError):
    status = 400


class BadSignature(IngestError):
    status = 401


class UnknownWorkspace(IngestError):
    status = 404


class StorageUnavailable(IngestError):
    status = 503


class _Duplicate(Exception):
    """Raised inside the transaction to roll back a delivery another request already applied."""


class WorkspaceDirectory:
    """phone_number_id -> workspace, cached briefly: every webhook needs it, it rarely changes."""

    def __init__(self, db: Database, ttl_seconds: float = 5.0) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Workspace]] = {}

    async def by_phone_number_id(self, phone_number_id: str) -> Workspace | None:
        hit = self._cache.get(phone_number_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with self._db.session() as session:
            workspace = await by_phone_number_id(session, phone_number_id)
        if workspace is not None:
            self._cache[phone_number_id] = (time.monotonic() + self._ttl, workspace)
        return workspace

    async def all(self) -> list[Workspace]:
        async with self._db.session() as session:
            return await list_workspaces(session)

    def forget(self) -> None:
        self._cache.clear()


def apply_delivery_sync(
    conn: Connection, workspace_id: int, parsed: ParsedDelivery
) -> tuple[ApplyResult, list[Change]]:
    """Apply a delivery's records and add one change event per lead it touched, in the caller's
    transaction (the webhook request and the inbox retry job both go through here)."""
    applied = apply_records(conn, workspace_id, parsed.records)
    changes = [
        add_change(conn, workspace_id, LEAD_CHANGED, contact_id)
        for contact_id in applied.contact_ids
    ]
    return applied, changes


async def apply_delivery(
    session: AsyncSession, workspace_id: int, parsed: ParsedDelivery
) -> tuple[ApplyResult, list[Change]]:
    """apply_delivery_sync() for code holding an async session."""
    return await session.run_sync(
        lambda sync: apply_delivery_sync(sync.connection(), workspace_id, parsed)
    )


def _decode(raw_body: bytes) -> Any:
    try:
        return msgspec.json.decode(raw_body)
    except msgspec.DecodeError as exc:
        raise InvalidBody(f"body is not valid JSON: {exc}") from None


class IngestService:
    def __init__(self, db: Database, broker: Broker, directory: WorkspaceDirectory) -> None:
        self.db = db
        self.broker = broker
        self.directory = directory

    # -- Kapso ---------------------------------------------------------------------------------
    async def receive_kapso(self, headers: Mapping[str, str], raw_body: bytes) -> IngestResult:
        payload = _decode(raw_body)
        signature = headers.get("x-webhook-signature")
        event_type = headers.get("x-webhook-event") or (
            str(payload.get("type") or payload.get("event") or "")
            if isinstance(payload, dict)
            else ""
        )
        phone_ids = kapso_phone_number_ids(payload)
        if not phone_ids and isinstance(payload, dict) and payload.get("test") is True:
            return await self._kapso_test_event(raw_body, signature)
        workspace = await self._workspace_for(phone_ids)
        if not verify_kapso_signature(workspace.webhook_secret, raw_body, signature):
            raise BadSignature("X-Webhook-Signature does not match this body and workspace secret")
        batch = (headers.get("x-webhook-batch") or "").lower() == "true"
        key = headers.get("x-idempotency-key") or hashlib.sha256(raw_body).hexdigest()
        try:
            parsed = parse_kapso(event_type, payload, batch_header=batch)
        except UnsupportedEvent:
            return await self._store_ignored(workspace, "kapso", key, event_type, raw_body)
        except MalformedPayload as exc:
            raise InvalidBody(str(exc)) from None
        if parsed.is_test:
            return IngestResult(Outcome.TEST, "Kapso test event received; nothing stored")
        return await self._store_and_process(
            workspace, "kapso", key[:120], event_type, raw_body, parsed
        )

    async def _kapso_test_event(self, raw_body: bytes, signature: str | None) -> IngestResult:
        # The dashboard's test event names no phone number: accept it if any workspace signed it.
        for workspace in await self.directory.all():
            if verify_kapso_signature(workspace.webhook_secret, raw_body, signature):
                return IngestResult(Outcome.TEST, f"Kapso test event for {workspace.name}")
        raise BadSignature("X-Webhook-Signature matches no workspace")

    # -- Meta ----------------------------------------------------------------------------------
    async def receive_meta(self, headers: Mapping[str, str], raw_body: bytes) -> IngestResult:
        payload = _decode(raw_body)
        phone_ids = meta_phone_number_ids(payload)
        if not phone_ids:
            # Nothing addressed to a number (an empty entry, another object): acknowledge, once
            # we know a workspace signed it.
            signature = headers.get("x-hub-signature-256")
            for workspace in await self.directory.all():
                if workspace.meta_app_secret and verify_meta_signature(
                    app_secret=workspace.meta_app_secret,
                    raw_body=raw_body,
                    signature_header=signature,
                ):
                    return IngestResult(Outcome.IGNORED, "no WhatsApp messages in this body")
            raise BadSignature("X-Hub-Signature-256 matches no workspace")
        workspace = await self._workspace_for(phone_ids)
        if not workspace.meta_app_secret or not verify_meta_signature(
            app_secret=workspace.meta_app_secret,
            raw_body=raw_body,
            signature_header=headers.get("x-hub-signature-256"),
        ):
            raise BadSignature("X-Hub-Signature-256 does not match this body and app secret")
        try:
            parsed = parse_meta(payload)
        except MalformedPayload as exc:
            raise InvalidBody(str(exc)) from None
        if not parsed.records:
            reason = "; ".join(parsed.ignored) or "nothing to apply"
            return IngestResult(Outcome.IGNORED, reason)
        key = "sha256:" + hashlib.sha256(raw_body).hexdigest()  # Meta retries resend the same body
        return await self._store_and_process(
            workspace, "meta", key, "meta.messages", raw_body, parsed
        )

    # -- shared --------------------------------------------------------------------------------
    async def _workspace_for(self, phone_ids: set[str]) -> Workspace:
        if not phone_ids:
            raise InvalidBody(
                "no phone_number_id in the body: cannot tell which workspace it is for"
            )
        workspaces = {
            pid: await self.directory.by_phone_number_id(pid) for pid in sorted(phone_ids)
        }
        unknown = [pid for pid, ws in workspaces.items() if ws is None]
        if unknown:
            raise UnknownWorkspace(f"no workspace has phone_number_id {', '.join(unknown)}")
        ids = {ws.id for ws in workspaces.values() if ws is not None}
        if len(ids) > 1:
            raise InvalidBody("one delivery names phone numbers of different workspaces")
        return next(ws for ws in workspaces.values() if ws is not None)

    async def _store_ignored(
        self, workspace: Workspace, provider: str, key: str, event_type: str, raw_body: bytes
    ) -> IngestResult:
        assert workspace.id is not None
        ws_id, now = workspace.id, utcnow()

        def store(conn: Connection) -> None:
            conn.execute(
                insert_on_conflict(conn, inbox)
                .values(
                    workspace_id=ws_id,
                    provider=provider,
                    delivery_key=key[:120],
                    event_type=event_type[:80] or "unknown",
                    body=raw_body.decode("utf-8", "replace"),
                    received_at=now,
                    processed_at=now,
                    attempts=0,
                    error="ignored: unsupported event type",
                    duplicates=0,
                )
                .on_conflict_do_nothing(index_elements=["provider", "delivery_key"])
            )

        try:
            await self.db.run_write(store)
        except SQLAlchemyError:
            log.exception("could not store an ignored delivery")
        return IngestResult(Outcome.IGNORED, f"event type {event_type!r} is not handled")

    async def _store_and_process(
        self,
        workspace: Workspace,
        provider: str,
        key: str,
        event_type: str,
        raw_body: bytes,
        parsed: ParsedDelivery,
    ) -> IngestResult:
        assert workspace.id is not None
        ws_id = workspace.id
        body_text = raw_body.decode("utf-8", "replace")

        def process(conn: Connection) -> tuple[ApplyResult, list[Change]] | None:
            return _process_delivery(conn, ws_id, provider, key, event_type, body_text, parsed)

        try:
            outcome = await self.db.run_write(process, order=parsed.lock_order(ws_id))
        except _Duplicate:
            await self.db.run_write(lambda conn: _count_duplicate(conn, provider, key))
            outcome = None
        except SQLAlchemyError as exc:
            log.exception("processing a %s delivery failed; keeping it for retry", provider)
            return await self._store_failed(ws_id, provider, key, event_type, body_text, exc)
        if outcome is None:
            return IngestResult(Outcome.DUPLICATE, "this delivery was already received")
        applied, changes = outcome
        await self.broker.publish(changes)
        return IngestResult(
            Outcome.PROCESSED,
            new_messages=applied.new_messages,
            status_updates=applied.status_updates,
            leads=len(applied.contact_ids),
        )

    async def _store_failed(
        self,
        workspace_id: int,
        provider: str,
        key: str,
        event_type: str,
        body_text: str,
        error: Exception,
    ) -> IngestResult:
        message = f"{type(error).__name__}: {error}"[:2000]

        def store(conn: Connection) -> None:
            conn.execute(
                insert_on_conflict(conn, inbox)
                .values(
                    workspace_id=workspace_id,
                    provider=provider,
                    delivery_key=key,
                    event_type=event_type[:80],
                    body=body_text,
                    received_at=utcnow(),
                    processed_at=None,
                    attempts=1,
                    error=message,
                    duplicates=0,
                )
                .on_conflict_do_update(
                    index_elements=["provider", "delivery_key"],
                    set_={"error": message, "attempts": inbox.c.attempts + 1},
                )
            )

        try:
            await self.db.run_write(store)
        except SQLAlchemyError as exc:
            raise StorageUnavailable("the database is unavailable; please retry") from exc
        return IngestResult(Outcome.QUEUED, "stored; processing failed and will be retried")


def _process_delivery(
    conn: Connection,
    workspace_id: int,
    provider: str,
    key: str,
    event_type: str,
    body_text: str,
    parsed: ParsedDelivery,
) -> tuple[ApplyResult, list[Change]] | None:
    """Inbox row, lead changes and change events in one transaction; None for a duplicate.

    The inbox row goes in first: its unique key answers "seen before?" in the same statement
    that stores it, the common case.
    """
    now = utcnow()
    stored = _insert_inbox(conn.dialect.name).first(
        conn,
        {
            "workspace_id": workspace_id,
            "provider": provider,
            "delivery_key": key,
            "event_type": event_type[:80],
            "body": body_text,
            "received_at": now,
            "processed_at": now,
            "attempts": 1,
            "duplicates": 0,
        },
    )
    if stored is None:
        existing = _INBOX_BY_KEY.first(conn, {"provider": provider, "key": key})
        if existing is None:
            raise _Duplicate()  # stored by a concurrent request that has not committed yet
        if existing.processed_at is not None:
            _count_duplicate(conn, provider, key)
            return None
        # Stored earlier but its processing failed: this redelivery completes it.
        _MARK_PROCESSED.run(conn, {"_id": existing.id, "at": now})
    return apply_delivery_sync(conn, workspace_id, parsed)


def _count_duplicate(conn: Connection, provider: str, key: str) -> None:
    _COUNT_DUPLICATE.run(conn, {"w_provider": provider, "key": key})


# Built once: the hot path only binds values (see app/leads/statements.py for why).
_INBOX_BY_KEY = Prepared(
    select(inbox.c.id, inbox.c.processed_at).where(
        inbox.c.provider == bindparam("provider"), inbox.c.delivery_key == bindparam("key")
    )
)
_MARK_PROCESSED = Prepared(
    update(inbox)
    .where(inbox.c.id == bindparam("_id"))
    .values(processed_at=bindparam("at"), error=None, attempts=inbox.c.attempts + 1)
)
_COUNT_DUPLICATE = Prepared(
    update(inbox)
    .where(inbox.c.provider == bindparam("w_provider"), inbox.c.delivery_key == bindparam("key"))
    .values(duplicates=inbox.c.duplicates + 1)
)
_INBOX_COLUMNS = (
    "workspace_id",
    "provider",
    "delivery_key",
    "event_type",
    "body",
    "received_at",
    "processed_at",
    "attempts",
    "duplicates",
)


@lru_cache(maxsize=4)
def _insert_inbox(dialect: str) -> Prepared:
    table_insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(inbox)
    return Prepared(
        table_insert.values({c: bindparam(c) for c in _INBOX_COLUMNS})
        .on_conflict_do_nothing(index_elements=["provider", "delivery_key"])
        .returning(inbox.c.id)
    )
