"""Safe to expose? The development secret and the demo's published credentials are refused on a
server reachable beyond loopback, and are the whole point of `make run` on it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.accounts.services import set_password
from app.db import Database
from app.demo import ensure_demo
from app.deploy import (
    database_problems,
    demo_wanted,
    deployment_problems,
    exposed,
    is_loopback,
    settings_problems,
)
from app.settings import Settings
from app.workspaces.services import DEMO_USER_EMAIL, by_slug, rotate_webhook_secret

SAFE_SECRET = "k" * 48


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("leads.example.id", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_exposed_by_the_address_or_by_the_public_url() -> None:
    local = Settings(database_url="sqlite+aiosqlite:///x.db")
    assert not exposed(local, "127.0.0.1")
    assert exposed(local, "0.0.0.0")
    assert exposed(replace(local, public_url="https://leads.example.id"), "127.0.0.1")
    assert exposed(replace(local, public_url="http://leads.example.id"), "127.0.0.1")


def test_the_demo_is_on_by_default_only_on_loopback() -> None:
    unset = Settings(database_url="sqlite+aiosqlite:///x.db")
    assert unset.demo_workspace is None
    assert demo_wanted(unset, "127.0.0.1") and not demo_wanted(unset, "0.0.0.0")
    assert demo_wanted(replace(unset, demo_workspace=True), "0.0.0.0")
    assert not demo_wanted(replace(unset, demo_workspace=False), "127.0.0.1")


def test_the_development_secret_is_refused_only_when_exposed() -> None:
    dev = Settings(database_url="sqlite+aiosqlite:///x.db", demo_workspace=False)
    assert settings_problems(dev, "127.0.0.1") == []
    [problem] = settings_problems(dev, "0.0.0.0")
    assert "SECRET_KEY is the development value" in problem
    [short] = settings_problems(replace(dev, secret_key="tooshort"), "0.0.0.0")
    assert "shorter than 32" in short
    assert settings_problems(replace(dev, secret_key=SAFE_SECRET), "0.0.0.0") == []
    [demo] = settings_problems(replace(dev, secret_key=SAFE_SECRET, demo_workspace=True), "0.0.0.0")
    assert "DEMO_WORKSPACE" in demo


async def test_the_demo_credentials_in_the_database_are_refused_until_changed(
    db: Database, database_url: str
) -> None:
    settings = Settings(database_url=database_url, secret_key=SAFE_SECRET, demo_workspace=False)
    assert await database_problems(db) == []
    async with db.write() as session:
        demo = await ensure_demo(session)
    assert demo is not None
    problems = await deployment_problems(settings, db, "0.0.0.0")
    assert len(problems) == 2
    assert DEMO_USER_EMAIL in problems[0] and "set-password" in problems[0]
    assert "demo webhook secret" in problems[1]
    assert await deployment_problems(settings, db, "127.0.0.1") == []  # fine for make run

    async with db.write() as session:
        await set_password(session, DEMO_USER_EMAIL, "a much better password")
        workspace = await by_slug(session, demo.slug)
        assert workspace is not None
        await rotate_webhook_secret(session, workspace)
    assert await deployment_problems(settings, db, "0.0.0.0") == []
