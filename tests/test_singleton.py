"""One process at a time: the lock behind the in-process schedule, on SQLite and PostgreSQL.

Real locks only: a `flock` next to a real SQLite file, `pg_try_advisory_lock` on a real server; a
holder that dies is a real process SIGKILLed.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import Connection, make_url, select

from app.db import Database
from app.live.broker import Broker
from app.reconcile.models import WorkerHeartbeat
from app.reconcile.scheduler import IN_PROCESS_NAME, InProcessScheduler, ScheduledJob
from app.singleton import (
    FileLock,
    PostgresAdvisoryLock,
    lock_for_database,
    lock_key,
    process_label,
)
from tests.conftest import make_settings
from workers.jobs import heartbeat

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# A process that takes the lock, says so, and sleeps until it is killed.
HOLDER = """
import asyncio, sys
from app.singleton import lock_for_database

async def hold() -> None:
    lock = lock_for_database(sys.argv[1], sys.argv[2])
    if not await lock.acquire():
        print("refused", flush=True)
        return
    print("held", flush=True)
    await asyncio.sleep(3600)

asyncio.run(hold())
"""


def unique_name() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> float:
    """Wait until check() is true; the seconds it took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, "condition not met in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def test_each_database_gets_its_kind_of_lock(tmp_path: Path) -> None:
    lock = lock_for_database(f"sqlite+aiosqlite:///{tmp_path / 'board.db'}", "scheduler")
    assert isinstance(lock, FileLock)
    assert lock.path == tmp_path / "board.db.scheduler.lock"  # next to the database
    assert isinstance(
        lock_for_database("postgresql+asyncpg://u@h/db", "scheduler"), PostgresAdvisoryLock
    )
    # A stable key per name (advisory locks are per database already).
    assert lock_key("scheduler") == lock_key("scheduler") != lock_key("other")


async def test_a_second_holder_is_refused_until_the_first_lets_go(database_url: str) -> None:
    name = unique_name()
    first, second = lock_for_database(database_url, name), lock_for_database(database_url, name)
    try:
        assert await first.acquire()
        assert await first.acquire()  # again: still ours
        assert not await second.acquire()
        assert not await second.acquire()  # and again, without waiting
        assert await first.still_held() and not await second.still_held()

        await first.release()
        assert not await first.still_held()
        assert await second.acquire()
        assert not await first.acquire()  # now the first is the one refused
    finally:
        await first.release()
        await second.release()


async def test_a_killed_holders_lock_is_taken_over(database_url: str) -> None:
    name = unique_name()
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        database_url,
        name,
        cwd=PROJECT_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    mine = lock_for_database(database_url, name)
    try:
        assert holder.stdout is not None
        async with asyncio.timeout(30):
            said = (await holder.stdout.readline()).decode().strip()
        assert said == "held", said
        assert not await mine.acquire()

        os.kill(holder.pid, signal.SIGKILL)  # no clean-up of any kind
        assert await holder.wait() == -signal.SIGKILL

        took = await eventually(mine.acquire)
        assert took < 5.0  # the OS (SQLite) or the server (PostgreSQL) let go at once
        assert await mine.still_held()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await mine.release()


async def test_of_two_schedulers_on_one_database_one_runs_the_other_takes_over(
    db: Database, database_url: str
) -> None:
    settings = make_settings(database_url)

    def scheduler() -> InProcessScheduler:
        return InProcessScheduler(
            db,
            Broker(),
            settings,
            jobs=[ScheduledJob("heartbeat", heartbeat, 0.05, run_at_start=True)],
            retry_seconds=0.1,
        )

    first, second = scheduler(), scheduler()
    await first.start()
    await second.start()
    try:
        assert (first.state, second.state) == ("runs", "standby")
        assert first.running and not second.running
        await asyncio.sleep(0.5)  # ten retries: the lock stays with the first
        assert second.state == "standby" and "heartbeat" not in second.stats
        assert first.stats["heartbeat"].runs >= 2

        await first.stop()  # its jobs stop first, then it lets go
        assert first.state == "stopped" and not first.running

        async def second_runs() -> bool:
            beat = second.stats.get("heartbeat")
            return second.state == "runs" and beat is not None and beat.runs >= 1

        await eventually(second_runs, within=5.0)
    finally:
        await first.stop()
        await second.stop()
    assert second.state == "stopped" and not second.running

    async with db.session() as session:
        rows = (await session.execute(select(WorkerHeartbeat))).scalars().all()
    assert [r.name for r in rows] == [IN_PROCESS_NAME]  # one source, whichever process beats
    assert rows[0].details == f"ran heartbeat in {process_label()}"


async def test_sqlite_writers_on_one_file_take_turns_through_a_flock(sqlite_url: str) -> None:
    """Each process's writer thread waits for its turn on `<database>.write.lock` (the kernel
    wakes it when the other lets go) instead of polling SQLite's lock: nothing fails, nothing
    waits longer than the other's transaction. Two Databases stand for two processes (flock
    locks belong to the open file, so they exclude each other as processes do)."""
    path = Path(str(make_url(sqlite_url).database))
    first, second = Database(sqlite_url), Database(sqlite_url)
    inside, let_go = threading.Event(), threading.Event()

    def beat(name: str) -> Callable[[Connection], None]:
        def write(conn: Connection) -> None:
            conn.exec_driver_sql(
                "INSERT INTO worker_heartbeats (name, last_seen_at) VALUES (?, '2026-01-01')",
                (name,),
            )

        return write

    def slow(conn: Connection) -> None:
        inside.set()
        let_go.wait(10)
        beat("slow")(conn)

    try:
        holding = asyncio.create_task(first.run_write(slow))
        assert await asyncio.to_thread(inside.wait, 10)
        with (path.parent / f"{path.name}.write.lock").open("rb") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                raise AssertionError("the writer in a transaction does not hold its turn")
            except BlockingIOError:
                pass
        waiting = asyncio.create_task(second.run_write(beat("waiting")))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # its turn comes when the first lets go
        let_go.set()
        await asyncio.wait_for(asyncio.gather(holding, waiting), timeout=10)

        names = [f"{w}-{i}" for w in ("a", "b") for i in range(100)]
        await asyncio.gather(
            *((first if name.startswith("a") else second).run_write(beat(name)) for name in names)
        )
        async with first.session() as session:
            stored = set((await session.execute(select(WorkerHeartbeat.name))).scalars())
        assert stored == {"slow", "waiting", *names}
    finally:
        let_go.set()
        await first.dispose()
        await second.dispose()
