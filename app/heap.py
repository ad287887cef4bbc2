"""The heap a server process lives with, settled once it has started.

CPython's full garbage collection walks every container object the process holds. For this app
that is ~150,000 objects after start-up (modules, SQLAlchemy, Litestar, Jinja), and walking them
takes ~100 ms on a small machine: a request that meets a full collection stalls that long.
Nothing made at start-up is ever garbage, so once the server has started, every template is
compiled and the heap is frozen (gc.freeze): collections then walk only what came later.
"""

from __future__ import annotations

import asyncio
import gc

from jinja2 import Environment


def settle(env: Environment) -> int:
    """Compile every template (each language's copy), collect, and freeze what is left.
    Returns how many objects were frozen."""
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class HeapKeeper:
    """Keeps what a running server holds for long (open streams, cached partials) out of the
    collector's walks too.

    A thousand open `/events` streams and the row caches add several hundred thousand objects
    after start-up; with them the full collections CPython runs every few seconds under traffic
    took 50-83 ms each (`bench/fanout.py`, 1,000 browsers at 20 events/s), and every request or
    live row in flight waited that long. So: whenever `grow_by` more streams are open than at the
    last freeze, collect the young generations and freeze again. What a frozen object drops later
    is freed by reference counting as usual; only garbage in reference cycles waits in the frozen
    heap, so every `full_every` seconds the heap is thawed and collected once, which costs one
    such pause in that time instead of one every few seconds.
    """

    def __init__(self, *, grow_by: int = 100, full_every: float = 600.0) -> None:
        self.grow_by = grow_by
        self.full_every = full_every
        self._frozen_at = 0  # open streams at the last freeze
        self._last_full = 0.0

    def check(self, open_streams: int, now: float) -> bool:
        """Freeze again if the streams grew enough (or the full interval passed); True if it did."""
        if not self._last_full:
            self._last_full = now
        if now - self._last_full >= self.full_every:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._last_full, self._frozen_at = now, open_streams
            return True
        if open_streams - self._frozen_at >= self.grow_by:
            gc.collect(1)
            gc.freeze()
            self._frozen_at = open_streams
            return True
        self._frozen_at = min(self._frozen_at, open_streams)
        return False


async def settle_soon(env: Environment) -> int:
    """settle() after start-up without holding up the first requests: the templates compile one
    per loop turn (each a few ms), then the heap is collected and frozen. Done inside the
    lifespan, settle() kept a fresh process from answering for ~0.7 s."""
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)
        await asyncio.sleep(0)
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
