"""After start-up the server compiles every template and freezes its heap; tests build many apps
in one process, so they keep it off, and these tests undo what they froze."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.heap import HeapKeeper, settle
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
        assert (await client.get("/healthz")).status_code == 200  # answers before it settles
        async with asyncio.timeout(10):
            while gc.get_freeze_count() < 10_000:  # noqa: ASYNC110 - no event for it
                await asyncio.sleep(0.05)


def test_freezing_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().freeze_heap
    monkeypatch.setenv("FREEZE_HEAP", "0")
    assert not Settings.from_env().freeze_heap
    assert not make_settings("sqlite+aiosqlite:///x.db").freeze_heap


def test_the_keeper_freezes_again_as_streams_accumulate(unfreeze: None) -> None:
    keeper = HeapKeeper(grow_by=100, full_every=600)
    assert not keeper.check(50, now=1.0)
    held = [{"stream": i} for i in range(1_000)]  # what 100 new streams keep alive
    assert keeper.check(150, now=2.0)
    frozen = gc.get_freeze_count()
    assert frozen >= len(held)
    assert not keeper.check(200, now=3.0)  # 50 more: not yet
    assert not keeper.check(120, now=4.0)  # streams closed: the mark follows them down
    assert keeper.check(220, now=5.0)


def test_the_keeper_thaws_and_collects_the_whole_heap_now_and_then(unfreeze: None) -> None:
    keeper = HeapKeeper(grow_by=100, full_every=600)
    keeper.check(0, now=1.0)
    cycle: list[object] = []
    cycle.append(cycle)  # garbage only the collector finds
    gc.freeze()  # frozen with it, as a refreeze would
    del cycle
    before = gc.get_freeze_count()
    assert keeper.check(0, now=700.0)
    assert gc.get_freeze_count() < before  # the frozen garbage was collected
