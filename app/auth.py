"""Machine authentication: `Authorization: Bearer <key>` names exactly one workspace."""

from __future__ import annotations

import time

from app.db import Database
from app.workspaces.models import Workspace
from app.workspaces.services import by_api_token, by_sarah_key, hash_key


class KeyDirectory:
    """Key hash -> workspace, cached briefly (the bot calls twice per message)."""

    def __init__(self, db: Database, ttl_seconds: float = 5.0) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Workspace]] = {}

    async def workspace_for(self, key: str, *, api_tokens: bool = False) -> Workspace | None:
        """The workspace a Sarah key (or, for the JSON API, an API token) belongs to."""
        digest = hash_key(key) + (":api" if api_tokens else "")
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with self._db.session() as session:
            workspace = await by_sarah_key(session, key)
            if workspace is None and api_tokens:
                workspace = await by_api_token(session, key)
        if workspace is not None:
            self._cache[digest] = (time.monotonic() + self._ttl, workspace)
        return workspace

    def forget(self) -> None:
        self._cache.clear()


def bearer_key(authorization: str | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` header; None for anything else."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
