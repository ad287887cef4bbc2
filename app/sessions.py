"""The session store: Litestar's server-side sessions, without rewriting an unchanged session.

Litestar writes the session back on every response, to slide its expiry. On the board that is a
file write (or a Redis SET) for the same bytes on every htmx request: about a tenth of a board
fragment's server time with the file store. This wrapper writes a session when its bytes change,
and an unchanged one at most every REFRESH_SECONDS, so a session still expires max_age after its
last use, give or take that. Reads always go to the store: a sign-out in another process counts
at once.
"""

from __future__ import annotations

import time
from datetime import timedelta

from litestar.stores.base import Store

REFRESH_SECONDS = 300.0
_KEEP = 10_000  # sessions remembered at most; past it the stale ones go


class QuietSessionStore(Store):
    def __init__(self, inner: Store, refresh: float = REFRESH_SECONDS) -> None:
        self._inner = inner
        self._refresh = refresh
        self._written: dict[str, tuple[bytes, float]] = {}  # key -> (bytes, when written here)

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        data = value.encode() if isinstance(value, str) else value
        now = time.monotonic()
        seen = self._written.get(key)
        if seen is not None and seen[0] == data and now - seen[1] < self._refresh:
            return
        await self._inner.set(key, value, expires_in)
        if len(self._written) >= _KEEP:
            self._written = {k: v for k, v in self._written.items() if now - v[1] < self._refresh}
        self._written[key] = (data, now)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        return await self._inner.get(key, renew_for)

    async def delete(self, key: str) -> None:
        self._written.pop(key, None)
        await self._inner.delete(key)

    async def delete_all(self) -> None:
        self._written.clear()
        await self._inner.delete_all()

    async def exists(self, key: str) -> bool:
        return await self._inner.exists(key)

    async def expires_in(self, key: str) -> int | None:
        return await self._inner.expires_in(key)

    async def __aenter__(self) -> None:
        await self._inner.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.__aexit__(*exc)  # type: ignore[arg-type]
