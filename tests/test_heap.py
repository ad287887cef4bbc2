"""After start-up the server compiles every template and freezes its heap; tests build many apps
in one process, so they keep it off, and these tests undo what they froze."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.heap import settle
from app.settings import Settings
from app.templating import create_environment
from tests.conftest import make_settings


@pytest.fixture
def unfreeze() -> Iterator[None]:
    assert gc.get_freeze_count() == 0
    yield
    gc.unfreeze()


def test_settle_compiles_every_template_and_freezes(unfreeze: None) -> None:
    env = create_environment()
    frozen = settle(env)
    assert frozen == gc.get_freeze_count() > 10_000
    assert gc.get_count()[0] < 100  # the collector starts from an empty youngest generation
    names = {template.name for template in env.cache.values()}  # type: ignore[union-attr]
    assert {"en/board.html", "id/board.html", "id/partials/_row.html"} <= names


async def test_the_server_freezes_its_heap_once_started(sqlite_url: str, unfreeze: None) -> None:
    app = create_app(make_settings(sqlite_url, freeze_heap=True))
    async with AsyncTestClient(app=app) as client:
        assert gc.get_freeze_count() > 10_000
        assert (await client.get("/healthz")).status_code == 200


def test_freezing_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().freeze_heap
    monkeypatch.setenv("FREEZE_HEAP", "0")
    assert not Settings.from_env().freeze_heap
    assert not make_settings("sqlite+aiosqlite:///x.db").freeze_heap
