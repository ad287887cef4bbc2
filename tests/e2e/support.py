"""What the end-to-end tests drive: a real `leadboard serve` process, webhooks, screenshots."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from playwright.async_api import Page, expect

from app.ingest.samples import SampleLead, inbound_message, sign
from app.workspaces.services import (
    DEMO_PHONE_NUMBER_ID,
    DEMO_USER_EMAIL,
    DEMO_USER_PASSWORD,
    DEMO_WEBHOOK_SECRET,
)

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
    """One `leadboard serve` process; restartable on the same port and database."""

    port: int
    db_path: Path
    redis_url: str
    log_path: Path
    # Sessions and rate-limit counters live in Redis under this prefix: one per server, so
    # servers sharing the session's redis-server never share sign-in or throttle state, while a
    # restarted server keeps its signed-in browsers.
    namespace: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:12]}")
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.db_path}"

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

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.proc.wait()

    def close_logs(self) -> None:
        for log in self._logs:
            log.close()
        self._logs.clear()


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
