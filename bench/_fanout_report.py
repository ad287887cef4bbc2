"""What bench/fanout.py measures per level, and how it prints it."""

from __future__ import annotations

import asyncio
import collections
import json
import os
from dataclasses import dataclass, field
from typing import Any

from _common import (
    Child,
    fmt,
    percentile,
)

STATUS_VALUES = ("live", "catching-up", "delayed")
TARGETS = {
    "main_clients": 1000,
    "main_rate": 20.0,
    "main_p99_ms": 100.0,
    "main_kb_per_conn": 40.0,
    "main_board_p99_ms": 50.0,
    "big_clients": 2000,
    "big_rate": 5.0,
    "big_p99_ms": 250.0,
}


# == the benchmark ===============================================================================
@dataclass(frozen=True)
class Level:
    clients: int
    rate: float

    @property
    def label(self) -> str:
        return f"{self.clients:,} @ {self.rate:g}/s"


@dataclass(frozen=True)
class Leg:
    name: str  # sqlite | postgres
    database_url: str
    redis_url: str


class LevelFailed(RuntimeError):
    pass


@dataclass
class Posts:
    """The webhooks of one traffic window."""

    total: int
    ok_at: dict[int, float] = field(default_factory=dict)  # marker -> monotonic time of its 2xx
    sent_at: dict[int, float] = field(default_factory=dict)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    latency_ms: list[float] = field(default_factory=list)
    max_slip_ms: float = 0.0  # how late the schedule ran at worst

    @property
    def non2xx(self) -> int:
        return self.total - len(self.ok_at)


@dataclass
class Result:
    leg: str
    level: Level
    duration: float
    connected: int = 0
    connect_failed: int = 0
    connect_reasons: dict[str, int] = field(default_factory=dict)
    connect_s: float = float("nan")
    posts: Posts | None = None
    expected: int = 0
    received: int = 0
    late_markers: int = 0  # markers whose 2xx never came, seen anyway
    complete_markers: int = 0  # markers every connected browser saw
    lat_ms: list[float] = field(default_factory=list)
    lat_sent_ms: list[float] = field(default_factory=list)
    drain_s: float = float("nan")
    window_s: float = float("nan")
    server_cpu_pct: float = float("nan")
    clients_cpu_pct: float = float("nan")
    bench_cpu_pct: float = float("nan")
    load_avg: float = float("nan")  # the machine's 1-minute load average at the window's end
    rss_before_kb: int = 0
    rss_connected_kb: int = 0
    rss_after_kb: int = 0
    board_idle_ms: list[float] = field(default_factory=list)
    board_ms: list[float] = field(default_factory=list)
    board_bad: collections.Counter[int] = field(default_factory=collections.Counter)
    clients: dict[str, Any] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.expected - self.received

    def kb_per_conn(self, after: bool = False) -> float:
        if not self.connected or not self.rss_before_kb:
            return float("nan")
        rss = self.rss_after_kb if after else self.rss_connected_kb
        return (rss - self.rss_before_kb) / self.connected

    def status_count(self, value: str) -> int:
        return int(self.clients.get("status", {}).get(value, 0))


