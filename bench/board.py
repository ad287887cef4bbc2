"""The board at scale, on SQLite and PostgreSQL: 100,000 leads in one workspace and a day of
webhook deliveries, every filter, sort and search, the contact page of a lead with 5,000 timeline
items, and the streamed CSV export.

    .venv/bin/python bench/board.py [--database sqlite postgres] [--leads 100000]
                                    [--inbox 100000] [--reps 50] [--keep] [--db PATH] [--plans]
                                    [--warmup N] [--seed N] [--no-http]

Each --database (both by default) is a leg, run one after the other; the end prints both side
by side. PostgreSQL runs on a fresh database of the server at 127.0.0.1:5432 (bench/_common.py
postgres_database, dropped afterwards); when it cannot be reached that leg is skipped, saying why.

1. Seed (bench/_board_seed.py; the SQLite leg skips it with --db PATH, a file this script seeded
   and kept with --keep): migrated with app.migrate.upgrade; the workspace and six people (one
   admin, five agents) through the app's own services; the leads (6 % flagged stale by
   reconciliation, most still quiet, some active again since), one lead with 5,000 timeline
   items, --inbox deliveries received over the last 24 h (processed), and a second workspace of
   leads/10 leads none of which was ever flagged; bulk-loaded (SQLite executemany, PostgreSQL
   COPY, the contacts indexes rebuilt from their own definitions), PostgreSQL then ANALYZEd. The
   same --seed gives the same data on both databases. Timed.
2. In-process (precise): the functions the controllers call (board_rows for every filter x every
   sort, pipeline_columns, board_stats, facet_counts, searches, timeline pages 1 and 2, lead_row,
   and the whole set of queries BoardController.board (the feed indicator included) and
   LeadController.show run, with the facet counts the controllers have from BoardCache), each as
   one Database.read like the controllers make it, after warm-up: --reps timed calls, p50/p95 of
   wall time, and the p50 of this process's CPU time (which other load on the machine does not
   inflate; on PostgreSQL the server's own CPU is not in it).
3. Over HTTP: `leadboard serve` on the seeded database (DEMO_WORKSPACE=0), signed in with httpx
   like a browser. The board's htmx fragment (HX-Request, HX-Target: board-view) for the same
   cases, the full board page (which reads the feed indicator), the lead page, and GET /healthz
   as the baseline. Reported: client time p50/p95, "server time" = client time - the p50 of GET
   /healthz in the same run (the loopback + HTTP + middleware floor), and the server's CPU per
   request (from /proc, averaged over the reps). A case repeats one URL, so from its second
   request the rows come from the row cache (app.templating LeadPartial), as they do for a team
   re-fetching its board after live events; "fresh pages" then walks --reps pages by each page's
   Next link, rows no request showed before, so every row partial renders (the cold path).
4. GET /export.csv: every lead, streamed; rows/s, and the server's RSS (VmRSS sampled while it
   streams, VmHWM) before and after, to show memory stays flat.

Targets (reported PASS/FAIL, never asserted): board first page p95 <= 30 ms server time for
every filter and sort; search p95 <= 100 ms; contact page (5,000 items) p95 <= 50 ms; the same
on both databases. Cases that miss a target get their query plans printed (SQLite: EXPLAIN QUERY
PLAN; PostgreSQL: EXPLAIN (ANALYZE, BUFFERS)); --plans: for every case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import os
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _board_seed import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Seeded,
    database_size_mb,
    discover,
    facet_values,
    seed,
)
from _common import (
    LEADBOARD_BIN,
    Child,
    PostgresUnavailable,
    command_line,
    free_port,
    install_sigterm_handler,
    percentile,
    postgres_database,
    scratch_dir,
    wait_http,
)
from sqlalchemy import Connection, event

import app.prepared
from app.db import Database
from app.leads.board import (
    STATUSES,
    TEMPERATURES,
    BoardQuery,
    Facets,
    board_rows,
    facet_counts,
    pipeline_columns,
)
from app.leads.cache import FACET_COLUMNS, today_start
from app.leads.queries import board_stats, lead_details, lead_row
from app.leads.timeline import timeline
from app.live.outbox import latest_change_id
from app.migrate import upgrade
from app.reconcile.health import feed_health
from app.workspaces.models import Workspace

TARGETS = {"board": 30.0, "search": 100.0, "contact": 50.0}
DATABASE_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
HX_BOARD = {"HX-Request": "true", "HX-Target": "board-view"}
HX_TIMELINE = {"HX-Request": "true", "HX-Target": "timeline-more"}


# -- cases -----------------------------------------------------------------------------------------
Runner = Callable[[Connection], int]


@dataclass
class Case:
    key: str  # what the tables show
    group: str  # board | search | contact | other
    run: Runner  # in-process: the controller's calls; returns the rows it produced
    path: str | None = None  # over HTTP
    headers: dict[str, str] = field(default_factory=dict)
    inproc: list[float] = field(default_factory=list)
    inproc_cpu: list[float] = field(default_factory=list)  # CPU time of the process (all threads)
    http: list[float] = field(default_factory=list)
    cpu_ms: float = float("nan")
    rows: int = 0
    plans: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def target(self) -> float | None:
        return TARGETS.get(self.group)


def _board_filters(s: Seeded) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = [("all", {})]
    out += [(f"status={v}", {"status": v}) for v in STATUSES]
    out += [(f"temperature={v}", {"temperature": v}) for v in TEMPERATURES]
    for column in ("phase", "business_type", "location"):
        common, rare = facet_values(s.url, s.workspace_id, column)
        out.append((f"{column}={common} (most)", {column: common}))
        out.append((f"{column}={rare} (least)", {column: rare}))
    out += [
        ("owner=me", {"owner": "me"}),
        ("owner=none", {"owner": "none"}),
        ("needs_reply", {"needs_reply": True}),
        ("stale", {"stale": True}),
    ]
    return out


def _phone_query(phone_e164: str) -> str:
    """A lead's number as people type it: 0812-3456-7890."""
    local = "0" + phone_e164.removeprefix("+62")
    return f"{local[:4]}-{local[4:8]}-{local[8:]}"


