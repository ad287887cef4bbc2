"""Sessions: kept in the database, and not rewritten when unchanged.

Signed-in sessions live in the `sessions` table (DatabaseSessionStore), on every configuration:
Redis is only an accelerator, and a Redis that is down must not sign anyone out or fail a page.
A restarted app, and every process on the same database, sees the same sessions. Reads go
through Database.read (one hand-off to a reader thread on SQLite), writes through
Database.run_write (the writer thread with group commit on SQLite). Expired rows are ignored on
read and deleted by the housekeeping job (purge_expired_sessions). The table holds the SHA-256 of
each session id, never the id itself: what a backup or a stray query reveals is no cookie, and a
crafted cookie of any length is a key like any other.

Litestar writes the session back on every response, to slide its expiry: on the board that is a
database write for the same bytes on every htmx request. QuietSessionStore, on top, writes a
session when its bytes change, and an unchanged one at most every REFRESH_SECONDS, so a session
still expires max_age after its last use, give or take that. Reads always go to the store: a
sign-out in another process counts at once.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta
from functools import lru_cache

from litestar.stores.base import Store
from sqlalchemy import Connection, LargeBinary, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from app.db import Database, UTCDateTime, utcnow
from app.prepared import Prepared

REFRESH_SECONDS = 300.0
_KEEP = 10_000  # sessions remembered at most; past it the stale ones go
PURGE_BATCH = 5_000  # expired sessions deleted per transaction
PURGE_MAX_BATCHES = 100  # per purge: a backlog beyond this waits for the next run


class SessionRow(SQLModel, table=True):
    """One server-side session: Litestar's serialized session data under its id."""

    __tablename__ = "sessions"

    key: str = Field(primary_key=True, max_length=64)  # storage_key(session id)
    value: bytes = Field(sa_type=LargeBinary)
    # None: never expires (the Store contract allows it; sign-ins always carry an expiry).
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


sessions = SessionRow.__table__  # type: ignore[attr-defined]

_ROW = Prepared(
    select(sessions.c.value, sessions.c.expires_at).where(sessions.c.key == bindparam("_key"))
)
_RENEW = Prepared(
    update(sessions).where(sessions.c.key == bindparam("_key")).values(expires_at=bindparam("at"))
)
_DELETE = Prepared(delete(sessions).where(sessions.c.key == bindparam("_key")))


@lru_cache(maxsize=4)
def _upsert(dialect: str) -> Prepared:
    """Built once per dialect (see app/leads/statements.py for why)."""
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(sessions).values(
        key=bindparam("key"), value=bindparam("value"), expires_at=bindparam("expires_at")
    )
    return Prepared(
        stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at},
        )
    )


def storage_key(key: str) -> str:
    """The row key of a session id: its SHA-256, in hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _deadline(now: datetime, seconds: int | timedelta | None) -> datetime | None:
    if seconds is None:
        return None
    return now + (seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds))


def _live(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or expires_at > now


class DatabaseSessionStore(Store):
    """A Litestar Store over the `sessions` table (SQLite and PostgreSQL alike)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        values = {
            "key": storage_key(key),
            "value": value.encode() if isinstance(value, str) else value,
            "expires_at": _deadline(utcnow(), expires_in),
        }
        await self._db.run_write(lambda conn: _upsert(conn.dialect.name).run(conn, values))

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        """The value, or None when there is none or it has expired. With renew_for, a value that
        has an expiry expires renew_for from now (one write transaction)."""
        now, params = utcnow(), {"_key": storage_key(key)}
        if not renew_for:
            row = await self._db.read(lambda conn: _ROW.first(conn, params))
            return bytes(row.value) if row is not None and _live(row.expires_at, now) else None

        def get_and_renew(conn: Connection) -> bytes | None:
            row = _ROW.first(conn, params)
            if row is None or not _live(row.expires_at, now):
                return None
            if row.expires_at is not None:
                _RENEW.run(conn, {**params, "at": _deadline(now, renew_for)})
            return bytes(row.value)

        return await self._db.run_write(get_and_renew)

    async def delete(self, key: str) -> None:
        params = {"_key": storage_key(key)}
        await self._db.run_write(lambda conn: _DELETE.run(conn, params))

    async def delete_all(self) -> None:
        await self._db.run_write(lambda conn: conn.execute(delete(sessions)))

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        """Seconds left; -1 for a value that never expires; None when there is none (or it has
        expired), as Litestar's own stores answer."""
        now, params = utcnow(), {"_key": storage_key(key)}
        row = await self._db.read(lambda conn: _ROW.first(conn, params))
        if row is None or not _live(row.expires_at, now):
            return None
        if row.expires_at is None:
            return -1
        return int((row.expires_at - now).total_seconds())


def _purge_batch(conn: Connection, now: datetime, limit: int) -> int:
    """Delete up to `limit` sessions expired before `now`, found through the expires_at index."""
    expired = (
        select(sessions.c.key)
        .where(sessions.c.expires_at < now)
        .order_by(sessions.c.expires_at)
        .limit(limit)
    )
    result = conn.execute(delete(sessions).where(sessions.c.key.in_(expired.scalar_subquery())))
    return int(result.rowcount or 0)


async def purge_expired_sessions(
    db: Database,
    *,
    now: datetime | None = None,
    batch: int = PURGE_BATCH,
    max_batches: int = PURGE_MAX_BATCHES,
) -> int:
    """Delete expired sessions, `batch` per short write transaction; the number deleted."""
    now = now or utcnow()
    total = 0
    for _ in range(max_batches):
        deleted = await db.run_write(lambda conn: _purge_batch(conn, now, batch))
        total += deleted
        if deleted < batch:
            break
    return total


class QuietSessionStore(Store):
    def __init__(self, inner: Store, refresh: float = REFRESH_SECONDS) -> None:
        self._inner = inner
        self._refresh = refresh
        self._written: dict[str, tuple[bytes, float]] = {}  # key -> (bytes, when written here)

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        data = value.encode() if isinstance(value, str) else value
        now = time.monotonic()
        seen = self._written.get(key)
        if seen is not None and seen[0] == data and now - seen[1] < self._refresh:
            return
        await self._inner.set(key, value, expires_in)
        if len(self._written) >= _KEEP:
            self._written = {k: v for k, v in self._written.items() if now - v[1] < self._refresh}
        self._written[key] = (data, now)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        return await self._inner.get(key, renew_for)

    async def delete(self, key: str) -> None:
        self._written.pop(key, None)
        await self._inner.delete(key)

    async def delete_all(self) -> None:
        self._written.clear()
        await self._inner.delete_all()

    async def exists(self, key: str) -> bool:
        return await self._inner.exists(key)

    async def expires_in(self, key: str) -> int | None:
        return await self._inner.expires_in(key)

    async def __aenter__(self) -> None:
        await self._inner.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.__aexit__(*exc)  # type: ignore[arg-type]
