"""Reconciliation at scale: 100,000 leads across 20 workspaces, wall time and memory.

    .venv/bin/python bench/reconcile.py [--leads 100000] [--workspaces 20] [--repeat 3]
                                        [--postgres postgresql+asyncpg://postgres@127.0.0.1/postgres]

Builds a fresh database (a SQLite file in a temp dir; or, with --postgres, a throwaway database
created on that server and dropped afterwards), migrated like production, then bulk-inserts the
leads with executemany: a realistic spread of activity times (a third active in the last hour, a
long tail up to 90 days), statuses (a fifth converted or archived), temperatures, Sarah phases and
some leads already flagged in the last 24 h (the cooldown has to skip them).

Each repeat runs app.reconcile.services.reconcile_all (what the hourly cron runs) with a fixed
clock, then resets what the run did (flags, notes, change events, run rows) so the next repeat does
the same work. Printed: the median wall time, the peak Python allocation during a run (tracemalloc,
measured in a separate run because tracing slows everything down) and the peak RSS growth of the
process over the timed runs; plus the targets (<= 1 s, < 50 MB). No assertions: this reports.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shlex
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, insert, update

from app.db import Database
from app.leads.models import Contact
from app.live.outbox import ChangeEventRow
from app.migrate import upgrade
from app.notes.models import Note
from app.reconcile.models import ReconciliationRun
from app.reconcile.services import ReconcileReport, reconcile_all
from app.workspaces.models import Workspace

contacts = Contact.__table__  # type: ignore[attr-defined]
workspaces = Workspace.__table__  # type: ignore[attr-defined]
notes = Note.__table__  # type: ignore[attr-defined]
events = ChangeEventRow.__table__  # type: ignore[attr-defined]
runs = ReconciliationRun.__table__  # type: ignore[attr-defined]

TARGET_SECONDS = 1.0
TARGET_MEMORY_MB = 50.0
NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
STATUSES = [("new", 40), ("qualified", 20), ("contacted", 20), ("converted", 10), ("archived", 10)]
TEMPERATURES = [("hot", 15), ("warm", 25), ("lukewarm", 20), ("cold", 30), (None, 10)]
PHASES = ["qualifying", "listening", "validate_pain_points", "discover_interest", "scoring"]
BATCH = 5000


def _pick(rng: random.Random, weighted: list[tuple[Any, int]]) -> Any:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights)[0]


def _activity(rng: random.Random) -> datetime:
    roll = rng.random()
    if roll < 0.33:  # active in the last hour: never stale
        return NOW - timedelta(seconds=rng.uniform(0, 3500))
    if roll < 0.73:  # the last two days
        return NOW - timedelta(hours=rng.uniform(1, 48))
    return NOW - timedelta(days=rng.uniform(2, 90))  # the long tail


def lead_rows(rng: random.Random, workspace_id: int, count: int, offset: int) -> list[dict]:
    rows = []
    for i in range(count):
        last = _activity(rng)
        status = _pick(rng, STATUSES)
        inbound = last if rng.random() < 0.7 else last - timedelta(minutes=rng.uniform(1, 600))
        outbound = (
            None if rng.random() < 0.25 else inbound + timedelta(minutes=rng.uniform(-120, 30))
        )
        if outbound is not None and outbound > last:
            outbound = last
        rows.append(
            {
                "workspace_id": workspace_id,
                "phone_e164": f"+628{offset + i:010d}",
                "name": f"Lead {offset + i}",
                "status": status,
                "status_source": "bot",
                "status_changed_at": last - timedelta(hours=rng.uniform(0, 72)),
                "temperature": _pick(rng, TEMPERATURES),
                "score": rng.randint(0, 100),
                "phase": rng.choice(PHASES) if status == "qualified" else None,
                "message_count": rng.randint(1, 80),
                "last_message_preview": "Halo kak, mau tanya soal harga paket",
                "last_message_direction": "inbound",
                "last_activity_at": last,
                "last_inbound_at": inbound,
                "last_contact_at": outbound,
                # Some were flagged within the last day: the cooldown must skip them.
                "stale_flagged_at": NOW - timedelta(hours=rng.uniform(1, 23))
                if rng.random() < 0.05
                else None,
                "created_at": last - timedelta(days=rng.uniform(0, 30)),
                "updated_at": last,
            }
        )
    return rows


async def build(db: Database, leads: int, n_workspaces: int, seed: int) -> None:
    rng = random.Random(seed)
    per = leads // n_workspaces
    async with db.write() as session:
        ids = []
        for w in range(n_workspaces):
            result = await session.execute(
                insert(workspaces)
                .values(
                    name=f"Team {w}",
                    slug=f"team-{w}",
                    kapso_phone_number_id=f"10{w:013d}",
                    webhook_secret=uuid.uuid4().hex,
                    stale_threshold_minutes=60,
                    reconcile_flag_limit=50,
                    timezone="Asia/Jakarta",
                    created_at=NOW,
                )
                .returning(workspaces.c.id)
            )
            ids.append(result.scalar_one())
    offset = 0
    for w, workspace_id in enumerate(ids):
        count = per if w < n_workspaces - 1 else leads - per * (n_workspaces - 1)
        done = 0
        while done < count:
            chunk = min(BATCH, count - done)
            async with db.write() as session:
                await session.execute(
                    insert(contacts), lead_rows(rng, workspace_id, chunk, offset + done)
                )
            done += chunk
        offset += count
    if not db.is_sqlite:  # what autovacuum does soon after a bulk load
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")
            await conn.commit()


async def reset(db: Database) -> None:
    """Undo one run: its flags (all stamped NOW), notes, change events and run rows."""
    async with db.write() as session:
        await session.execute(
            update(contacts).where(contacts.c.stale_flagged_at == NOW).values(stale_flagged_at=None)
        )
        await session.execute(delete(notes))
        await session.execute(delete(events))
        await session.execute(delete(runs))


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def measure(db: Database, repeat: int) -> dict[str, Any]:
    times: list[float] = []
    report: ReconcileReport | None = None
    await reconcile_all(db, now=NOW)  # warm-up: connections, statement caches, page cache
    await reset(db)
    rss_before = rss_peak_mb()
    for _ in range(repeat):
        started = time.perf_counter()
        report = await reconcile_all(db, now=NOW)
        times.append(time.perf_counter() - started)
        await reset(db)
    rss_growth = rss_peak_mb() - rss_before
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    await reconcile_all(db, now=NOW)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    await reset(db)
    assert report is not None
    return {
        "times": times,
        "report": report,
        "traced_peak_mb": (peak - base) / 1e6,
        "rss_growth_mb": rss_growth,
    }


async def _pg_admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    tmp: tempfile.TemporaryDirectory[str] | None = None
    pg_name: str | None = None
    if args.postgres:
        pg_name = f"leadboard_bench_{uuid.uuid4().hex[:8]}"
        await _pg_admin(args.postgres, f'CREATE DATABASE "{pg_name}"')
        url = f"{args.postgres.rsplit('/', 1)[0]}/{pg_name}"
        backend = "PostgreSQL"
    else:
        tmp = tempfile.TemporaryDirectory(prefix="leadboard-bench-")
        url = f"sqlite+aiosqlite:///{Path(tmp.name) / 'bench.sqlite'}"
        backend = "SQLite (WAL)"
    try:
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        try:
            started = time.perf_counter()
            await build(db, args.leads, args.workspaces, args.seed)
            print(
                f"built {args.leads:,} leads in {args.workspaces} workspaces on {backend} "
                f"in {time.perf_counter() - started:.1f} s"
            )
            result = await measure(db, args.repeat)
        finally:
            await db.dispose()
    finally:
        if pg_name is not None:
            await _pg_admin(args.postgres, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        if tmp is not None:
            tmp.cleanup()
    report: ReconcileReport = result["report"]
    med = statistics.median(result["times"])
    print(
        f"per run: {report.checked:,} checked, {report.stale:,} stale, {report.flagged:,} flagged "
        f"in {len(report.runs)} workspaces, {report.failed} failed"
    )
    print(
        f"reconcile_all wall time: median {med * 1000:.0f} ms over {args.repeat} runs "
        f"({', '.join(f'{t * 1000:.0f}' for t in result['times'])} ms); "
        f"target <= {TARGET_SECONDS * 1000:.0f} ms: {'met' if med <= TARGET_SECONDS else 'MISSED'}"
    )
    peak = max(result["traced_peak_mb"], result["rss_growth_mb"])
    print(
        f"memory: peak Python allocation during a run {result['traced_peak_mb']:.2f} MB "
        f"(tracemalloc), peak RSS growth over the timed runs {result['rss_growth_mb']:.2f} MB; "
        f"target < {TARGET_MEMORY_MB:.0f} MB: {'met' if peak < TARGET_MEMORY_MB else 'MISSED'}"
    )
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--workspaces", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=None,
        help="a PostgreSQL server URL (postgresql+asyncpg://...); a throwaway database is "
        "created there and dropped afterwards",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