SEARCHES = [
    ("name: budi", "budi"),
    ("name: santoso", "santoso"),
    ("name: dewi lest", "dewi lest"),
    ("name: handayani", "handayani"),
    ("phone: 0812 3456", "0812 3456"),
    ("phone: +62 857-12", "+62 857-12"),
    ("phone: 0878", "0878"),
    ("business: katering", "katering"),
    ("business: studio foto", "studio foto"),
    ("location: bekasi", "bekasi"),
    ("no match: zzzz", "zzzz"),
]


@dataclass
class FirstReads:
    """What the cases need from the database before they run."""

    older_cursor: str  # the cursor the lead page's "Older" button carries (end of page 1)
    facets: Facets  # the workspace's facet counts (what BoardCache holds for the controllers)
    workspace: Workspace  # what the viewer carries (the feed indicator reads it)
    quiet_facets: Facets  # the never-flagged workspace's


async def first_reads(s: Seeded) -> FirstReads:
    db = Database(s.url)
    ws, quiet = s.workspace_id, s.quiet_workspace_id

    def all_facets(conn: Connection, workspace_id: int | None) -> Facets:
        if workspace_id is None:
            return {}
        return {c: facet_counts(conn, workspace_id, c) for c in FACET_COLUMNS}

    try:
        page = await db.read(lambda conn: timeline(conn, ws, s.big_lead_id))
        facets = await db.read(lambda conn: all_facets(conn, ws))
        quiet_facets = await db.read(lambda conn: all_facets(conn, quiet))
        async with db.session() as session:
            workspace = await session.get(Workspace, ws)
        assert workspace is not None
    finally:
        await db.dispose()
    return FirstReads(page.next_cursor or "", facets, workspace, quiet_facets)


def build_cases(s: Seeded, first: FirstReads) -> list[Case]:
    ws, me, facets, older_cursor = s.workspace_id, s.admin_id, first.facets, first.older_cursor
    cases: list[Case] = []

    def board(key: str, query: BoardQuery, group: str = "board") -> None:
        def run(conn: Connection) -> int:
            return len(board_rows(conn, ws, query, me, facets).rows)

        cases.append(Case(key, group, run, query.url("/"), HX_BOARD))

    def quiet_stale(sort: str) -> Runner:
        assert s.quiet_workspace_id is not None
        quiet, query = s.quiet_workspace_id, BoardQuery(sort=sort, stale=True)

        def run(conn: Connection) -> int:
            return len(board_rows(conn, quiet, query, None, first.quiet_facets).rows)

        return run

    for sort in ("activity", "score", "newest"):
        for name, params in _board_filters(s):
            board(f"{name} sort={sort}", BoardQuery(sort=sort, **params))
        if s.quiet_workspace_id is not None:  # in-process only: the admin is not a member
            label = f"stale, none flagged ({s.quiet_leads // 1000}k) sort={sort}"
            cases.append(Case(label, "board", quiet_stale(sort)))

    def pipeline(conn: Connection) -> int:
        query = BoardQuery(view="pipeline")
        columns = pipeline_columns(conn, ws, query, me, facets=facets)
        return sum(len(c.cards) for c in columns)

    cases.append(Case("pipeline (5 columns)", "board", pipeline, "/?view=pipeline", HX_BOARD))

    def board_view(conn: Connection) -> int:
        """What BoardController.board reads for the whole page of the default view: the feed
        indicator too (stats, facets and the workspace's people are cached)."""
        latest_change_id(conn, ws)
        feed_health(conn, first.workspace, exact=False)
        return len(board_rows(conn, ws, BoardQuery(), me, facets).rows)

    cases.append(Case("board full page GET / (+feed indicator)", "board", board_view, "/", {}))

    searches = [*SEARCHES, ("phone: one lead's full number", _phone_query(s.sample_phone))]
    for label, q in searches:
        board(f"search {label}", BoardQuery(q=q), "search")
    board("search budi + status=new", BoardQuery(q="budi", status="new"), "search")

    def tl_first(conn: Connection) -> int:
        return len(timeline(conn, ws, s.big_lead_id).items)

    def tl_second(conn: Connection) -> int:
        return len(timeline(conn, ws, s.big_lead_id, cursor=older_cursor).items)

    def row(conn: Connection) -> int:
        return int(lead_row(conn, ws, s.big_lead_id) is not None)

    def contact_page(lead_id: int) -> Runner:
        def run(conn: Connection) -> int:
            """Everything LeadController.show reads (the workspace's people are cached)."""
            lead_row(conn, ws, lead_id)
            lead_details(conn, ws, lead_id)
            items = timeline(conn, ws, lead_id)
            latest_change_id(conn, ws)
            return len(items.items)

        return run

    big = f"/leads/{s.big_lead_id}"
    cases += [
        Case(f"timeline page 1 ({s.timeline_items:,} items)", "contact", tl_first),
        Case("timeline page 2 (Older button)", "contact", tl_second,
             f"{big}?before={older_cursor}", HX_TIMELINE),
        Case("lead_row", "contact", row),
        Case(f"contact page queries ({s.timeline_items:,} items)", "contact",
             contact_page(s.big_lead_id), big, {}),
        Case("contact page queries (small lead)", "contact", contact_page(s.small_lead_id),
             f"/leads/{s.small_lead_id}", {}),
    ]  # fmt: skip

    def stats(conn: Connection) -> int:
        board_stats(conn, ws, today_start("Asia/Jakarta"))
        return 1

    cases.append(Case("board_stats (cached 2 s)", "other", stats))
    for column in FACET_COLUMNS:

        def facet(conn: Connection, column: str = column) -> int:
            return len(facet_counts(conn, ws, column))

        cases.append(Case(f"facet_counts {column} (cached 30 s)", "other", facet))
    return cases


