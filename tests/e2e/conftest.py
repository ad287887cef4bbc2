"""End-to-end fixtures: a real `leadboard serve` process and a headless Chromium.

The server runs as a subprocess exactly as in production (migrations, demo workspace, uvicorn),
against a fresh SQLite file and the session's private redis-server. The browser is Debian's
Chromium driven by Playwright's async API, so these tests share the event loop (and the pytest run)
with the rest of the suite.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from tests.conftest import free_port
from tests.e2e.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LiveServer,
    running_server,
    save_screenshot,
)


@pytest.fixture
async def server(tmp_path: Path, redis_url: str) -> AsyncIterator[LiveServer]:
    """A real `leadboard serve` on a free port, a fresh SQLite file, the private Redis.

    Teardown SIGTERMs it and asserts it exits (cleanly, within STOP_LIMIT seconds).
    `server.restart()` brings it back on the same port and database.
    """
    live = LiveServer(
        port=free_port(),
        db_path=tmp_path / "leadboard.sqlite",
        redis_url=redis_url,
        log_path=tmp_path / "server.log",
    )
    await live.start()
    try:
        yield live
        if live.running:
            await live.stop()
    finally:
        await live.kill()
        live.close_logs()


@pytest.fixture(scope="module")
async def module_server(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> AsyncIterator[LiveServer]:
    """One `leadboard serve` shared by a module's tests (a fresh SQLite file, the private Redis,
    its own Redis namespace); for tests that do not disturb each other. SIGTERMed at the end,
    asserted to exit cleanly, as the function-scoped `server` is."""
    async with running_server(tmp_path_factory.mktemp("module-server"), redis_url) as live:
        yield live


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - one stat at session start
        pytest.skip(f"{CHROMIUM} is not installed")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught exceptions and console errors of the `page` tab."""
    return []


@pytest.fixture
async def page(
    context: BrowserContext, page_errors: list[str], request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    """A tab in a fresh context; a failing test leaves <test-name>.failed.png behind."""
    tab = await context.new_page()
    errors = page_errors

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(f"console.error: {msg.text}")

    tab.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    tab.on("console", on_console)
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and not tab.is_closed():
        with contextlib.suppress(Exception):
            await save_screenshot(tab, f"{request.node.name}.failed")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
