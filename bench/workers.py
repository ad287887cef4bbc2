"""Several processes on one database: signed webhooks against `leadboard serve --workers N`.

    .venv/bin/python bench/workers.py [--workers 1 2] [--duration 15] [--connections 32]
                                      [--repeat 3] [--redis] [--postgres]

Each repeat measures, back to back for each N, a fresh `leadboard serve --workers N` (a fresh
SQLite file, or with --postgres a fresh PostgreSQL database; the in-process broker and schedule,
or a private redis-server with --redis), warmed up, then driven by wrk replaying unique pre-signed
deliveries (bench/wrk_replay.lua, as bench/ingest.py does; wrk's connections are shared among
the workers as each accepts them).

Figures per N: processed/s (inbox rows processed in the window), non-2xx and socket errors,
deliveries left unprocessed ("queued": what a database error such as "database is locked" is
answered with), "database is locked" lines in the server log, p50/p99 latency, and the CPU of
all the server's processes. Medians over --repeat runs. No timed assertions: this reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import (
    LEADBOARD_BIN,
    WEBHOOK_PATH,
    Child,
    DeliveryMix,
    PostgresUnavailable,
    command_line,
    fmt,
    free_port,
    install_sigterm_handler,
    median,
    postgres_database,
    redis_server,
    scratch_dir,
    wait_http,
)
from _wrk import Load, WrkResult, add_load_options, require_wrk, run_wrk, warm_up, write_requests

COUNTS = {
    "processed": "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NOT NULL",
    "unprocessed": "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NULL",
}


def _tree(pid: int) -> list[int]:
    """pid and every process below it (uvicorn's workers), from /proc/<pid>/stat."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found.extend(frontier)
    return found


def _cpu(pids: list[int]) -> dict[int, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def _counts(database_url: str) -> dict[str, int]:
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1]
        with sqlite3.connect(path, timeout=30) as conn:
            return {k: int(conn.execute(q).fetchone()[0]) for k, q in COUNTS.items()}

    async def count() -> dict[str, int]:
        import asyncpg

        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return {k: int(await conn.fetchval(q)) for k, q in COUNTS.items()}
        finally:
            await conn.close()

    return asyncio.run(count())


def _analyze(database_url: str) -> None:
    """ANALYZE after the warm-up, as autovacuum (or SQLite's optimize) does within a minute of a
    table growing: the measured window is the steady state, not a fresh file's first minute
    (before it, PostgreSQL planned the lead lookup on a stale, empty-table estimate and scanned
    an index of every lead, 0.5 ms a delivery and growing)."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.split(":///", 1)[1], timeout=30) as conn:
            conn.execute("ANALYZE")
        return

    async def analyze() -> None:
        import asyncpg

        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

    asyncio.run(analyze())


def _answering_pids(base: str, want: int, within: float = 60.0) -> set[int]:
    """The pids /healthz names, asked on new connections until `want` of them answered."""
    seen: set[int] = set()
    deadline = time.monotonic() + within
    while len(seen) < want and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            seen.add(int(httpx.get(f"{base}/healthz", timeout=2.0).json()["pid"]))
        time.sleep(0.02)
    return seen


def _settled(database_url: str, timeout: float = 15.0) -> dict[str, int]:
    """Counts once in-flight requests have drained (two equal readings 0.5 s apart)."""
    deadline = time.monotonic() + timeout
    last = _counts(database_url)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _counts(database_url)
        if now == last:
            return now
        last = now
    return last


@contextlib.contextmanager
def server(
    workdir: Path, workers: int, redis_url: str | None, database_url: str | None
) -> Iterator[tuple[str, Child, str]]:
    """`leadboard serve --workers N` on a free port; yields (base_url, child, database_url)."""
    port = free_port()
    rundir = workdir / f"workers{workers}-{port}"
    rundir.mkdir(parents=True)
    url = database_url or f"sqlite+aiosqlite:///{rundir / 'db.sqlite'}"
    env = {
        "DATABASE_URL": url,
        "DEMO_WORKSPACE": "1",
        "REDIS_URL": redis_url or "",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [str(LEADBOARD_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    child = Child(
        f"leadboard-w{workers}", [*argv, "--workers", str(workers)], rundir / "log", env=env
    )
    child.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(child, f"{base}/healthz")
        answering = _answering_pids(base, workers)  # every worker up, not only the first
        if len(answering) < workers:
            raise RuntimeError(f"only {len(answering)} of {workers} workers answered")
        yield base, child, url
    finally:
        child.stop()


@dataclass
class Run:
    workers: int
    wrk: WrkResult
    processed: int
    unprocessed: int
    locked_lines: int
    cpu_s: float

    @property
    def processed_per_s(self) -> float:
        return self.wrk.per_s(self.processed)


def measure(
    workdir: Path,
    workers: int,
    files: tuple[Path, Path],
    load: Load,
    redis_url: str | None,
    postgres: bool,
) -> Run:
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(postgres_database()) if postgres else None
        base, child, url = stack.enter_context(server(workdir, workers, redis_url, database_url))
        warm_up(base, files[0], WEBHOOK_PATH, load)
        _analyze(url)
        before = _settled(url)
        pids = _tree(child.pid)
        cpu0 = _cpu(pids)
        result = run_wrk(base, files[1], WEBHOOK_PATH, load, seconds=load.duration)
        cpu1 = _cpu(pids)
        after = _settled(url)
        log = child.log_path.read_text(errors="replace")
    return Run(
        workers=workers,
        wrk=result,
        processed=after["processed"] - before["processed"],
        unprocessed=after["unprocessed"] - before["unprocessed"],
        locked_lines=log.count("database is locked"),
        cpu_s=sum(cpu1[p] - cpu0[p] for p in cpu1 if p in cpu0),
    )


def print_run(r: Run) -> None:
    w = r.wrk
    print(
        f"  --workers {r.workers}: {r.processed_per_s:8,.0f} processed/s  p50 {w.p50_ms:7.2f} ms"
        f"  p99 {w.p99_ms:7.2f} ms  max {w.max_ms:7.1f} ms  non-2xx {w.non2xx}"
        f"  socket errors {w.socket_errors}"
        f"  queued {r.unprocessed}  'database is locked' {r.locked_lines}"
        f"  server CPU {100 * r.cpu_s / w.duration_s:.0f}% of a core",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_load_options(p)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="N values (1 2)")
    p.add_argument("--deliveries", type=int, default=60_000, help="unique deliveries (60000)")
    p.add_argument("--leads", type=int, default=2000, help="distinct leads writing (2000)")
    p.add_argument("--postgres", action="store_true", help="a fresh PostgreSQL database per run")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    install_sigterm_handler()
    require_wrk()
    with scratch_dir("leadboard-bench-workers-", args.keep) as workdir:
        return _run(args, workdir)


def _run(args: argparse.Namespace, workdir: Path) -> int:
    started = time.monotonic()
    mix = DeliveryMix(leads=args.leads, seed=1)
    warm_mix = DeliveryMix(leads=args.leads, seed=1, stream=1)
    warm_count = max(1000, int(args.warmup * 3000)) if args.warmup > 0 else 0
    files = (workdir / "warmup.deliveries", workdir / "measured.deliveries")
    print(f"generating {warm_count:,} warm-up + {args.deliveries:,} deliveries ...", flush=True)
    write_requests(
        files[0], ((w.headers, w.body) for w in (warm_mix.next() for _ in range(warm_count)))
    )
    write_requests(
        files[1], ((w.headers, w.body) for w in (mix.next() for _ in range(args.deliveries)))
    )
    load = Load.from_args(args)
    runs: dict[int, list[Run]] = {n: [] for n in args.workers}
    try:
        with contextlib.ExitStack() as stack:
            redis_url = stack.enter_context(redis_server(workdir)) if args.redis else None
            for i in range(args.repeat):
                print(f"\nrun {i + 1}/{args.repeat}", flush=True)
                for n in args.workers:
                    r = measure(workdir, n, files, load, redis_url, args.postgres)
                    runs[n].append(r)
                    print_run(r)
    except PostgresUnavailable as exc:
        print(f"PostgreSQL leg skipped: {exc}")
        return 1
    print()
    print("=" * 78)
    print("Several processes: signed Kapso webhooks, sustained, `leadboard serve --workers N`")
    print(f"command:     {command_line()}")
    print(
        f"setup:       {args.repeat} x {args.duration:g} s per server (+{args.warmup:g} s warm-up),"
        f" wrk -t{args.threads} -c{args.connections}, broker "
        f"{'redis' if args.redis else 'in-process'}, {'PostgreSQL' if args.postgres else 'SQLite'}"
        f", {os.cpu_count()} cores"
    )
    one = median([r.processed_per_s for r in runs[args.workers[0]]])
    for n, rs in runs.items():
        proc = median([r.processed_per_s for r in rs])
        each = ", ".join(fmt(r.processed_per_s) for r in rs)
        print(
            f"--workers {n}: {fmt(proc)} processed/s median ({each})"
            f", x{proc / one:.2f}; p50 {fmt(median([r.wrk.p50_ms for r in rs]), 2)} ms, p99 "
            f"{fmt(median([r.wrk.p99_ms for r in rs]), 2)} ms, max "
            f"{fmt(max(r.wrk.max_ms for r in rs))} ms; CPU "
            f"{fmt(median([100 * r.cpu_s / r.wrk.duration_s for r in rs]))}% of a core; errors "
            f"{[r.wrk.errors for r in rs]}, queued {[r.unprocessed for r in rs]}, "
            f"'database is locked' {[r.locked_lines for r in rs]}"
        )
    print(f"elapsed:     {time.monotonic() - started:.0f} s")
    print("=" * 78)
    return 0


if __name__ == "__main__":
    sys.exit(main())