class ClientProcess:
    """The child holding the N streams: JSON lines on its stdout, commands on its stdin."""

    def __init__(self, child: Child) -> None:
        self.child = child

    async def read(self, wait_s: float) -> dict[str, Any]:
        proc = self.child.proc
        assert proc is not None and proc.stdout is not None
        try:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), wait_s)
        except TimeoutError:
            raise LevelFailed(
                f"the client process said nothing for {wait_s:.0f} s:\n{self.child.log_tail(10)}"
            ) from None
        if not line:
            raise LevelFailed(f"the client process exited:\n{self.child.log_tail(20)}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: str, wait_s: float) -> dict[str, Any]:
        proc = self.child.proc
        assert proc is not None and proc.stdin is not None
        proc.stdin.write(command.encode() + b"\n")
        proc.stdin.flush()
        return await self.read(wait_s)


# == report ======================================================================================
def ms_triplet(values: list[float]) -> str:
    top = max(values) if values else None
    return (
        f"p50 {fmt(percentile(values, 50), 1)}  p99 {fmt(percentile(values, 99), 1)}  "
        f"max {fmt(top, 1)} ms"
    )


def report_level(r: Result) -> None:
    p = r.posts
    assert p is not None
    c = r.clients
    print(f"  [{r.leg}] {r.level.label}: {r.connected:,} browsers, window {r.window_s:.1f} s")
    print(
        f"    delivered   {r.received:,} / {r.expected:,} (lost {r.lost:,}; markers every "
        f"browser saw: {r.complete_markers:,} of {len(p.ok_at):,}; drained in {r.drain_s:.1f} s)"
    )
    negative = sum(1 for x in r.lat_ms if x < 0)
    print(f"    latency     from the 2xx: {ms_triplet(r.lat_ms)} ({negative:,} before the 2xx)")
    print(f"                from the POST: {ms_triplet(r.lat_sent_ms)}")
    print(
        f"    CPU         server {fmt(r.server_cpu_pct)} %, client process "
        f"{fmt(r.clients_cpu_pct)} %, this process {fmt(r.bench_cpu_pct)} % (100 % = one core); "
        f"machine load average {r.load_avg:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"    server RSS  {r.rss_before_kb / 1024:.1f} MB before, "
        f"{r.rss_connected_kb / 1024:.1f} MB connected ({fmt(r.kb_per_conn(), 1)} KB/conn), "
        f"{r.rss_after_kb / 1024:.1f} MB after the traffic "
        f"({fmt(r.kb_per_conn(after=True), 1)} KB/conn)"
    )
    bad = f", non-200 {dict(r.board_bad)}" if r.board_bad else ""
    print(
        f"    board GET   {ms_triplet(r.board_ms)} (n {len(r.board_ms)}{bad}); with nobody "
        f"connected {ms_triplet(r.board_idle_ms)}"
    )
    errors = f", errors {dict(p.errors)}" if p.errors else ""
    print(
        f"    webhooks    {p.total:,} posted at {r.level.rate:g}/s, answers {dict(p.answers)}, "
        f"non-2xx {p.non2xx}{errors}; {ms_triplet(p.latency_ms)}; schedule late by at most "
        f"{p.max_slip_ms:.0f} ms"
    )
    events = c.get("lead_events", 0) + c.get("stats_events", 0)
    per_event = c.get("bytes", 0) / events / 1024 if events else float("nan")
    print(
        f"    events      lead {c.get('lead_events', 0):,} (duplicates {c.get('duplicates', 0):,},"
        f" without a marker {c.get('unmarked', 0):,}), stats {c.get('stats_events', 0):,}, "
        f"status {c.get('status', {})}, refresh {c.get('refresh', 0)}, other "
        f"{c.get('other', {})}; ~{fmt(per_event, 1)} KB per event on the wire"
    )
    print(
        f"    streams     disconnects {c.get('disconnects', 0)}, reconnects "
        f"{c.get('reconnects', 0)}"
        + (f" (failed {c['reconnect_failures']})" if c.get("reconnect_failures") else "")
        + f", open at the end {c.get('open', 0):,}"
    )
    if c.get("lead_events", 0) == 0:
        print("    CHECK: the browsers received no lead event at all")
    unprocessed = sum(n for answer, n in p.answers.items() if answer != "processed")
    if unprocessed:
        print(f"    CHECK: {unprocessed} webhooks not answered 'processed': {dict(p.answers)}")
    if r.server_errors:
        print(
            f"    server log  {len(r.server_errors)} error lines; first: {r.server_errors[0][:200]}"
        )
    if r.clients_cpu_pct >= 90:
        print("    NOTE: the client process was near a full core: latencies include its queueing")
    print(flush=True)


def table(results: list[Result]) -> list[str]:
    head = (
        "| database | browsers | events/s | received / expected | delivery p50 / p99 / max ms "
        "| server CPU | KB/conn | board GET p50 / p99 ms | webhook p50 / p99 ms | non-2xx "
        "| status live / catching-up / delayed | refresh |"
    )
    rows = [head, "|" + "---|" * 12]
    for r in results:
        p = r.posts
        assert p is not None
        top = max(r.lat_ms) if r.lat_ms else None
        rows.append(
            f"| {r.leg} | {r.level.clients:,} | {r.level.rate:g} | {r.received:,} / "
            f"{r.expected:,} | {fmt(percentile(r.lat_ms, 50), 1)} / "
            f"{fmt(percentile(r.lat_ms, 99), 1)} / {fmt(top, 1)} | {fmt(r.server_cpu_pct)} % | "
            f"{fmt(r.kb_per_conn(), 1)} | {fmt(percentile(r.board_ms, 50), 1)} / "
            f"{fmt(percentile(r.board_ms, 99), 1)} | {fmt(percentile(p.latency_ms, 50), 1)} / "
            f"{fmt(percentile(p.latency_ms, 99), 1)} | {p.non2xx} | "
            + " / ".join(str(r.status_count(v)) for v in STATUS_VALUES)
            + f" | {r.clients.get('refresh', 0)} |"
        )
    return rows


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def target_lines(results: list[Result], legs: list[str]) -> list[str]:
    t = TARGETS
    lines = []
    for leg in legs:
        mine = [r for r in results if r.leg == leg]
        main = [r for r in mine if r.level.clients == t["main_clients"]]
        main = [r for r in main if r.level.rate >= t["main_rate"]] or main
        if main:
            r = main[-1]
            p99 = percentile(r.lat_ms, 99)
            kb, kb_after = r.kb_per_conn(), r.kb_per_conn(after=True)
            board99 = percentile(r.board_ms, 99)
            harsh = "" if r.level.rate == t["main_rate"] else f" (measured at {r.level.rate:g}/s)"
            lines.append(
                f"[{leg}] 1,000 browsers at 20 events/s{harsh}: 0 lost ({r.lost:,} lost: "
                f"{verdict(r.lost == 0)}), delivery p99 <= 100 ms ({fmt(p99, 1)}: "
                f"{verdict(p99 <= t['main_p99_ms'])}), <= 40 KB/conn ({fmt(kb, 1)} connected, "
                f"{fmt(kb_after, 1)} after the traffic: {verdict(kb <= t['main_kb_per_conn'])}), "
                f"board GET "
                f"p99 <= 50 ms ({fmt(board99, 1)}: {verdict(board99 <= t['main_board_p99_ms'])})"
            )
        else:
            lines.append(f"[{leg}] 1,000 browsers at 20 events/s: not measured (--levels 1000)")
        big = [r for r in mine if r.level.clients == t["big_clients"]]
        exact = [r for r in big if r.level.rate <= t["big_rate"]]
        if exact:
            p99 = percentile(exact[-1].lat_ms, 99)
            lines.append(
                f"[{leg}] 2,000 browsers at {exact[-1].level.rate:g} events/s: delivery p99 <= "
                f"250 ms ({fmt(p99, 1)}: {verdict(p99 <= t['big_p99_ms'])})"
            )
        elif big:
            r = big[-1]
            p99 = percentile(r.lat_ms, 99)
            note = (
                "met even at this higher rate"
                if p99 <= t["big_p99_ms"]
                else "not judged: run --levels 2000@5"
            )
            lines.append(
                f"[{leg}] 2,000 browsers at 5 events/s: measured at {r.level.rate:g}/s only, "
                f"p99 {fmt(p99, 1)} ms ({note})"
            )
        else:
            lines.append(f"[{leg}] 2,000 browsers at 5 events/s: not measured (--levels 2000@5)")
    return lines
