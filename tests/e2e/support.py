"""What the end-to-end tests drive: a real `leadboard serve` process, webhooks, screenshots."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from playwright.async_api import Page, expect

from app.ingest.samples import SampleLead, inbound_message, outbound_message, sign
from app.workspaces.services import (
    DEMO_PHONE_NUMBER_ID,
    DEMO_SARAH_KEY,
    DEMO_USER_EMAIL,
    DEMO_USER_PASSWORD,
    DEMO_WEBHOOK_SECRET,
)
from tests.conftest import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_LIMIT = 20.0  # seconds for `leadboard serve` to answer /healthz
STOP_LIMIT = 10.0  # seconds a SIGTERMed server may take before the fixture fails
CLEAN_EXIT = (0, -signal.SIGTERM)


def leadboard_command() -> str:
    """The venv's `leadboard` script next to the running interpreter, else the one on PATH."""
    candidate = Path(sys.executable).parent / "leadboard"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("leadboard")
    if found is None:
        pytest.fail("the `leadboard` command is not installed (pip install -e .)")
    return found


def http_client(base_url: str, timeout: float = 10) -> httpx.AsyncClient:
    # trust_env=False: a proxy in the environment must never see requests to 127.0.0.1.
    return httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=timeout)


@dataclass
class LiveServer:
    """One `leadboard serve` process; restartable on the same port and database.

    redis_url "" runs it without Redis (the in-process broker and schedule); extra_args go after
    `serve --host --port` (e.g. `("--workers", "2")`); database (a URL) replaces the SQLite file
    at db_path; env goes over the environment the server is given.
    """

    port: int
    db_path: Path
    redis_url: str
    log_path: Path
    # Sessions and rate-limit counters live in Redis under this prefix: one per server, so
    # servers sharing the session's redis-server never share sign-in or throttle state, while a
    # restarted server keeps its signed-in browsers.
    namespace: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:12]}")
    extra_args: tuple[str, ...] = ()
    database: str = ""
    env: dict[str, str] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite+aiosqlite:///{self.db_path}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self) -> None:
        """Run `leadboard serve` and wait until GET /healthz answers."""
        assert not self.running, "server already running"
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            REDIS_NAMESPACE=self.namespace,
            DEMO_WORKSPACE="1",
            PUBLIC_URL=self.base_url,
            PYTHONUNBUFFERED="1",
        )
        if not self.redis_url:
            env.pop("REDIS_URL")
        env.update(self.env)
        log = self.log_path.open("ab")
        self._logs.append(log)
        log.write(f"\n===== start #{self.starts + 1} =====\n".encode())
        log.flush()
        self.proc = await asyncio.create_subprocess_exec(
            leadboard_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra_args,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.starts += 1
        await self._wait_healthy()

    async def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_LIMIT
        async with http_client(self.base_url, timeout=1) as client:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    pytest.fail(
                        f"leadboard serve exited with {self.proc.returncode} while starting:\n"
                        f"{self.log_text()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get("/healthz")
                    if response.status_code == 200 and response.json().get("ok"):
                        return
                await asyncio.sleep(0.05)
        await self.kill()
        pytest.fail(f"leadboard serve gave no /healthz in {START_LIMIT}s:\n{self.log_text()}")

    async def stop(self, limit: float = STOP_LIMIT) -> float:
        """SIGTERM the server, assert it exits cleanly within `limit` s; return the time taken."""
        assert self.proc is not None and self.proc.returncode is None, "server is not running"
        proc = self.proc
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(limit):
                await proc.wait()
        except TimeoutError:
            await self.kill()
            pytest.fail(f"leadboard serve ignored SIGTERM for {limit}s, killed:\n{self.log_text()}")
        elapsed = time.monotonic() - started
        # uvicorn finishes its graceful shutdown, then re-raises the signal it caught: -SIGTERM.
        assert proc.returncode in CLEAN_EXIT, f"exit code {proc.returncode}:\n{self.log_text()}"
        return elapsed

    async def restart(self) -> None:
        """Stop (when running) and start again on the same port and the same database."""
        if self.running:
            await self.stop()
        await self.start()

    def worker_pids(self) -> list[int]:
        """The processes `serve` started (uvicorn's workers with --workers N), from /proc."""
        if not self.running:
            return []
        assert self.proc is not None
        return _descendants(self.proc.pid)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            workers = self.worker_pids()  # SIGKILL is not passed on: take the workers down too
            self.proc.kill()
            for pid in workers:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.proc.wait()

    def close_logs(self) -> None:
        for log in self._logs:
            log.close()
        self._logs.clear()


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid`, from each process's parent in /proc/<pid>/stat."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found.extend(children)
        frontier = children
    return found


async def save_screenshot(page: Page, name: str) -> Path:
    """A full-page PNG under test-artifacts/e2e/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    path = ARTIFACTS / f"{safe}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def post_inbound(
    server: LiveServer, lead: SampleLead, text: str, at: datetime | None = None
) -> dict[str, Any]:
    """POST a signed Kapso `whatsapp.message.received` delivery; assert it was processed."""
    payload = inbound_message(lead, DEMO_PHONE_NUMBER_ID, text, at=at)
    delivery = sign("whatsapp.message.received", payload, DEMO_WEBHOOK_SECRET)
    async with http_client(server.base_url) as client:
        response = await client.post(
            "/webhooks/kapso", content=delivery.body, headers=delivery.headers
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body.get("status") == "processed", body
    return body


async def sign_in(page: Page, server: LiveServer, path: str = "/") -> None:
    """Sign in as the demo user through the sign-in form; land on `path`."""
    await page.goto(f"{server.base_url}/login?next={path}")
    await page.get_by_label("Email").fill(DEMO_USER_EMAIL)
    await page.get_by_label("Password").fill(DEMO_USER_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).not_to_have_url(re.compile(r"/login"))
    await expect(page.locator("#live-status")).to_be_attached()


async def signed_in_client(server: LiveServer) -> httpx.AsyncClient:
    """An httpx client with the demo user's session (the form's CSRF token included)."""
    client = http_client(server.base_url)
    try:
        form = await client.get("/login")
        assert form.status_code == 200, form.text
        token = re.search(r'name="_csrf_token" value="([^"]*)"', form.text)
        assert token is not None, "no CSRF field on the sign-in form"
        response = await client.post(
            "/login",
            data={
                "email": DEMO_USER_EMAIL,
                "password": DEMO_USER_PASSWORD,
                "next": "/",
                "_csrf_token": token.group(1),
            },
        )
        assert response.status_code == 303, f"sign-in failed: {response.status_code}"
    except BaseException:
        await client.aclose()
        raise
    return client


async def server_html(server: LiveServer, path: str = "/") -> str:
    """The page as the server renders it for a signed-in user, without a browser."""
    client = await signed_in_client(server)
    try:
        response = await client.get(path, headers={"Accept": "text/html"})
    finally:
        await client.aclose()
    assert response.status_code == 200, f"{response.status_code} {response.text[:300]}"
    return response.text


# ---- helpers for the board-flow and security suites ---------------------------------------------
@contextlib.asynccontextmanager
async def running_server(
    directory: Path, redis_url: str, *, name: str = "leadboard", extra_args: tuple[str, ...] = ()
) -> AsyncIterator[LiveServer]:
    """A started LiveServer for an `async with` block (what module-scoped fixtures use)."""
    async with prepared_server(directory, redis_url, name=name, extra_args=extra_args) as live:
        await live.start()
        yield live


@contextlib.asynccontextmanager
async def prepared_server(
    directory: Path, redis_url: str, *, name: str = "leadboard", extra_args: tuple[str, ...] = ()
) -> AsyncIterator[LiveServer]:
    """A LiveServer not started yet, so the caller can prepare its database first (`run_cli`
    against `live.database_url`); SIGTERMed (and asserted clean) on the way out."""
    live = LiveServer(
        port=free_port(),
        db_path=directory / f"{name}.sqlite",
        redis_url=redis_url,
        log_path=directory / f"{name}.log",
        extra_args=extra_args,
    )
    try:
        yield live
        if live.running:
            await live.stop()
    finally:
        await live.kill()
        live.close_logs()


async def run_cli(database_url: str, commands: list[list[str]], limit: float = 60) -> str:
    """Run `leadboard <args>` commands in order against `database_url`; return their output.

    One interpreter runs them all through the same click entry point the `leadboard` script
    calls (`app.cli:main`), so six commands cost one Python start-up instead of six. Any command
    that fails (a non-zero exit, an exception) fails the test with the output.
    """
    script = (
        "import sys, json\n"
        "from app.cli import main\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        main.main(args=args, prog_name='leadboard', standalone_mode=False)\n"
        "    except SystemExit as exc:\n"
        "        if exc.code not in (None, 0):\n"
        "            print('FAILED:', args, exc.code, flush=True)\n"
        "            raise\n"
    )
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url, PYTHONUNBUFFERED="1", COLUMNS="200")
    env.pop("REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        json.dumps(commands),
        cwd=PROJECT_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(limit):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"leadboard CLI commands took more than {limit}s: {commands}")
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"leadboard CLI failed ({proc.returncode}):\n{text}"
    return text


async def post_delivery(
    server: LiveServer, event: str, payload: dict[str, Any], secret: str = DEMO_WEBHOOK_SECRET
) -> dict[str, Any]:
    """POST any signed Kapso delivery; assert it was processed."""
    delivery = sign(event, payload, secret)
    async with http_client(server.base_url) as client:
        response = await client.post(
            "/webhooks/kapso", content=delivery.body, headers=delivery.headers
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body.get("status") == "processed", body
    return body


async def post_inbound_to(
    server: LiveServer,
    lead: SampleLead,
    text: str,
    *,
    phone_number_id: str,
    secret: str,
    at: datetime | None = None,
) -> dict[str, Any]:
    """An inbound message for another workspace's number (its own webhook secret)."""
    payload = inbound_message(lead, phone_number_id, text, at=at)
    return await post_delivery(server, "whatsapp.message.received", payload, secret)


async def post_outbound(
    server: LiveServer, lead: SampleLead, text: str, at: datetime | None = None
) -> dict[str, Any]:
    """A message the team sent (Kapso `whatsapp.message.sent`) in the demo workspace."""
    payload = outbound_message(lead, DEMO_PHONE_NUMBER_ID, text, status="sent", at=at)
    return await post_delivery(server, "whatsapp.message.sent", payload)


async def post_sarah(
    server: LiveServer,
    phone: str,
    *,
    state: str,
    score: int,
    temperature: str,
    extracted: dict[str, Any] | None = None,
    key: str = DEMO_SARAH_KEY,
) -> dict[str, Any]:
    """POST /sarah/state as Sarah's workflow does; assert it saved and synced."""
    body = {
        "contact_phone": phone if phone.startswith("+") else "+" + phone,
        "state": state,
        "lead_score": score,
        "lead_temperature": temperature,
        "extracted_data": extracted or {},
        "language": "id",
        "message_count": 3,
    }
    async with http_client(server.base_url) as client:
        response = await client.post(
            "/sarah/state", json=body, headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer.get("success") is True, answer
    return answer


async def lead_id_for(server: LiveServer, phone: str, key: str = DEMO_SARAH_KEY) -> int:
    """The lead id of a phone (wa_id digits or E.164), through the JSON API with a workspace key."""
    e164 = phone if phone.startswith("+") else "+" + phone
    async with http_client(server.base_url) as client:
        response = await client.get(
            "/api/leads", params={"limit": 500}, headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 200, response.text
    ids = [lead["id"] for lead in response.json()["leads"] if lead["phone_e164"] == e164]
    assert len(ids) == 1, f"{len(ids)} leads with phone {e164}"
    return int(ids[0])


async def session_cookies(
    server: LiveServer, email: str = DEMO_USER_EMAIL, password: str = DEMO_USER_PASSWORD
) -> list[dict[str, Any]]:
    """Sign in once over HTTP; the session cookie for `BrowserContext.add_cookies`.

    Many tests against one module-scoped server would otherwise sign in through the form each
    time and run into the sign-in rate limit (per client address, per minute).
    """
    async with http_client(server.base_url) as client:
        form = await client.get("/login")
        token = re.search(r'name="_csrf_token" value="([^"]*)"', form.text)
        assert token is not None, "no CSRF field on the sign-in form"
        response = await client.post(
            "/login",
            data={"email": email, "password": password, "next": "/", "_csrf_token": token[1]},
        )
        assert response.status_code == 303, f"sign-in failed: {response.status_code}"
        value = client.cookies.get("lb_session")
    assert value, "no session cookie after signing in"
    return [{"name": "lb_session", "value": value, "url": server.base_url}]


async def sign_in_as(
    page: Page, server: LiveServer, email: str, password: str, path: str = "/"
) -> None:
    """Sign in through the form as any user; land on `path`."""
    await page.goto(f"{server.base_url}/login?next={path}")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).not_to_have_url(re.compile(r"/login"))
