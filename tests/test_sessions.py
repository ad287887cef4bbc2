"""The session store writes a session when it changes, an unchanged one only now and then."""

from __future__ import annotations

from datetime import timedelta

from litestar.stores.memory import MemoryStore

from app.sessions import QuietSessionStore


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        self.writes += 1
        await super().set(key, value, expires_in)


async def test_unchanged_sessions_are_not_rewritten_until_refresh_is_due() -> None:
    inner = CountingStore()
    store = QuietSessionStore(inner, refresh=300)
    await store.set("s1", b'{"uid":1}', expires_in=60)
    await store.set("s1", b'{"uid":1}', expires_in=60)  # the next request, nothing changed
    assert inner.writes == 1 and await store.get("s1") == b'{"uid":1}'
    await store.set("s1", b'{"uid":1,"ws":2}', expires_in=60)  # changed: written
    await store.set("s2", b'{"uid":1,"ws":2}', expires_in=60)  # another session
    assert inner.writes == 3 and await store.get("s1") == b'{"uid":1,"ws":2}'
    await store.delete("s1")  # sign-out
    assert await store.get("s1") is None and not await store.exists("s1")
    await store.set("s1", b'{"uid":1,"ws":2}', expires_in=60)  # signed in again: written
    assert inner.writes == 4 and await store.get("s1") is not None

    due = QuietSessionStore(inner, refresh=0)  # refresh due at once: every set writes
    await due.set("s3", b"x", expires_in=60)
    await due.set("s3", b"x", expires_in=60)
    assert inner.writes == 6 and await due.expires_in("s3") is not None