# -- in-process ------------------------------------------------------------------------------------
class Capture:
    """The SQL a call sends (for the plans), from the engine's own event, and the statements
    app.prepared runs straight on the DBAPI cursor (the feed indicator's, the event position),
    seen through its _execute while recording only (never while timing)."""

    SKIP = ("BEGIN", "PRAGMA", "ROLLBACK", "COMMIT", "SAVEPOINT", "RELEASE", "SET")

    def __init__(self, db: Database) -> None:
        self.on = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(db.read_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cur: Any, statement: str, params: Any, *_a: Any) -> None:
        if self.on and not statement.lstrip().upper().startswith(self.SKIP):
            self.statements.append((statement, params))

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[tuple[str, Any]]]:
        self.statements = []
        self.on = True
        execute = app.prepared._execute

        def seen(conn: Connection, sql: str, params: Any, *, many: bool = False) -> Any:
            if not many:
                self._seen(None, None, sql, params)
            return execute(conn, sql, params, many=many)

        app.prepared._execute = seen
        try:
            yield self.statements
        finally:
            app.prepared._execute = execute
            self.on = False


_SELECT_LIST = re.compile(r"SELECT ((?:(?!\bFROM\b).){100,}?) FROM")


def short_sql(sql: str) -> str:
    """One line, long select lists folded, so WHERE and ORDER BY stay visible."""
    flat = " ".join(sql.split())
    return _SELECT_LIST.sub(lambda m: f"SELECT <{m.group(1).count(',') + 1} columns> FROM", flat)


Plans = list[tuple[str, list[str]]]


def _fold(found: list[tuple[str, Any, list[str]]]) -> Plans:
    """One entry per (statement, plan), with its first parameters; repeats counted (xN)."""
    seen: dict[tuple[str, tuple[str, ...]], list[Any]] = {}  # -> [first params, count]
    for sql, params, lines in found:
        entry = seen.setdefault((short_sql(sql), tuple(lines)), [list(params or ()), 0])
        entry[1] += 1
    out = []
    for (sql, plan), (params, count) in seen.items():
        times = f" (x{count}, first params shown)" if count > 1 else ""
        out.append((f"{sql}  -- params {params}{times}", list(plan)))
    return out


def explain_sqlite(db_path: Path, statements: list[tuple[str, Any]]) -> Plans:
    """EXPLAIN QUERY PLAN of each statement, with its parameters."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    found = []
    try:
        for sql, params in statements:
            rows = conn.execute("EXPLAIN QUERY PLAN " + sql, tuple(params or ())).fetchall()
            depth: dict[int, int] = {0: 0}
            lines = []
            for ident, parent, _unused, detail in rows:
                depth[ident] = depth.get(parent, 0) + 1
                lines.append("  " * depth[ident] + str(detail))
            found.append((sql, params, lines))
    finally:
        conn.close()
    return _fold(found)


async def explain_postgres(url: str, statements: list[tuple[str, Any]]) -> Plans:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement with its parameters (the plan PostgreSQL
    makes for those values; read-only statements, so running them is harmless)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    found = []
    try:
        for sql, params in statements:
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *(params or ()))
            found.append((sql, params, [str(r[0]) for r in rows]))
    finally:
        await conn.close()
    return _fold(found)


async def explain(s: Seeded, statements: list[tuple[str, Any]]) -> Plans:
    if s.db_path is not None:
        return explain_sqlite(s.db_path, statements)
    return await explain_postgres(s.url, statements)


async def measure_inprocess(s: Seeded, cases: list[Case], reps: int, warmup: int) -> None:
    db = Database(s.url)
    capture = Capture(db)
    try:
        for n, case in enumerate(cases, 1):
            with capture.recording() as statements:
                case.rows = await db.read(case.run)
            case.plans = await explain(s, statements)
            for _ in range(warmup):
                await db.read(case.run)
            samples, cpu = [], []
            for _ in range(reps):
                c0, t0 = time.process_time_ns(), time.perf_counter_ns()
                await db.read(case.run)  # as the controllers read: one hand-off to a reader
                samples.append((time.perf_counter_ns() - t0) / 1e6)
                cpu.append((time.process_time_ns() - c0) / 1e6)
            case.inproc, case.inproc_cpu = samples, cpu
            print(
                f"  [{n:3d}/{len(cases)}] {case.key:<52} p50 {percentile(samples, 50):7.2f} ms"
                f"  p95 {percentile(samples, 95):7.2f} ms  cpu p50 {percentile(cpu, 50):7.2f} ms",
                flush=True,
            )
    finally:
        await db.dispose()


# -- HTTP ------------------------------------------------------------------------------------------
def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in kB from /proc (psutil is not in the venv)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


@contextlib.contextmanager
def board_server(workdir: Path, url: str) -> Iterator[tuple[str, Child]]:
    """`leadboard serve` on the seeded database; SIGTERM on the way out, errors included."""
    port = free_port()
    env = {
        "DATABASE_URL": url,
        "DEMO_WORKSPACE": "0",
        "REDIS_URL": "",
        "RECONCILE_INTERVAL_MINUTES": "100000",  # no reconciliation run during the benchmark
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [str(LEADBOARD_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    child = Child("leadboard", argv, workdir / f"server-{port}.log", env=env)
    child.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(child, f"{base}/healthz")
        yield base, child
    finally:
        child.stop()


def sign_in(client: httpx.Client) -> None:
    """Like a browser: the form page sets the CSRF cookie, the form posts it back."""
    client.get("/login").raise_for_status()
    token = client.cookies.get("csrftoken", "")
    response = client.post(
        "/login",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "_csrf_token": token, "next": "/"},
    )
    if response.status_code != 303:
        raise RuntimeError(f"sign-in failed: {response.status_code} {response.text[:300]}")


def sign_out(client: httpx.Client) -> None:
    """Leave no session behind in the server's session store."""
    token = client.cookies.get("csrftoken") or ""
    client.post("/logout", data={"_csrf_token": token})


