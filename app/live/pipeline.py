"""One process's live path, wired: broker -> hub -> fan-out, with the log tail beside Redis."""

from __future__ import annotations

import asyncio
import logging

from jinja2 import Environment

from app.db import Database
from app.leads.cache import BoardCache
from app.live.broker import Broker, RedisBroker, create_broker
from app.live.fanout import Fanout
from app.live.render import LiveRenderer
from app.live.tail import LogTail
from app.live.views import ViewRenderer

log = logging.getLogger(__name__)


class LivePipeline:
    def __init__(
        self,
        db: Database,
        env: Environment,
        cache: BoardCache,
        *,
        redis_url: str | None,
        ping_seconds: float = 15.0,
        broker: Broker | None = None,
    ) -> None:
        self.broker = broker or create_broker(redis_url)
        self.renderer = LiveRenderer(db, env, cache)
        self.fanout = Fanout(self.renderer, ViewRenderer(db, env, cache), ping_seconds=ping_seconds)
        hub = self.broker.hub
        self.tail = LogTail(db, hub.deliver)
        if not isinstance(self.broker, RedisBroker):
            # Without Redis the log is how other processes on this database (`serve --workers`,
            # the command line) are heard: always at the short interval, so "Live" stays true
            # to within half a second.
            self.tail.slow_seconds = self.tail.fast_seconds
        hub.listen(self.fanout.on_change, self._on_receiving)
        self.fanout.delayed = not hub.receiving
        self.tail.fast = not hub.receiving
        self._restoring: asyncio.Task[None] | None = None

    def _on_receiving(self, receiving: bool) -> None:
        self.tail.set_fast(not receiving)
        if not receiving:
            self.fanout.set_delayed(True)
            return
        # Back: read what the outage hid from the log first, then say "live".
        self._restoring = asyncio.get_running_loop().create_task(self._restore())

    async def _restore(self) -> None:
        try:
            await self.tail.poll()
            await self.fanout.drain()
        except Exception as exc:  # the database too is away; the tail keeps trying
            log.warning("catching up from the change log failed: %s", exc)
        if self.broker.hub.receiving:
            self.fanout.set_delayed(False)

    async def start(self) -> None:
        await self.fanout.start()
        await self.tail.start()
        await self.broker.start()

    async def stop(self) -> None:
        await self.fanout.stop()
        await self.tail.stop()
        await self.broker.stop()
