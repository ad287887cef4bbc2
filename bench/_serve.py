"""A `leadboard serve --workers N` for the throughput benchmarks, on SQLite or PostgreSQL.

What the database shows is the judge: counts read straight from the SQLite file or the
PostgreSQL database, once in-flight requests have drained; CPU is summed over the server's whole
process tree (uvicorn's supervisor and its workers).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from _common import LEADBOARD_BIN, Child, free_port, wait_http
from _db import settle

INBOX_COUNTS = {
    "processed": "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NOT NULL",
    "unprocessed": "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NULL",
    "duplicates": "SELECT coalesce(sum(duplicates), 0) FROM webhook_inbox",
    "messages": "SELECT count(*) FROM messages",
    "change_events": "SELECT count(*) FROM change_events",
}


def process_tree(pid: int) -> list[int]:
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


def postgres_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL server process on this machine (the server
    shares the cores with the app and wrk; a run's delta says what its database work cost)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                if stat.split("(", 1)[1].split(")", 1)[0] == "postgres":
                    fields = stat.rsplit(")", 1)[1].split()
                    total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def tree_cpu(pids: list[int]) -> dict[int, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def answering_pids(base: str, want: int, within: float = 60.0) -> set[int]:
    """The pids /healthz names, asked on new connections until `want` of them answered."""
    seen: set[int] = set()
    deadline = time.monotonic() + within
    while len(seen) < want and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            seen.add(int(httpx.get(f"{base}/healthz", timeout=2.0).json()["pid"]))
        time.sleep(0.02)
    return seen


@contextlib.contextmanager
def serve(
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
        answering = answering_pids(base, workers)  # every worker up, not only the first
        if len(answering) < workers:
            raise RuntimeError(f"only {len(answering)} of {workers} workers answered")
        yield base, child, url
    finally:
        child.stop()


def settled_counts(database_url: str) -> dict[str, int]:
    """The inbox counts once in-flight requests have drained."""
    return settle(database_url, INBOX_COUNTS)