def _timed_get(client: httpx.Client, path: str, headers: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter_ns()
    response = client.get(path, headers=headers)
    elapsed = (time.perf_counter_ns() - t0) / 1e6
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} -> {response.status_code}: {response.text[:300]}")
    return elapsed, len(response.content)


def measure_healthz(client: httpx.Client, reps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        _timed_get(client, "/healthz", {})
    return [_timed_get(client, "/healthz", {})[0] for _ in range(reps)]


def measure_http(
    client: httpx.Client, child: Child, cases: list[Case], reps: int, warmup: int, floor: float
) -> None:
    http_cases = [c for c in cases if c.path]
    for n, case in enumerate(http_cases, 1):
        assert case.path is not None
        for _ in range(warmup):
            _timed_get(client, case.path, case.headers)
        cpu0 = child.cpu_seconds()
        case.http = [_timed_get(client, case.path, case.headers)[0] for _ in range(reps)]
        case.cpu_ms = (child.cpu_seconds() - cpu0) * 1000 / reps
        print(
            f"  [{n:3d}/{len(http_cases)}] {case.key:<52} client p50 "
            f"{percentile(case.http, 50):7.2f} p95 {percentile(case.http, 95):7.2f} ms"
            f"  server~ p95 {percentile(case.http, 95) - floor:7.2f} ms"
            f"  cpu {case.cpu_ms:6.2f} ms/req",
            flush=True,
        )


_NEXT_PAGE = re.compile(r'rel="next" href="([^"]+)"')


@dataclass
class FreshPages:
    """Pages reached by the "Next" link: rows no earlier request showed (rendered uncached)."""

    query: str
    http: list[float]
    cpu_ms: float


def measure_fresh_pages(
    client: httpx.Client, child: Child, query: BoardQuery, pages: int
) -> FreshPages:
    """Walk `pages` pages after the first, each by the previous page's "Next" link, as a person
    paging down the board: the cold path (every row partial rendered, nothing cached)."""
    path: str | None = query.url("/")
    response = client.get(path, headers=HX_BOARD)
    samples: list[float] = []
    cpu0 = child.cpu_seconds()
    for _ in range(pages):
        found = _NEXT_PAGE.search(response.text)
        if found is None:
            break
        path = html.unescape(found.group(1))
        t0 = time.perf_counter_ns()
        response = client.get(path, headers=HX_BOARD)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        response.raise_for_status()
    cpu_ms = (child.cpu_seconds() - cpu0) * 1000 / max(1, len(samples))
    return FreshPages(query.url("/"), samples, cpu_ms)


@dataclass
class ExportRun:
    rows: int
    bytes: int
    seconds: float
    ttfb: float
    rss_before_kb: int
    rss_peak_kb: int
    rss_after_kb: int
    hwm_before_kb: int
    hwm_after_kb: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


def measure_export(client: httpx.Client, child: Child) -> ExportRun:
    before = _proc_status(child.pid)
    peak = [before.get("VmRSS", 0)]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _proc_status(child.pid).get("VmRSS", 0))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    newlines = size = 0
    ttfb = float("nan")
    t0 = time.perf_counter()
    try:
        with client.stream("GET", "/export.csv", timeout=600) as response:
            if response.status_code != 200:
                raise RuntimeError(f"GET /export.csv -> {response.status_code}")
            for chunk in response.iter_bytes():
                if ttfb != ttfb:
                    ttfb = time.perf_counter() - t0
                newlines += chunk.count(b"\n")
                size += len(chunk)
        seconds = time.perf_counter() - t0
    finally:
        done.set()
        sampler.join()
    time.sleep(0.2)
    after = _proc_status(child.pid)
    return ExportRun(
        rows=newlines - 1,  # the header line
        bytes=size,
        seconds=seconds,
        ttfb=ttfb,
        rss_before_kb=before.get("VmRSS", 0),
        rss_peak_kb=max(peak[0], after.get("VmRSS", 0)),
        rss_after_kb=after.get("VmRSS", 0),
        hwm_before_kb=before.get("VmHWM", 0),
        hwm_after_kb=after.get("VmHWM", 0),
    )


