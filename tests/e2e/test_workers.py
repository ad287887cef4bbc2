"""`leadboard serve --workers 2` for real: two uvicorn processes on one SQLite file, no Redis.

Both processes answer; signed webhooks posted concurrently (every delivery twice at once, many
to the same leads) are each stored and applied once, every answer a 200 and none "queued" (what a
database error such as "database is locked" would be answered); the in-process schedule runs in
exactly one process, and when that process is SIGKILLed another takes it over.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.ingest.samples import Delivery, SampleLead, inbound_message, sign
from app.reconcile.scheduler import IN_PROCESS_NAME
from app.workspaces.services import DEMO_PHONE_NUMBER_ID, DEMO_WEBHOOK_SECRET
from tests.conftest import free_port
from tests.e2e.support import PROJECT_ROOT, LiveServer, leadboard_command, running_server

LEADS = 40
MESSAGES_PER_LEAD = 5  # 200 deliveries, each posted twice: 400 requests
CONCURRENCY = 32
TAKEOVER_LIMIT = 20.0  # seconds: lock retry (5 s) + the schedule's first heartbeat


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[LiveServer]:
    # No Redis: the in-process broker, and the schedule in one process.
    async with running_server(tmp_path, "", name="workers", extra_args=("--workers", "2")) as live:
        yield live


def fresh_connections(server: LiveServer) -> httpx.AsyncClient:
    """A client that opens a new connection per request: the workers share one listening socket,
    and whichever accepts a connection answers it, so new connections reach both."""
    return httpx.AsyncClient(
        base_url=server.base_url,
        trust_env=False,
        timeout=15,
        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0),
    )


async def processes(server: LiveServer, *, want: int, within: float = 20.0) -> dict[int, str]:
    """{pid: scheduler state} of the processes answering /healthz, once `want` of them have."""
    seen: dict[int, str] = {}
    deadline = time.monotonic() + within
    async with fresh_connections(server) as client:
        while len(seen) < want and time.monotonic() < deadline:
            answers = await asyncio.gather(
                *(client.get("/healthz") for _ in range(8)), return_exceptions=True
            )
            for answer in answers:
                if isinstance(answer, httpx.Response) and answer.status_code == 200:
                    body = answer.json()
                    seen[int(body["pid"])] = str(body["scheduler"])
            await asyncio.sleep(0.05)
    return seen


def heartbeats(db_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db_path) as conn:
        return list(conn.execute("SELECT name, details FROM worker_heartbeats ORDER BY name"))


async def test_two_workers_answer_store_every_webhook_once_and_run_the_schedule_once(
    workers: LiveServer,
) -> None:
    seen = await processes(workers, want=2)
    assert len(seen) == 2, f"one process answered every /healthz: {seen}"
    assert sorted(seen.values()) == ["runs", "standby"], seen
    runner = next(pid for pid, state in seen.items() if state == "runs")

    # -- webhooks: every delivery twice at once, five per lead, 32 in flight -----------------
    leads = [
        SampleLead(phone=f"6281299{i:06d}", name=f"Pelanggan {i}", conversation_id=f"conv-w{i}")
        for i in range(LEADS)
    ]
    deliveries = [
        sign(
            "whatsapp.message.received",
            inbound_message(lead, DEMO_PHONE_NUMBER_ID, f"pesan {n} dari {lead.name}"),
            DEMO_WEBHOOK_SECRET,
        )
        for n in range(MESSAGES_PER_LEAD)
        for lead in leads
    ]
    gate = asyncio.Semaphore(CONCURRENCY)
    answers: dict[str, list[str]] = collections.defaultdict(list)

    async with fresh_connections(workers) as client:

        async def post(delivery: Delivery) -> None:
            async with gate:
                response = await client.post(
                    "/webhooks/kapso", content=delivery.body, headers=delivery.headers
                )
            status = response.json().get("status") if response.status_code == 200 else None
            answers[delivery.wamid].append(f"{response.status_code} {status}")

        await asyncio.gather(*(post(d) for d in deliveries for _ in range(2)))

    outcomes = collections.Counter(a for pair in answers.values() for a in pair)
    assert outcomes == {"200 processed": len(deliveries), "200 duplicate": len(deliveries)}
    assert all(sorted(pair) == ["200 duplicate", "200 processed"] for pair in answers.values())
    with sqlite3.connect(workers.db_path) as conn:
        inbox = conn.execute(
            "SELECT count(*), count(processed_at), count(error), sum(duplicates) FROM webhook_inbox"
        ).fetchone()
        messages = conn.execute("SELECT count(*), count(DISTINCT wamid) FROM messages").fetchone()
        counts = [row[0] for row in conn.execute("SELECT message_count FROM contacts")]
    assert inbox == (len(deliveries), len(deliveries), 0, len(deliveries))
    assert messages == (len(deliveries), len(deliveries))
    assert counts == [MESSAGES_PER_LEAD] * LEADS  # concurrent updates of one lead: none lost
    log = workers.log_text()
    assert "database is locked" not in log and "Traceback" not in log, log[-3000:]

    # -- the schedule: one process runs it, one heartbeat source says which -----------------
    assert log.count("in-process schedule started") == 1, log
    assert log.count("the in-process schedule runs in another process") == 1, log
    beats = heartbeats(workers.db_path)
    assert [name for name, _ in beats] == [IN_PROCESS_NAME]
    assert f"pid {runner} on " in beats[0][1], beats

    # -- its process dies without a word: another takes the schedule over ---------------------
    started = time.monotonic()
    os.kill(runner, signal.SIGKILL)
    successor = None
    while successor is None:
        assert time.monotonic() - started < TAKEOVER_LIMIT, f"no takeover:\n{workers.log_text()}"
        now = await processes(workers, want=2, within=2.0)
        running = [pid for pid, state in now.items() if state == "runs"]
        assert runner not in now
        assert len(running) <= 1, now  # never two at once
        if running and f"pid {running[0]} on " in heartbeats(workers.db_path)[0][1]:
            successor = running[0]
        await asyncio.sleep(0.2)
    assert [name for name, _ in heartbeats(workers.db_path)] == [IN_PROCESS_NAME]
    # uvicorn replaced the killed worker; with the survivor that is two processes again, one
    # of which runs the schedule.
    final = await processes(workers, want=2)
    assert len(final) == 2 and sorted(final.values()) == ["runs", "standby"], final


def test_workers_must_be_one_or_more_and_do_not_go_with_reload(tmp_path: Path) -> None:
    db = tmp_path / "never.sqlite"
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{db}", "COLUMNS": "200"}

    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [leadboard_command(), "serve", "--port", str(free_port()), *args],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    with_reload = serve("--workers", "2", "--reload")
    none = serve("--workers", "0")

    assert with_reload.returncode == 2, with_reload.stdout + with_reload.stderr
    assert "--reload runs one process" in with_reload.stderr
    assert none.returncode == 2 and "0 is not in the range x>=1" in none.stderr
    for result in (with_reload, none):
        assert "Traceback" not in result.stdout + result.stderr
        assert "Uvicorn running" not in result.stdout + result.stderr
    assert not db.exists()  # refused before anything was migrated
