"""Engine, sessions and the column types every table shares.

SQLite (the default) runs in WAL mode with a busy timeout; writers open their transaction with
BEGIN IMMEDIATE so two writers never deadlock on a read-to-write lock upgrade. PostgreSQL needs none
of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, DateTime, Engine, Table, delete, event, select
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from app.pg_writer import PostgresWriter
from app.prepared import run_sql

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name == "sqlite":
            # SQLite hands back the text SQLAlchemy stored: one C parse instead of a parse, a
            # Python call and a replace() per value (a board page reads 250 of them).
            return _utc_from_sqlite_text
        return super().result_processor(dialect, coltype)


def _utc_from_sqlite_text(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:  # stored naive, in UTC: read as UTC in one parse (replace() costs more than parsing)
        moment = datetime.fromisoformat(value + "+00:00")
    except ValueError:  # text that carries its own offset
        moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:  # a date alone
        return moment.replace(tzinfo=UTC)
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def insert_on_conflict(executor: Any, table: Table) -> Any:
    """An INSERT with ON CONFLICT clauses, for SQLite and PostgreSQL alike (takes a session or a
    connection, sync or async)."""
    dialect = executor.dialect if hasattr(executor, "dialect") else executor.get_bind().dialect
    return (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(table)


def _sqlite_path(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(
            url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True
        )
    path = _sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: errors and logs never carry message bodies or secrets.
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, hide_parameters=True)
    _tune_sqlite(engine)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is DEFERRED).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _tune_sqlite(engine: AsyncEngine) -> None:
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = "IMMEDIATE" if connection.info.get("write") else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")


def keep_newest(conn: Connection, table: Table, workspace_id: int, keep: int) -> int:
    """Delete all but the workspace's newest `keep` rows. The cut-off id comes from the table's
    (workspace_id, id) index with OFFSET: the table is never counted."""
    cutoff = conn.execute(
        select(table.c.id)
        .where(table.c.workspace_id == workspace_id)
        .order_by(table.c.id.desc())
        .offset(keep)
        .limit(1)
    ).scalar_one_or_none()
    if cutoff is None:
        return 0
    result = conn.execute(
        delete(table).where(table.c.workspace_id == workspace_id, table.c.id <= cutoff)
    )
    return int(result.rowcount or 0)


@contextlib.contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """A savepoint in the caller's transaction: an exception inside rolls back only this part.

    One name for every savepoint: nested ones shadow each other and ROLLBACK TO / RELEASE name
    the newest, on both databases. A name per savepoint made every one a statement never seen
    before, which asyncpg prepared anew (a round trip) and whose cache of 100 statements it
    flushed the write path's out of, two entries a bot update.
    """
    run_sql(conn, "SAVEPOINT nested")
    try:
        yield
    except BaseException:
        run_sql(conn, "ROLLBACK TO SAVEPOINT nested")
        run_sql(conn, "RELEASE SAVEPOINT nested")
        raise
    run_sql(conn, "RELEASE SAVEPOINT nested")


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def sqlite_thread_engine(url: str) -> Engine:
    """A synchronous engine on the same SQLite file (pysqlite), for connections that threads of
    ours own and keep: the writer's, and each reader's."""
    engine = sa_create_engine(
        url.replace("+aiosqlite", ""),
        connect_args={"timeout": 30, "check_same_thread": False},
        hide_parameters=True,
        poolclass=NullPool,
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class SqliteWriter:
    """One thread owns SQLite's write lock.

    Writers queue in arrival order instead of racing through SQLite's busy handler (whose growing
    sleeps starve some requests for seconds), each write runs as plain synchronous code with one
    thread hand-off instead of one per statement, and writes that arrive together commit together
    (group commit). Each write runs in its own savepoint: one failing write rolls back alone.

    Several processes on one file (`serve --workers N`) each have their writer; they take turns
    through an exclusive `flock` on `<database>.write.lock`, held from BEGIN IMMEDIATE to COMMIT.
    The kernel hands it to a waiting process the moment it is let go, where SQLite's busy handler
    polls with sleeps growing to 100 ms: two busy processes polling starved each other's writes
    for over a second (bench/workers.py). SQLite's lock and busy timeout stay underneath, for
    the writes that do not come through here.
    """

    def __init__(self, url: str, *, max_batch: int = 64) -> None:
        self.engine = sqlite_thread_engine(url)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._max_batch = max_batch
        path = _sqlite_path(url)
        self._turns = path.with_name(f"{path.name}.write.lock") if path is not None else None

    async def submit(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._ensure_thread()
        self._queue.put((fn, future, loop))
        return await future

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        turns = None
        if self._turns is not None:  # O_CLOEXEC: a child process must not keep a turn
            turns = os.open(self._turns, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                while True:
                    item = self._queue.get()
                    if item is None:
                        return
                    batch = [item]
                    while len(batch) < self._max_batch:
                        try:
                            more = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if more is None:
                            self._queue.put(None)
                            break
                        batch.append(more)
                    self._run_batch(conn, batch, turns)
        finally:
            if turns is not None:
                os.close(turns)

    @staticmethod
    def _run_batch(conn: Connection, batch: list[Any], turns: int | None = None) -> None:
        results: list[tuple[bool, Any]] = []
        if turns is not None:
            fcntl.flock(turns, fcntl.LOCK_EX)  # this process's turn (at once when uncontended)
        try:
            # run_sql: straight on the sqlite3 connection (these run twice per write), errors
            # as SQLAlchemy raises them, for callers to catch.
            run_sql(conn, "BEGIN IMMEDIATE")
            for fn, _future, _loop in batch:
                run_sql(conn, "SAVEPOINT write")
                try:
                    value = fn(conn)
                except Exception as exc:
                    run_sql(conn, "ROLLBACK TO write")
                    run_sql(conn, "RELEASE write")
                    results.append((False, exc))
                else:
                    run_sql(conn, "RELEASE write")
                    results.append((True, value))
            run_sql(conn, "COMMIT")
        except Exception as exc:  # the transaction itself failed: nothing in it was written
            with contextlib.suppress(Exception):
                run_sql(conn, "ROLLBACK")
            results = [(False, exc)] * len(batch)
        finally:
            if turns is not None:
                fcntl.flock(turns, fcntl.LOCK_UN)
        for (_fn, future, loop), (ok, value) in zip(batch, results, strict=True):
            loop.call_soon_threadsafe(_settle, future, ok, value)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)
        self.engine.dispose()


class SqliteReaders:
    """Reads that run whole on a reader thread, each in one read transaction (one snapshot).

    Through aiosqlite every statement costs four thread hand-offs (cursor, execute, fetch,
    close) plus the transaction's own, each a trip through the event loop; a board request's
    three queries cost more in hand-offs than in SQLite. Here a read is one plain synchronous
    function, handed off once. Each thread keeps its own connection (WAL: readers never wait
    for the writer, nor it for them).
    """

    def __init__(self, url: str, *, threads: int = 4) -> None:
        self.engine = sqlite_thread_engine(url)
        self._size = threads
        self._threads: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()

    async def submit(self, fn: Callable[[Connection], T]) -> T:
        with self._lock:  # started on first use, and again after close() (like an engine)
            if self._threads is None:
                self._threads = ThreadPoolExecutor(self._size, thread_name_prefix="sqlite-reader")
            threads = self._threads
        return await asyncio.get_running_loop().run_in_executor(threads, self._run, fn)

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _run(self, fn: Callable[[Connection], T]) -> T:
        conn = self._connection()
        run_sql(conn, "BEGIN DEFERRED")
        try:
            return fn(conn)
        finally:
            run_sql(conn, "ROLLBACK")  # a read: nothing to keep, and the snapshot is let go

    def close(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(Exception):
                    conn.close()
            self._connections.clear()
        self.engine.dispose()


class Database:
    """The engine plus the ways code here touches it: reads (a function on a connection, or an
    async session), and write transactions."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo)
        self.is_sqlite = url.startswith("sqlite")
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writer = SqliteWriter(url) if self.is_sqlite else None
        self._readers = SqliteReaders(url) if self.is_sqlite else None
        self._pg_writer = None if self.is_sqlite else PostgresWriter(self.engine, lanes=4)

    @property
    def read_engine(self) -> Engine:
        """The engine read() runs on (for its events: what SQL a read sends)."""
        return self._readers.engine if self._readers is not None else self.engine.sync_engine

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(connection)` as one read transaction, all its statements on one snapshot.

        The pages people wait for read this way: on SQLite on a reader thread, handed off once
        for the whole function; on PostgreSQL on a pooled connection (REPEATABLE READ, so its
        statements agree with each other there too).
        """
        if self._readers is not None:
            return await self._readers.submit(fn)
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            return await conn.run_sync(fn)

    async def run_write(self, fn: Callable[[Connection], T], *, order: str = "") -> T:
        """Run `fn(connection)` in a committed write transaction; its exception undoes only its
        own writes. Returns once the transaction has committed.

        The write paths that carry traffic (webhooks, the bot, sessions) use this: group commit
        on both databases, on SQLite through one writer thread (SqliteWriter), on PostgreSQL
        through a few lanes of held connections (app/pg_writer.py). `order` names what the write
        locks (a lead): PostgreSQL batches take their locks in that order.
        """
        if self._writer is not None:
            return await self._writer.submit(fn)
        assert self._pg_writer is not None
        return await self._pg_writer.submit(fn, order=order)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads (and small writes that call commit themselves)."""
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed on success, rolled back on error."""
        async with self.engine.connect() as conn:
            conn.info["write"] = True
            try:
                async with (
                    AsyncSession(bind=conn, expire_on_commit=False) as session,
                    session.begin(),
                ):
                    yield session
            finally:
                conn.info.pop("write", None)

    async def dispose(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
        if self._readers is not None:
            await asyncio.to_thread(self._readers.close)
        if self._pg_writer is not None:
            await self._pg_writer.close()
        await self.engine.dispose()