# -- report ----------------------------------------------------------------------------------------
def _verdict(p95: float, target: float | None) -> str:
    if target is None or p95 != p95:
        return "-"
    return "PASS" if p95 <= target else "FAIL"


def print_inprocess(cases: list[Case], title: str) -> None:
    print()
    print(
        f"{title} in-process (the controllers' calls, warm caches; ms). cpu p50 = CPU time of "
        "this process (robust to other load)"
    )
    print(
        f"  {'case':<54} {'rows':>5} {'p50':>8} {'p95':>8} {'max':>8} {'cpu p50':>8} "
        f"{'target':>7}  verdict"
    )
    group = ""
    for c in cases:
        if c.group != group:
            group = c.group
            print(f"  -- {group}")
        p95 = percentile(c.inproc, 95)
        target = f"{c.target:.0f}" if c.target else "-"
        print(
            f"  {c.key:<54} {c.rows:>5} {percentile(c.inproc, 50):8.2f} {p95:8.2f} "
            f"{max(c.inproc):8.2f} {percentile(c.inproc_cpu, 50):8.2f} {target:>7}  "
            f"{_verdict(p95, c.target)}"
        )


def print_http(cases: list[Case], floor_samples: list[float], title: str) -> float:
    floor = percentile(floor_samples, 50)
    print()
    print(
        f"{title} over HTTP (sequential, keep-alive; ms). server~ = client - p50 of GET /healthz "
        f"({floor:.2f} ms); cpu = server CPU per request"
    )
    print(
        f"  {'case':<54} {'c.p50':>7} {'c.p95':>7} {'s~p50':>7} {'s~p95':>7} {'cpu':>6} "
        f"{'target':>6}  verdict"
    )
    print(f"  {'GET /healthz (baseline)':<54} {floor:7.2f} {percentile(floor_samples, 95):7.2f}")
    group = ""
    for c in cases:
        if not c.http:
            continue
        if c.group != group:
            group = c.group
            print(f"  -- {group}")
        p50, p95 = percentile(c.http, 50), percentile(c.http, 95)
        target = f"{c.target:.0f}" if c.target else "-"
        print(
            f"  {c.key:<54} {p50:7.2f} {p95:7.2f} {p50 - floor:7.2f} {p95 - floor:7.2f} "
            f"{c.cpu_ms:6.2f} {target:>6}  {_verdict(p95 - floor, c.target)}"
        )
    return floor


def print_plans(cases: list[Case], floor: float, all_plans: bool, title: str) -> None:
    """Plans of the cases whose queries miss (in-process); HTTP-only misses are listed apart:
    their queries are within target, the rest of the request is not."""
    query_misses, http_only = [], []
    for c in cases:
        if c.target is None and not all_plans:
            continue
        miss_in = c.target is not None and percentile(c.inproc, 95) > c.target
        miss_http = (
            c.target is not None and bool(c.http) and (percentile(c.http, 95) - floor > c.target)
        )
        if all_plans or miss_in:
            query_misses.append((c, miss_in, miss_http))
        elif miss_http:
            http_only.append(c)
    if query_misses:
        print()
        which = "" if all_plans else " of the cases whose queries miss the target"
        print(f"{title} query plans{which}")
        for c, miss_in, miss_http in query_misses:
            where = [w for w, m in (("in-process", miss_in), ("HTTP", miss_http)) if m]
            print(
                f"\n  {c.key}: in-process p95 {percentile(c.inproc, 95):.2f} ms, cpu p50 "
                f"{percentile(c.inproc_cpu, 50):.2f} ms"
                + (f"  [misses: {', '.join(where)}]" if where else "")
            )
            for sql, lines in c.plans:
                print(f"    SQL: {sql}")
                for line in lines:
                    print(f"     {line}")
    if http_only:
        print()
        print(
            f"{title}: missed over HTTP only (queries within target in-process; the time is "
            "rendering, session/viewer lookups, cache refreshes, or load on the machine):"
        )
        for c in http_only:
            print(
                f"  {c.key:<54} server~ p95 {percentile(c.http, 95) - floor:7.2f} ms, query "
                f"p95 {percentile(c.inproc, 95):6.2f} ms, server cpu {c.cpu_ms:6.2f} ms/req"
            )


def _group_line(cases: list[Case], group: str, values: Callable[[Case], float]) -> str:
    chosen = [c for c in cases if c.group == group]
    if not chosen:
        return "n/a"
    worst = max(chosen, key=values)
    target = TARGETS[group]
    passed = sum(1 for c in chosen if values(c) <= target)
    verdict = "PASS" if passed == len(chosen) else "FAIL"
    return (
        f"{verdict}  {passed}/{len(chosen)} cases p95 <= {target:.0f} ms; worst p95 "
        f"{values(worst):.2f} ms ({worst.key})"
    )


