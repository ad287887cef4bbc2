"""The README's deployment, started for real.

deploy/leadboard.env.example is filled in (a fresh PostgreSQL database, a private Redis, a
generated SECRET_KEY, an https PUBLIC_URL) and the README's steps run in order: `leadboard
check`, `migrate`, `workspace create`, `user create`; then two app hosts (two `leadboard serve
--workers 2`, as behind the proxy of deploy/nginx.conf) and one `leadboard worker`, with a
round-robin client in front of the app hosts, as the proxy would spread requests.

What must hold: `check` passes with these settings and refuses the development secret; every
webhook sent round robin is stored once; a session made on one host works on the other (no
sticky sessions); a stream open on one host shows a lead whose webhook went to the other within
3 s (through Redis); the schedule belongs to the worker, whose heartbeat is in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.ingest.samples import SampleLead, inbound_message, sign
from tests.conftest import free_port
from tests.e2e.support import PROJECT_ROOT, LiveServer, http_client, leadboard_command

ENV_EXAMPLE = PROJECT_ROOT / "deploy" / "leadboard.env.example"
PHONE_NUMBER_ID = "620000000001"
WEBHOOK_SECRET = secrets.token_urlsafe(24)
EMAIL, PASSWORD = "owner@example.com", secrets.token_urlsafe(16)


def deployment_env(database_url: str, redis_url: str) -> dict[str, str]:
    """The example file's variables, its <...> filled in the way an operator would."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    filled = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "PUBLIC_URL": "https://leads.example.com",
    }
    for name, value in values.items():
        if "<" in value:
            assert name in filled, f"{name} has a placeholder the test does not fill: {value}"
            values[name] = filled[name]
    assert values["DEMO_WORKSPACE"] == "0"
    return values


def leadboard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [leadboard_command(), *args],
        cwd=PROJECT_ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def fresh_postgres(postgres_server_url: str) -> Iterator[str]:
    """A database of its own, as a deployment has (the session's test database is reset by
    other tests)."""
    admin = postgres_server_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"leadboard_deploy_{secrets.token_hex(4)}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(admin, timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    yield f"{postgres_server_url.rsplit('/', 1)[0]}/{name}"
    asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.asynccontextmanager
