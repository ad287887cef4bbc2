"""Work that must run in one process at a time, whichever processes share the database.

`leadboard serve --workers N` (or several servers) runs N processes on one database. What must run
once, the in-process schedule, runs in the process that holds a lock the operating system or the
database lets go of by itself when its holder dies, however it dies (SIGKILL included):

- SQLite: an exclusive `flock` on `<database file>.<name>.lock`, next to the database. The kernel
  drops it when the holder's file is closed, which it is when the process ends. The file holds
  the holder's pid, for people (`cat var/leadboard.db.scheduler.lock`).
- PostgreSQL: `pg_try_advisory_lock(key)` on a connection of its own (AUTOCOMMIT, so never idle in
  a transaction), kept for the life of the process; the server drops the lock when that session
  ends. The key is derived from the name; advisory locks are per database.
- SQLite in memory: one process by definition; always granted.

`Singleton` runs a start/stop pair under such a lock: it tries at once, then every
`retry_seconds`; the holder checks as often that it still holds it (a PostgreSQL connection can
break) and stops its work when it does not. Its work is stopped before the lock is let go, so a
clean hand-over never overlaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0  # how often a process without the lock tries again, and the holder checks
CHECK_TIMEOUT = 5.0  # a PostgreSQL check that takes longer counts as a lost connection


def process_label() -> str:
    """Which process this is, as heartbeats and logs say it: `pid 1234 on host`."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


class ProcessLock(Protocol):
    """A lock held by one process at a time and dropped by the OS or database when it dies."""

    @property
    def description(self) -> str: ...

    async def acquire(self) -> bool:
        """Take the lock if it is free (never waits); True when this process holds it."""
        ...

    async def still_held(self) -> bool:
        """Does this process still hold it? (False once a PostgreSQL session broke.)"""
        ...

    async def release(self) -> None:
        """Let go (idempotent); the next process to try gets it."""
        ...


class FileLock:
    """An exclusive `flock` on a file. Locks belong to the open file, so two FileLocks on one path
    exclude each other in one process as well as across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def description(self) -> str:
        return f"flock {self.path}"

    async def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC: a child process this one starts must not keep the lock alive after it.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another open file holds it
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # the holder's pid, for people; not part of the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{process_label()}\n".encode(), 0)
        self._fd = fd
        return True

    async def still_held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the file drops the flock


class PostgresAdvisoryLock:
    """`pg_try_advisory_lock` on a dedicated session, kept open for the life of the process."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.key = lock_key(name)
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None
        self._held = False

    @property
    def description(self) -> str:
        return f"pg_try_advisory_lock({self.key}) ({self.name})"

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            if self._engine is None:
                self._engine = create_async_engine(
                    self.url,
                    poolclass=NullPool,
                    hide_parameters=True,
                    connect_args={
                        "timeout": CHECK_TIMEOUT,
                        "server_settings": {
                            # Seen in pg_stat_activity; and the server notices a holder whose
                            # machine vanished (no FIN) within ~25 s instead of hours.
                            "application_name": f"leadboard {self.name} lock",
                            "tcp_keepalives_idle": "10",
                            "tcp_keepalives_interval": "5",
                            "tcp_keepalives_count": "3",
                        },
                    },
                )
            conn = await self._engine.connect()
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._held = False
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def acquire(self) -> bool:
        if self._held and await self.still_held():
            return True
        try:
            conn = await self._connection()
            async with asyncio.timeout(CHECK_TIMEOUT):
                result = await conn.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                )
            self._held = bool(result.scalar())
        except Exception as exc:  # unreachable, or the session broke: not held; tried again
            log.warning("could not try %s: %s: %s", self.description, type(exc).__name__, exc)
            await self._drop_connection()
            return False
        return self._held

    async def still_held(self) -> bool:
        if not self._held or self._conn is None:
            return False
        try:  # a live session keeps its session-level lock: is it alive?
            async with asyncio.timeout(CHECK_TIMEOUT):
                await self._conn.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("lost %s: %s: %s", self.description, type(exc).__name__, exc)
            await self._drop_connection()
            return False
        return True

    async def release(self) -> None:
        if self._held and self._conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CHECK_TIMEOUT):
                    await self._conn.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
                    )
        await self._drop_connection()  # closing the session would drop it anyway
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()


class AlwaysHeld:
    """An in-memory SQLite database: no other process can share it."""

    description = "in-memory database (one process)"

    async def acquire(self) -> bool:
        return True

    async def still_held(self) -> bool:
        return True

    async def release(self) -> None:
        return None


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    digest = hashlib.sha256(f"leadboard:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_for_database(url: str, name: str) -> ProcessLock:
    """The lock named `name` among the processes sharing the database at `url`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            return AlwaysHeld()
        path = Path(database)
        return FileLock(path.with_name(f"{path.name}.{name}.lock"))
    if parsed.get_backend_name() == "postgresql":
        return PostgresAdvisoryLock(url, name)
    raise ValueError(f"no process lock for {parsed.get_backend_name()} databases")


class Singleton:
    """Run `on_acquire` in the one process holding `lock`, `on_release` when it stops holding it.

    start() tries once before it returns (so a lone process has started its work by then), then
    keeps trying every `retry_seconds` in the background; stop() stops the work, then lets go.
    """

    def __init__(
        self,
        lock: ProcessLock,
        on_acquire: Callable[[], Awaitable[None]],
        on_release: Callable[[], Awaitable[None]],
        *,
        what: str,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.lock = lock
        self.what = what
        self.retry_seconds = retry_seconds
        self.holding = False
        self._on_acquire = on_acquire
        self._on_release = on_release
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = asyncio.Event()
        await self._try()
        if not self.holding:
            log.info(
                "%s runs in another process (%s is taken); %s takes over if that one stops",
                self.what,
                self.lock.description,
                process_label(),
            )
        self._task = asyncio.create_task(self._watch(), name=f"singleton:{self.what}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping.set()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            if self.holding:
                self.holding = False
                await self._on_release()
        finally:
            await self.lock.release()

    async def _try(self) -> None:
        if not await self.lock.acquire():
            return
        self.holding = True
        log.info(
            "%s runs in this process (%s; %s)", self.what, process_label(), self.lock.description
        )
        try:
            await self._on_acquire()
        except Exception:
            log.exception("%s could not start; letting go of %s", self.what, self.lock.description)
            self.holding = False
            await self.lock.release()

    async def _watch(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.retry_seconds)
            if self._stopping.is_set():
                return
            try:
                if not self.holding:
                    await self._try()
                elif not await self.lock.still_held():
                    log.warning("%s: %s lost; stopping it here", self.what, self.lock.description)
                    self.holding = False
                    await self._on_release()
                    await self.lock.release()
            except Exception:  # never let the watch die: the next turn tries again
                log.exception("%s: checking %s failed", self.what, self.lock.description)