def _worst_cpu(cases: list[Case], values: Callable[[Case], list[float]]) -> str:
    parts = []
    for group in ("board", "search", "contact"):
        chosen = [c for c in cases if c.group == group and values(c)]
        if chosen:
            worst = max(chosen, key=lambda c: percentile(values(c), 50))
            parts.append(f"{group} worst {percentile(values(worst), 50):.1f} ms ({worst.key})")
    return "; ".join(parts)


def _mb(kb: int) -> str:
    return f"{kb / 1024:.1f} MB"


# -- legs ------------------------------------------------------------------------------------------
@dataclass
class Leg:
    """One database's run: its data, its cases measured, what HTTP showed."""

    seeded: Seeded
    version: str
    size_mb: float
    cases: list[Case]
    floor_samples: list[float] = field(default_factory=list)
    fresh: list[FreshPages] = field(default_factory=list)
    exports: list[ExportRun] = field(default_factory=list)
    rss: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return DATABASE_NAMES[self.seeded.database]

    @property
    def floor(self) -> float:
        return percentile(self.floor_samples, 50)

    def server_p95(self, c: Case) -> float:
        return percentile(c.http, 95) - self.floor if c.http else float("-inf")


def _version(s: Seeded) -> str:
    if s.db_path is not None:
        return f"SQLite {sqlite3.sqlite_version}"
    from _db import rows

    return f"PostgreSQL {rows(s.url, 'SHOW server_version')[0][0].split()[0]}"


def _print_seeded(s: Seeded) -> None:
    for step, seconds in s.seed_seconds.items():
        print(f"  {step:<28} {seconds:7.2f} s", flush=True)
    rate = s.leads / s.seed_seconds["insert leads"]
    print(f"  ({rate:,.0f} leads/s inserted)", flush=True)


def run_leg(args: argparse.Namespace, workdir: Path, seeded: Seeded, warmup: int) -> Leg:
    version, size_mb = _version(seeded), database_size_mb(seeded)
    print(
        f"database: {seeded.leads:,} leads, big lead #{seeded.big_lead_id} with "
        f"{seeded.timeline_items:,} timeline items, {seeded.inbox:,} inbox rows, never-flagged "
        f"workspace of {seeded.quiet_leads:,} leads; {size_mb:,.0f} MB, {version}",
        flush=True,
    )
    cases = build_cases(seeded, asyncio.run(first_reads(seeded)))
    leg = Leg(seeded, version, size_mb, cases)
    print(f"\nin-process: {len(cases)} cases x {args.reps} reps (+{warmup} warm-up)", flush=True)
    asyncio.run(measure_inprocess(seeded, cases, args.reps, warmup))
    print_inprocess(cases, leg.name)
    if not args.no_http:
        _run_http(args, workdir, leg, warmup)
        print_http(cases, leg.floor_samples, leg.name)
    print_plans(cases, leg.floor, args.plans, leg.name)
    return leg


def _run_http(args: argparse.Namespace, workdir: Path, leg: Leg, warmup: int) -> None:
    cases = leg.cases
    with (
        board_server(workdir, leg.seeded.url) as (base, child),
        httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client,
    ):
        sign_in(client)
        try:
            leg.rss["start"] = _proc_status(child.pid)
            leg.floor_samples = measure_healthz(client, args.reps * 2, warmup)
            floor = leg.floor
            http_count = sum(1 for c in cases if c.path)
            print(
                f"\nHTTP: {http_count} cases x {args.reps} reps (+{warmup} warm-up); "
                f"GET /healthz p50 {floor:.2f} ms",
                flush=True,
            )
            measure_http(client, child, cases, args.reps, warmup, floor)
            for query in (BoardQuery(), BoardQuery(sort="score")):
                walk = measure_fresh_pages(client, child, query, args.reps)
                leg.fresh.append(walk)
                print(
                    f"  fresh pages {walk.query}: {len(walk.http)} pages by Next, client p50 "
                    f"{percentile(walk.http, 50):.2f} p95 {percentile(walk.http, 95):.2f} ms"
                    f"  cpu {walk.cpu_ms:.2f} ms/req",
                    flush=True,
                )
            leg.floor_samples += measure_healthz(client, args.reps * 2, 0)
            leg.rss["after pages"] = _proc_status(child.pid)
            for k in range(2):
                print(f"\nexport {k + 1}/2: GET /export.csv ...", flush=True)
                run = measure_export(client, child)
                leg.exports.append(run)
                print(
                    f"  {run.rows:,} rows, {run.bytes / 2**20:.1f} MB in {run.seconds:.2f} s = "
                    f"{run.rows_per_s:,.0f} rows/s (first byte {run.ttfb * 1000:.0f} ms); "
                    f"server RSS {_mb(run.rss_before_kb)} -> peak {_mb(run.rss_peak_kb)} -> "
                    f"{_mb(run.rss_after_kb)}; VmHWM {_mb(run.hwm_before_kb)} -> "
                    f"{_mb(run.hwm_after_kb)}",
                    flush=True,
                )
        finally:
            with contextlib.suppress(httpx.HTTPError):
                sign_out(client)
    code = child.proc.returncode if child.proc else None
    print(f"server stopped by SIGTERM (exit status {code}; uvicorn re-raises the signal)")


