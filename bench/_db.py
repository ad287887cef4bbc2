"""Read-only counts from a benchmark server's SQLite file.

The throughput benchmarks judge a run by what the database shows afterwards (rows processed,
states saved, mismatches), not only by what the server answered; these read it without taking
a write lock, so they can run while the server is still busy.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def db_counts(db_path: Path, counts: dict[str, str]) -> dict[str, int]:
    """Run each named `SELECT count(*) ...` once, on a read-only connection."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return {name: int(conn.execute(sql).fetchone()[0]) for name, sql in counts.items()}
    finally:
        conn.close()


def settle(db_path: Path, counts: dict[str, str], timeout: float = 15.0) -> dict[str, int]:
    """Counts once in-flight requests have drained (two equal readings 0.5 s apart)."""
    deadline = time.monotonic() + timeout
    last = db_counts(db_path, counts)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = db_counts(db_path, counts)
        if now == last:
            return now
        last = now
    return last