async def deployment(
    tmp_path: Path, env: dict[str, str]
) -> AsyncIterator[tuple[list[LiveServer], asyncio.subprocess.Process]]:
    hosts = [
        LiveServer(
            free_port(),
            tmp_path / "unused.sqlite",
            env["REDIS_URL"],
            tmp_path / f"host-{name}.log",
            namespace=f"deploy-{secrets.token_hex(4)}",  # both hosts share it: one deployment
            extra_args=("--workers", "2"),
            database=env["DATABASE_URL"],
            env=env,
        )
        for name in ("a", "b")
    ]
    for host in hosts[1:]:
        host.namespace = hosts[0].namespace
    worker_log = (tmp_path / "worker.log").open("wb")
    worker = await asyncio.create_subprocess_exec(
        leadboard_command(),
        "worker",
        cwd=PROJECT_ROOT,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=worker_log,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await asyncio.gather(*(host.start() for host in hosts))
        yield hosts, worker
        for host in hosts:
            await host.stop()
    finally:
        for host in hosts:
            await host.kill()
            host.close_logs()
        if worker.returncode is None:
            worker.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await worker.wait()
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        worker_log.close()


class RoundRobin:
    """What the proxy does for these tests: each request to the next host, TLS already ended
    (X-Forwarded-Proto https), the Secure session cookie passed on as the browser sends it."""

    def __init__(self, hosts: list[LiveServer]) -> None:
        self.clients = [http_client(host.base_url) for host in hosts]
        self.turn = 0
        self.cookies: dict[str, str] = {}

    def next_client(self) -> httpx.AsyncClient:
        client = self.clients[self.turn % len(self.clients)]
        self.turn += 1
        return client

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"X-Forwarded-Proto": "https", **(extra or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    async def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        client = self.next_client()
        extra = kwargs.pop("headers", None)
        response = await client.request(method, path, headers=self.headers(extra), **kwargs)  # type: ignore[arg-type]
        for cookie in response.cookies.jar:  # Secure cookies: httpx keeps them for https only
            if cookie.value is not None:
                self.cookies[cookie.name] = cookie.value
        return response

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


def lead(i: int) -> SampleLead:
    return SampleLead(phone=f"62814200{i:05d}", name=f"Deploy Lead {i}", conversation_id=f"d-{i}")


async def post_inbound(client: httpx.AsyncClient, i: int) -> dict[str, object]:
    payload = inbound_message(lead(i), PHONE_NUMBER_ID, f"Halo, saya lead {i}")
    delivery = sign("whatsapp.message.received", payload, WEBHOOK_SECRET)
    response = await client.post("/webhooks/kapso", content=delivery.body, headers=delivery.headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def count(database_url: str, sql: str) -> int:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_the_documented_deployment_runs_as_one_product(
    tmp_path: Path, fresh_postgres: str, redis_url: str
) -> None:
    env = deployment_env(fresh_postgres, redis_url)

    # Refused with the development secret, passed with the filled-in file.
    unsafe = await asyncio.to_thread(
        leadboard, {**env, "SECRET_KEY": ""}, "check", "--host", "0.0.0.0"
    )
    assert unsafe.returncode != 0 and "SECRET_KEY" in unsafe.stdout + unsafe.stderr
    for step in (
        ("migrate",),
        ("check", "--host", "0.0.0.0"),
        ("workspace", "create", "--name", "Toko Maju", "--kapso-phone-number-id",
         PHONE_NUMBER_ID, "--webhook-secret", WEBHOOK_SECRET),
        ("user", "create", "--email", EMAIL, "--workspace", "Toko Maju", "--role", "admin",
         "--password", PASSWORD),
    ):  # fmt: skip
        done = await asyncio.to_thread(leadboard, env, *step)
        assert done.returncode == 0, f"leadboard {' '.join(step)}:\n{done.stdout}{done.stderr}"

    async with deployment(tmp_path, env) as (hosts, worker):
        front = RoundRobin(hosts)
        try:
            for host in hosts:  # the schedule is the worker's, not the app's
                async with http_client(host.base_url) as client:
                    health = (await client.get("/healthz")).json()
                assert health["scheduler"] == "worker", health

            # Every webhook, spread over both hosts, stored once.
            answers = [await post_inbound(front.next_client(), i) for i in range(20)]
            assert all(a["status"] == "processed" for a in answers), answers
            assert await count(fresh_postgres, "SELECT count(*) FROM contacts") == 20
            assert await count(fresh_postgres, "SELECT count(*) FROM webhook_inbox") == 20

            # Signed in through one host, the session holds on the other.
            form = await front.request("GET", "/login")
            token = re.search(r'name="_csrf_token" value="([^"]*)"', form.text)
            assert token is not None, form.text[:300]
            signed = await front.request(
                "POST",
                "/login",
                data={"email": EMAIL, "password": PASSWORD, "next": "/", "_csrf_token": token[1]},
            )
            assert signed.status_code == 303, signed.text[:300]
            for _ in hosts:
                board = await front.request("GET", "/")
                assert board.status_code == 200 and "Deploy Lead 19" in board.text

            # A stream on host A; the webhook goes to host B; A's browser sees the lead.
            async with (
                http_client(hosts[0].base_url, timeout=15) as sse,
                http_client(hosts[1].base_url) as host_b,
                sse.stream("GET", "/events", headers=front.headers()) as stream,
            ):
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                await post_inbound(host_b, 99)
                deadline = time.monotonic() + 3
                seen = False
                while not seen and time.monotonic() < deadline:
                    async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                        line = await anext(lines)
                    seen = "Deploy Lead 99" in line
                assert seen, "host A's stream never showed the lead posted to host B"

            # The worker beats into the same database.
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                beats = await count(
                    fresh_postgres,
                    "SELECT count(*) FROM worker_heartbeats WHERE name <> 'in-process'",
                )
                if beats:
                    break
                await asyncio.sleep(0.5)
            assert beats >= 1, (tmp_path / "worker.log").read_text()
            assert worker.returncode is None, "the worker exited"
            logs = "".join(host.log_text() for host in hosts)
            assert "Traceback" not in logs, logs[-3000:]
        finally:
            await front.aclose()