# -- summary ---------------------------------------------------------------------------------------
def print_leg_summary(leg: Leg) -> None:
    s, cases, floor = leg.seeded, leg.cases, leg.floor
    name = leg.name
    print(f"-- {name}: {leg.version}, {leg.size_mb:,.0f} MB")
    if s.seed_seconds:
        t = s.seed_seconds
        print(
            f"seed:         {t['total']:.1f} s total (leads generated in {t['generate leads']:.1f}"
            f" s, inserted in {t['insert leads']:.1f} s; 5,000-item timeline "
            f"{t['timeline (generate+insert)']:.2f} s; {s.inbox:,} inbox rows generated in "
            f"{t['generate inbox']:.1f} s, inserted in {t['insert inbox']:.1f} s; migrate "
            f"{t['migrate']:.1f} s; {'analyze' if s.db_path is None else 'checkpoint'} "
            f"{t['analyze/checkpoint']:.1f} s)"
        )
    else:
        print(f"seed:         reused {s.db_path}")

    def inproc_p95(c: Case) -> float:
        return percentile(c.inproc, 95)

    for group, label in (("board", "board"), ("search", "search"), ("contact", "contact page")):
        print(f"in-process:   {label:<13} {_group_line(cases, group, inproc_p95)}")
    print(f"in-process:   CPU p50 (load-independent): {_worst_cpu(cases, lambda c: c.inproc_cpu)}")
    if leg.floor_samples:
        http_cases = [c for c in cases if c.http]
        print(
            f"HTTP:         server~ = client - GET /healthz p50 ({floor:.2f} ms); healthz p95 "
            f"{percentile(leg.floor_samples, 95):.2f} ms"
        )
        for group, label in (("board", "board"), ("search", "search"), ("contact", "contact page")):
            print(f"HTTP:         {label:<13} {_group_line(http_cases, group, leg.server_p95)}")
        print(
            "HTTP:         server CPU per request (load-independent): "
            + _worst_cpu(http_cases, lambda c: [c.cpu_ms])
        )
        for k, run in enumerate(leg.exports, 1):
            print(
                f"export {k}:     {run.rows:,} rows in {run.seconds:.2f} s = "
                f"{run.rows_per_s:,.0f} rows/s ({run.bytes / 2**20:.1f} MB); server RSS "
                f"{_mb(run.rss_before_kb)} -> peak {_mb(run.rss_peak_kb)} (+"
                f"{_mb(run.rss_peak_kb - run.rss_before_kb)}) -> {_mb(run.rss_after_kb)}"
            )
        if "start" in leg.rss and "after pages" in leg.rss:
            print(
                f"server RSS:   {_mb(leg.rss['start'].get('VmRSS', 0))} after sign-in, "
                f"{_mb(leg.rss['after pages'].get('VmRSS', 0))} after the page cases"
            )
    others = [c for c in cases if c.group == "other"]
    if others:
        worst = max(others, key=inproc_p95)
        print(
            f"aggregates:   worst p95 {inproc_p95(worst):.2f} ms ({worst.key}; no target, cached)"
        )


CELL = 33  # one database's cells in the side-by-side table


def _cells(leg: Leg | None, c: Case | None, target: float | None) -> str:
    """q.p50, q.p95, s~p50, s~p95 and the verdict (on server time over HTTP, else on the
    query's)."""
    if leg is None or c is None:
        return " " * CELL
    q = f"{percentile(c.inproc, 50):6.2f} {percentile(c.inproc, 95):6.2f}"
    if c.http:
        s50, s95 = percentile(c.http, 50) - leg.floor, leg.server_p95(c)
        return f"{q} {s50:6.2f} {s95:6.2f} {_verdict(s95, target):<5}"
    verdict = _verdict(percentile(c.inproc, 95), target)
    return f"{q} {'-':>6} {'-':>6} {verdict + '*' if verdict != '-' else '-':<5}"


def print_side_by_side(legs: list[Leg]) -> None:
    """Every case, both databases on one line: the query's in-process p95, the server time over
    HTTP (p50, p95), PASS/FAIL against the case's target."""
    names = [leg.name for leg in legs]
    by_key = [{c.key: c for c in leg.cases} for leg in legs]
    keys: list[str] = []
    for leg in legs:
        keys += [c.key for c in leg.cases if c.key not in keys]
    groups = {c.key: c.group for leg in legs for c in leg.cases}
    width = 50
    print(
        "ms; q. = the queries in-process, s~ = server time over HTTP (client - healthz p50); "
        "verdict on s~p95, * = on q.p95 (an in-process case)"
    )
    head = "".join(f" | {n:<{CELL}}" for n in names)
    print(f"{'':<{width}} {'target':>6}{head}")
    cols = " | ".join(f"{'q.p50':>6} {'q.p95':>6} {'s~p50':>6} {'s~p95':>6} {'':<5}" for _ in legs)
    print(f"{'case':<{width}} {'':>6} | {cols}")
    group = ""
    for key in keys:
        if groups[key] != group:
            group = groups[key]
            print(f"-- {group}")
        target = TARGETS.get(group)
        cells = " | ".join(
            _cells(leg, found.get(key), target) for leg, found in zip(legs, by_key, strict=True)
        )
        shown = key if len(key) <= width else key[: width - 1] + "~"
        print(f"{shown:<{width}} {f'{target:.0f}' if target else '-':>6} | {cells}")
    if any(leg.fresh for leg in legs):
        print("-- fresh rows (pages by Next, every row rendered)")
        for k, query in enumerate(("/", "/?sort=score")):
            cells = []
            for leg in legs:
                if k < len(leg.fresh):
                    walk = leg.fresh[k]
                    p50 = percentile(walk.http, 50) - leg.floor
                    p95 = percentile(walk.http, 95) - leg.floor
                    verdict = _verdict(p95, TARGETS["board"])
                    cells.append(f"{'-':>6} {'-':>6} {p50:6.2f} {p95:6.2f} {verdict:<5}")
                else:
                    cells.append(_cells(None, None, None))
            print(
                f"{'fresh pages ' + query:<{width}} {TARGETS['board']:>6.0f} | {' | '.join(cells)}"
            )
    print("-- verdicts")
    for group, label in (("board", "board"), ("search", "search"), ("contact", "contact page")):
        cells = []
        for leg in legs:
            chosen = [c for c in leg.cases if c.group == group]
            passed = sum(
                1
                for c in chosen
                if (leg.server_p95(c) if c.http else percentile(c.inproc, 95)) <= TARGETS[group]
            )
            cells.append(f"{'PASS' if passed == len(chosen) else 'FAIL'} {passed}/{len(chosen)}")
        print(
            f"{label + ' (every case)':<{width}} {TARGETS[group]:>6.0f} | "
            + " | ".join(f"{cell:<{CELL}}" for cell in cells)
        )


