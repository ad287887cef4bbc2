"""Group commit on PostgreSQL: the write path's transactions, many writes to one commit.

A webhook's effects are eight to ten small statements. Run one request at a time on a pooled
connection (checkout, ping, BEGIN, the statements, COMMIT), each delivery paid four round trips
around its statements and a WAL flush of its own, and 32 concurrent requests kept 32 backends
busy contending for the same few rows. Here a few lanes (tasks, each holding one connection for
its life, its prepared statements warm) take every write waiting when they are free and run them
in one transaction: one BEGIN, one COMMIT, one flush for the lot (bench/ingest.py: about 250
deliveries/s per process before, the README has the figures after).

Durability is the caller's: a write's future is settled only once its COMMIT has returned, so
a delivery acknowledged to Kapso is committed.

Writes run without savepoints (two more round trips each). When one fails, the whole batch is
rolled back and every write in it runs again alone, in a transaction of its own: one failure
fails only its own write, as on SQLite's writer. Writes are plain functions of a connection, so
running one again after a rollback is running it the first time.

Two transactions that lock the same leads in opposite orders deadlock. A batch runs its writes
sorted by their `order` key (the lead, for webhooks and the bot; arrival order among equal keys),
so batches in every lane and every process take their row locks in one global order. A deadlock
that still happens (a write without a key, a delivery naming several leads) is broken by
PostgreSQL after `deadlock_timeout` and handled like any failure: its writes run again alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Write:
    fn: Callable[[Connection], Any]
    order: str
    future: asyncio.Future[Any]


def _in_one_transaction(conn: Connection, fns: list[Callable[[Connection], Any]]) -> list[Any]:
    with conn.begin():  # committed when the block ends, rolled back by an exception
        return [fn(conn) for fn in fns]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller went away (its request was cancelled); the write stands
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class PostgresWriter:
    """Lanes that run queued writes in batches, each batch one committed transaction."""

    DRAIN_SECONDS = 10.0  # close() waits this long for queued writes before giving up on them

    def __init__(self, engine: AsyncEngine, *, lanes: int = 2, max_batch: int = 64) -> None:
        self._engine = engine
        self._lane_count = lanes
        self._max_batch = max_batch
        self._pending: deque[_Write] = deque()
        self._wakeup: asyncio.Event | None = None
        self._lanes: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    async def submit(self, fn: Callable[[Connection], T], *, order: str = "") -> T:
        """Run `fn(connection)` in a committed transaction (shared with other writes)."""
        loop = asyncio.get_running_loop()
        wakeup = self._start(loop)
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Write(fn, order, future))
        wakeup.set()
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        if self._loop is not loop or self._wakeup is None:
            # First use, or a new event loop (a CLI command, a test): lanes belong to one loop.
            self._loop, self._wakeup, self._closing = loop, asyncio.Event(), False
            self._lanes = [
                loop.create_task(self._lane(), name=f"pg-writer-{i}")
                for i in range(self._lane_count)
            ]
        return self._wakeup

    def _take(self) -> list[_Write]:
        batch: list[_Write] = []
        while self._pending and len(batch) < self._max_batch:
            write = self._pending.popleft()
            if not write.future.done():
                batch.append(write)
        batch.sort(key=lambda w: w.order)  # stable: arrival order among equal keys
        return batch

    async def _lane(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        conn: AsyncConnection | None = None
        try:
            while True:
                batch = self._take()
                if not batch:
                    if self._closing:
                        return
                    wakeup.clear()
                    await wakeup.wait()
                    continue
                conn = await self._run(conn, batch)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close())

    async def _connection(self, conn: AsyncConnection | None) -> AsyncConnection:
        if conn is not None and not conn.invalidated and not conn.closed:
            return conn
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        return await self._engine.connect()

    async def _run(
        self, conn: AsyncConnection | None, batch: list[_Write]
    ) -> AsyncConnection | None:
        """Run a batch; returns the connection to keep (None when none could be had)."""
        try:
            conn = await self._connection(conn)
            values = await conn.run_sync(_in_one_transaction, [w.fn for w in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0].future, False, exc)
                return conn
            log.debug("a batch of %d writes failed (%s); running each alone", len(batch), exc)
            return await self._run_alone(conn, batch)
        for write, value in zip(batch, values, strict=True):
            _settle(write.future, True, value)
        return conn

    async def _run_alone(
        self, conn: AsyncConnection | None, batch: list[_Write]
    ) -> AsyncConnection | None:
        for write in batch:
            try:
                conn = await self._connection(conn)
                value = (await conn.run_sync(_in_one_transaction, [write.fn]))[0]
            except Exception as exc:
                _settle(write.future, False, exc)
            else:
                _settle(write.future, True, value)
        return conn

    async def close(self) -> None:
        """Finish the queued writes, then let the lanes' connections go."""
        lanes, self._lanes = self._lanes, []
        if not lanes:
            return
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        try:
            same_loop = self._loop is asyncio.get_running_loop()
        except RuntimeError:
            same_loop = False
        if not same_loop:  # lanes of a loop that is gone: nothing left to wait for
            return
        _done, running = await asyncio.wait(lanes, timeout=self.DRAIN_SECONDS)
        for task in running:  # a write stuck past the timeout: the database is gone
            task.cancel()
        if running:
            await asyncio.wait(running)
        while self._pending:
            write = self._pending.popleft()
            _settle(write.future, False, RuntimeError("the database writer was closed"))
        self._wakeup = None
