"""Who a signed-in user is and where they belong, remembered for a few seconds.

Every page, htmx fragment and event stream needs the user and their workspaces; they change
rarely (an admin saving the workspace settings, `leadboard user create`). Each process keeps them
per user for TTL seconds, one read session on a miss. Saving settings forgets them at once in this
process (other processes follow within TTL), and a workspace the remembered list lacks is looked
up again before it is refused, so a membership added elsewhere works at once.
"""

from __future__ import annotations

import time
import weakref

from app.accounts.models import User
from app.accounts.services import WorkspaceAccess, workspaces_of
from app.db import Database

TTL_SECONDS = 5.0
_KEEP = 10_000  # users remembered at most; past it the expired ones go


class ViewerCache:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self._ttl = ttl
        self._entries: dict[int, tuple[float, User, list[WorkspaceAccess]]] = {}

    async def get(
        self, db: Database, user_id: int, *, fresh: bool = False
    ) -> tuple[User | None, list[WorkspaceAccess]]:
        """The user (None if there is no such user) and their workspaces, oldest first."""
        now = time.monotonic()
        hit = self._entries.get(user_id)
        if hit is not None and not fresh and hit[0] > now:
            return hit[1], hit[2]
        async with db.session() as session:
            user = await session.get(User, user_id)
            accesses = await workspaces_of(session, user_id) if user is not None else []
        if user is None:
            self._entries.pop(user_id, None)
            return None, []
        if len(self._entries) >= _KEEP:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        self._entries[user_id] = (now + self._ttl, user, accesses)
        return user, accesses

    def forget(self) -> None:
        self._entries.clear()


_caches: weakref.WeakKeyDictionary[Database, ViewerCache] = weakref.WeakKeyDictionary()


def viewer_cache(db: Database) -> ViewerCache:
    """The cache of this database's viewers (one per Database: an app, or a test's app)."""
    cache = _caches.get(db)
    if cache is None:
        cache = _caches[db] = ViewerCache()
    return cache