# -- main ------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--database", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"],
        help="the legs, in this order (both)",
    )  # fmt: skip
    p.add_argument("--leads", type=int, default=100_000, help="leads to seed (100000)")
    p.add_argument("--inbox", type=int, default=100_000, help="inbox rows: a day's (100000)")
    p.add_argument("--reps", type=int, default=50, help="timed repetitions per case (50)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per case (reps/10)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the data (1)")
    p.add_argument("--db", type=Path, default=None, help="reuse a seeded SQLite file (no seeding)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (database, server log)")
    p.add_argument("--plans", action="store_true", help="print every case's query plan")
    p.add_argument("--no-http", action="store_true", help="in-process measurements only")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    install_sigterm_handler()
    if args.leads < 1000 and args.db is None:
        raise SystemExit("--leads must be at least 1000")
    with scratch_dir("leadboard-bench-board-", args.keep) as workdir:
        return _run(args, workdir)


def _sqlite_leg(args: argparse.Namespace, workdir: Path, warmup: int) -> Leg:
    if args.db is not None:
        if not args.db.exists():
            raise SystemExit(f"{args.db} does not exist")
        url = f"sqlite+aiosqlite:///{args.db.resolve()}"
        upgrade(url)
        seeded = discover("sqlite", url)
        print(f"reusing {args.db}: {seeded.leads:,} leads (no seeding)", flush=True)
    else:
        db_path = workdir / "board.sqlite"
        print(f"seeding {args.leads:,} leads, {args.inbox:,} inbox rows into {db_path} ...")
        seeded = seed("sqlite", f"sqlite+aiosqlite:///{db_path}", args.leads, args.inbox, args.seed)
        _print_seeded(seeded)
    return run_leg(args, workdir, seeded, warmup)


def _postgres_leg(args: argparse.Namespace, workdir: Path, warmup: int) -> Leg | None:
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_database(prefix="leadboard_bench_board"))
        except PostgresUnavailable as exc:
            print(f"PostgreSQL leg skipped: {exc}", flush=True)
            return None
        print(f"seeding {args.leads:,} leads, {args.inbox:,} inbox rows into {url} ...")
        seeded = seed("postgres", url, args.leads, args.inbox, args.seed)
        _print_seeded(seeded)
        return run_leg(args, workdir, seeded, warmup)


def _run(args: argparse.Namespace, workdir: Path) -> int:
    started = time.monotonic()
    load_before = os.getloadavg()
    warmup = args.warmup if args.warmup is not None else max(2, args.reps // 10)
    legs: list[Leg] = []
    skipped: list[str] = []
    for database in args.database:
        print(f"\n{'#' * 30} {DATABASE_NAMES[database]} leg {'#' * 30}", flush=True)
        leg = _sqlite_leg(args, workdir, warmup) if database == "sqlite" else None
        if database == "postgres":
            leg = _postgres_leg(args, workdir, warmup)
            if leg is None:
                skipped.append("PostgreSQL (unreachable, see above)")
        if leg is not None:
            legs.append(leg)
    if not legs:
        return 1
    first = legs[0].seeded
    print()
    print("=" * 140)
    print(
        f"Leadboard board benchmark: {first.leads:,} leads in one workspace, {first.inbox:,} inbox "
        f"rows (a day), on {' and '.join(leg.name for leg in legs)}"
        + (f"; skipped: {', '.join(skipped)}" if skipped else "")
    )
    print(f"command:      {command_line()}")
    print(
        f"setup:        {args.reps} reps per case (+{warmup} warm-up), {len(legs[0].cases)} cases, "
        f"1 uvicorn worker, in-process broker, {', '.join(leg.version for leg in legs)}, "
        f"{os.cpu_count()} CPUs"
    )
    for leg in legs:
        print_leg_summary(leg)
    print("-" * 140)
    print_side_by_side(legs)
    load_after = os.getloadavg()
    print("-" * 140)
    print(
        f"machine load: 1-min load average {load_before[0]:.2f} at start, {load_after[0]:.2f} at "
        f"end ({os.cpu_count()} CPUs; other work on the machine inflates the tails)"
    )
    print(f"elapsed:      {time.monotonic() - started:.0f} s")
    print("=" * 140)
    return 0


if __name__ == "__main__":
    sys.exit(main())
