"""What one browser has not been sent yet, coalesced so a slow browser never gets a backlog.

Entries are keyed by what they show: the newest row of a lead replaces an older one not yet sent
(a row is the lead's whole current state, so the older one is worth nothing), and the stats header,
the connection status and the ping are each kept once. Each entry is already the SSE bytes every
browser of its variant gets. A browser with more than `limit` entries waiting is past catching up
one row at a time: its backlog becomes one `refresh` (it reloads its view from the server).
"""

from __future__ import annotations

from collections.abc import Hashable

from sse_starlette import ServerSentEvent

REFRESH_KEY = "refresh"


def refresh_event(event_id: int) -> bytes:
    return ServerSentEvent(data="refresh", event="refresh", id=str(event_id)).encode()


class Backlog:
    __slots__ = ("_items", "limit", "newest_id", "overflowed", "since")

    def __init__(self, limit: int = 200) -> None:
        self._items: dict[Hashable, tuple[int, bytes]] = {}
        self.limit = limit
        self.newest_id = 0  # the newest event id put in, sent or not
        self.since: float | None = None  # when the oldest entry waiting was put in
        self.overflowed = 0  # how many times this backlog turned into a refresh

    def __len__(self) -> int:
        return len(self._items)

    @property
    def refreshing(self) -> bool:
        return REFRESH_KEY in self._items

    def put(self, key: Hashable, data: bytes, now: float, event_id: int = 0) -> None:
        """Queue `data` under `key`, replacing (and moving behind the rest) what waits under it.

        An entry with an older event id than the one waiting under its key is dropped: a replayed
        row must not take the place of a newer live one (nor lower the browser's Last-Event-ID).
        """
        items = self._items
        if REFRESH_KEY in items and key != "status":
            # A refresh reloads everything: rows put in after it would show nothing new; the
            # browser's position moves on to them.
            if event_id > self.newest_id:
                self.newest_id = event_id
                items[REFRESH_KEY] = (event_id, refresh_event(event_id))
            return
        waiting = items.pop(key, None)
        if waiting is not None and waiting[0] > event_id:
            items[key] = waiting
            return
        items[key] = (event_id, data)
        self.newest_id = max(self.newest_id, event_id)
        if self.since is None:
            self.since = now
        if len(items) > self.limit:
            self.overflow(now)

    def overflow(self, now: float) -> None:
        """Replace everything waiting with one refresh to the newest event id."""
        status = self._items.get("status")
        self._items.clear()
        self._items[REFRESH_KEY] = (self.newest_id, refresh_event(self.newest_id))
        if status is not None:
            self._items["status"] = status
        self.since = now
        self.overflowed += 1

    def take(self) -> bytes:
        """Everything waiting, as one chunk, in the order it was put in; empties the backlog."""
        data = b"".join(entry[1] for entry in self._items.values())
        self._items.clear()
        self.since = None
        return data
