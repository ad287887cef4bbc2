"""SSE fan-out (issue 11): N signed-in browsers on ONE `leadboard serve` process while signed
Kapso webhooks arrive at a steady rate; is every event delivered to every browser, how fast, and
what does each connection cost the server?

    .venv/bin/python bench/fanout.py [--levels 100,500,1000,2000] [--rate 20] [--duration 60]
                                     [--database both|sqlite|postgres] [--leads 200] [--keep]
    .venv/bin/python bench/fanout.py --levels 50,200 --duration 8        # a quick run, ~1.5 min
    .venv/bin/python bench/fanout.py --levels 1000,2000@5 --database sqlite   # the two targets

Setup. One uvicorn worker (`leadboard serve`, as in production) with a private redis-server and
REDIS_URL set, so change events go through Redis pub/sub (the production path). Databases
(`--database`, default both, measured side by side in one run and printed in one table): a fresh
SQLite file, and a fresh PostgreSQL database `leadboard_bench_<random>` on 127.0.0.1:5432
(user postgres, trust auth; dropped afterwards; where PostgreSQL does not answer, that leg is
skipped with a line saying why). Each database keeps one file/database and one redis-server for
the whole run; every level gets a FRESH server process on it (so CPU and RSS start from the same
state), and the levels alternate between the databases (the machine's drift hits both alike).

Per level (N browsers, R events/s, D seconds; `--levels 100,500,2000@5`: N or N@R):
  1. sign in once (GET /login for the CSRF cookie, POST /login as the demo user); post one inbound
     message per lead of a pool of --leads (200) leads, so every lead has a row;
  2. board GET baseline with no browser connected; the server's VmRSS;
  3. a child process (`bench/fanout.py --client`, asyncio Protocols on uvloop: a raw HTTP/1.1
     GET /events with the session cookie, chunked transfer and SSE parsed incrementally, nothing
     else) opens the N streams and checks each answers 200 text/event-stream; after 2 s the
     server's VmRSS again: (RSS connected - RSS before) / N is the cost per connection;
  4. the traffic window: R x D signed webhooks on a fixed schedule (one every 1/R s, never waiting
     for the previous answer), each an inbound text message whose text starts with a unique
     marker `fanout-<tag>-<seq>`, cycling over the lead pool (a lead changes every --leads/R s:
     10 s by default). Meanwhile a separate signed-in client GETs the board (the htmx fragment,
     HX-Request) 2 times a second. The server's CPU (all threads, /proc) over the window;
  5. the clients find the marker in each `event: lead` (its data is the lead's row HTML, which
     shows the last message) and record time.monotonic() when each browser first sees each
     marker; this process records time.monotonic() when each webhook's 2xx arrived
     (CLOCK_MONOTONIC: one clock for all processes on Linux). After the window, the bench waits
     until every browser has every marker (or nothing new arrived for 3 s, at most 30 s);
  6. stop the clients, then the server; the server log is scanned for errors.

Figures per level and database: events received / expected (expected = markers answered 2xx x N;
a marker a browser never saw is lost; an `event: refresh` makes a real browser reload its view,
which the clients count but do not do), delivery latency p50 / p99 / max from the webhook's 2xx
to each browser's receipt (negative: the event beat the HTTP answer), server CPU % during the
window (100 % = one core), KB of RSS per connection (right after connecting, and after the
traffic), board GET p50 / p99 while the browsers are connected, webhook answer p50 / p99 and
non-2xx, the `event: status` counts per value (live / catching-up / delayed) and `event: refresh`
count; also the client process's CPU (near 100 % means it, not the server, set the latency).

Targets of issue 11, judged at the end (reported, never asserted): 1,000 browsers at 20 events/s
on one process: 0 lost, delivery p99 <= 100 ms, <= 40 KB per connection, board GET p99 <= 50 ms
meanwhile; 2,000 browsers at 5 events/s (`--levels 2000@5`): delivery p99 <= 250 ms.
This is a 2-core machine shared with the client process: the clients cost CPU the server does
not get, so the figures are an upper bound of what browsers on other machines would see.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import sys
import time
from array import array
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from _common import (
    POSTGRES_ADMIN_URL,
    WEBHOOK_PATH,
    Child,
    DeliveryMix,
    PostgresUnavailable,
    command_line,
    install_sigterm_handler,
    leadboard_server,
    postgres_database,
    raise_nofile_limit,
    redis_server,
    rss_kb,
    scratch_dir,
)
from _fanout_report import (
    ClientProcess,
    Leg,
    Level,
    LevelFailed,
    Posts,
    Result,
    report_level,
    table,
    target_lines,
)
from _sse_clients import COOKIE_ENV, SESSION_COOKIE, marker, run_client

from app.ingest.samples import INBOUND_TEXTS
from app.workspaces.services import DEMO_USER_EMAIL, DEMO_USER_PASSWORD

THIS_FILE = Path(__file__).resolve()
DEFAULT_LEVELS = "100,500,1000,2000"
BOARD_HEADERS = {"HX-Request": "true", "HX-Target": "board-view"}
MAX_POSTS_IN_FLIGHT = 64
DRAIN_QUIET_S = 3.0
DRAIN_LIMIT_S = 30.0


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> str:
    """Like a browser: the form page sets the CSRF cookie, the form posts it back; the session
    cookie's value."""
    page = await client.get("/login")
    page.raise_for_status()
    token = client.cookies.get("csrftoken")
    if not token:
        found = re.search(r'name="_csrf_token" value="([^"]*)"', page.text)
        token = found[1] if found else ""
    answer = await client.post(
        "/login", data={"email": email, "password": password, "next": "/", "_csrf_token": token}
    )
    if answer.status_code != 303:
        raise LevelFailed(f"sign-in failed: HTTP {answer.status_code} {answer.text[:200]}")
    value = client.cookies.get(SESSION_COOKIE)
    if not value:
        raise LevelFailed("no session cookie after signing in")
    return value


async def seed_leads(client: httpx.AsyncClient, mix: DeliveryMix, tag: str) -> None:
    """One inbound message per lead of the pool (no marker): every lead has a row."""
    gate = asyncio.Semaphore(8)

    async def one(k: int) -> None:
        wire = mix.inbound(mix.leads[k], f"Halo kak, saya tertarik (seed {tag} {k})")
        async with gate:
            answer = await client.post(WEBHOOK_PATH, content=wire.body, headers=wire.headers)
        if answer.status_code // 100 != 2:
            raise LevelFailed(f"seed webhook answered {answer.status_code}: {answer.text[:200]}")

    await asyncio.gather(*(one(k) for k in range(len(mix.leads))))


async def timed_get(client: httpx.AsyncClient) -> tuple[float, int]:
    t0 = time.perf_counter()
    try:
        answer = await client.get("/", headers=BOARD_HEADERS)
        status = answer.status_code
    except httpx.HTTPError:
        status = 0
    return (time.perf_counter() - t0) * 1000, status


async def board_gets(client: httpx.AsyncClient, count: int) -> list[float]:
    """The board fragment `count` times in a row (the baseline, nobody connected)."""
    times = []
    for _ in range(count):
        ms, status = await timed_get(client)
        if status == 200:
            times.append(ms)
    return times


async def poll_board(
    client: httpx.AsyncClient, stop: asyncio.Event, interval: float, result: Result
) -> None:
    """GET the board every `interval` s (one at a time) until `stop`."""
    while not stop.is_set():
        t0 = time.monotonic()
        ms, status = await timed_get(client)
        if status == 200:
            result.board_ms.append(ms)
        else:
            result.board_bad[status] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.monotonic() - t0)))


async def post_webhooks(
    client: httpx.AsyncClient, mix: DeliveryMix, tag: str, posts: Posts, rate: float, t0: float
) -> None:
    """posts.total webhooks, webhook i due at t0 + i / rate, none waiting for another's answer."""
    gate = asyncio.Semaphore(MAX_POSTS_IN_FLIGHT)

    async def one(seq: int) -> None:
        lead = mix.leads[seq % len(mix.leads)]
        text = f"{marker(tag, seq)} {INBOUND_TEXTS[seq % len(INBOUND_TEXTS)]}"
        wire = mix.inbound(lead, text)
        async with gate:
            sent = time.monotonic()
            try:
                answer = await client.post(WEBHOOK_PATH, content=wire.body, headers=wire.headers)
                status = answer.status_code
            except httpx.HTTPError as exc:
                status = 0
                posts.errors[type(exc).__name__] += 1
            done = time.monotonic()
        posts.sent_at[seq] = sent
        posts.statuses[status] += 1
        if 200 <= status < 300:
            posts.ok_at[seq] = done
            posts.latency_ms.append((done - sent) * 1000)
            with contextlib.suppress(ValueError):
                posts.answers[str(answer.json().get("status"))] += 1

    tasks = []
    for seq in range(posts.total):
        due = t0 + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            posts.max_slip_ms = max(posts.max_slip_ms, -delay * 1000)
        tasks.append(asyncio.create_task(one(seq)))
    await asyncio.gather(*tasks)


async def drain(clients: ClientProcess, expected: int) -> tuple[float, dict[str, Any]]:
    """Wait until the browsers have every marker, nothing new came for DRAIN_QUIET_S, or
    DRAIN_LIMIT_S passed; (seconds waited, last progress)."""
    started = time.monotonic()
    last, changed = -1, started
    while True:
        progress = await clients.ask("progress", 15)
        now = time.monotonic()
        if progress["received"] >= expected:
            break
        if progress["received"] != last:
            last, changed = progress["received"], now
        elif now - changed >= DRAIN_QUIET_S or now - started >= DRAIN_LIMIT_S:
            break
        await asyncio.sleep(0.2)
    return time.monotonic() - started, progress


def load_receipts(out: Path) -> tuple[array[int], array[float]]:
    seqs, times = array("I"), array("d")
    seqs.frombytes(out.with_suffix(".seq").read_bytes())
    times.frombytes(out.with_suffix(".t").read_bytes())
    return seqs, times


def score(result: Result, posts: Posts, seqs: array[int], times: array[float]) -> None:
    """Receipts against the webhooks' 2xx times: received, latencies, complete markers."""
    nan = float("nan")
    ok_at = [posts.ok_at.get(i, nan) for i in range(posts.total)]
    sent_at = [posts.sent_at.get(i, nan) for i in range(posts.total)]
    per_marker = [0] * posts.total
    lat, lat_sent = result.lat_ms, result.lat_sent_ms
    late = 0
    for seq, at in zip(seqs, times, strict=True):
        per_marker[seq] += 1
        ok = ok_at[seq]
        if ok != ok:  # this marker's POST got no 2xx
            late += 1
            continue
        lat.append((at - ok) * 1000)
        lat_sent.append((at - sent_at[seq]) * 1000)
    result.received = len(lat)
    result.late_markers = late
    result.expected = len(posts.ok_at) * result.level.clients
    result.complete_markers = sum(
        1 for i, n in enumerate(per_marker) if n >= result.connected and ok_at[i] == ok_at[i]
    )


def server_errors(child: Child) -> list[str]:
    lines = child.log_tail(100_000).splitlines()
    return [x for x in lines if "ERROR" in x or "Traceback" in x or "CRITICAL" in x]


async def measure_level(leg: Leg, level: Level, args: argparse.Namespace, workdir: Path) -> Result:
    result = Result(leg=leg.name, level=level, duration=args.duration)
    tag = secrets.token_hex(3)
    # The same leads every level, but deliveries (idempotency keys, wamids) of their own.
    mix = DeliveryMix(leads=args.leads, seed=args.seed, stream=int(tag, 16))
    posts = Posts(total=max(1, round(level.rate * args.duration)))
    name = f"{leg.name}-{level.clients}"
    out = workdir / f"receipts-{name}-{tag}"
    timeout = httpx.Timeout(15.0)
    limits = httpx.Limits(max_connections=MAX_POSTS_IN_FLIGHT)
    serving = leadboard_server(workdir, leg.redis_url, name=name, database_url=leg.database_url)
    with serving as (base, server, _db):
        async with (
            httpx.AsyncClient(base_url=base, timeout=timeout) as board,
            httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as hooks,
        ):
            cookie = await sign_in(board, args.email, args.password)
            await seed_leads(hooks, mix, tag)
            await board_gets(board, 5)  # warm: templates, caches
            result.board_idle_ms = await board_gets(board, 20)
            await asyncio.sleep(1.0)
            result.rss_before_kb = rss_kb(server.pid)
            argv = [
                sys.executable,
                str(THIS_FILE),
                "--client",
                "--url",
                base,
                "--clients",
                str(level.clients),
                "--markers",
                str(posts.total),
                "--tag",
                tag,
                "--out",
                str(out),
                "--connect-concurrency",
                str(args.connect_concurrency),
            ]
            child = Child(
                f"sse-clients-{name}",
                argv,
                workdir / f"clients-{name}-{tag}.log",
                env={COOKIE_ENV: cookie},
                pipes=True,
            )
            child.start()
            try:
                clients = ClientProcess(child)
                hello = await clients.read(60 + level.clients / 20)
                result.connected = int(hello["connected"])
                result.connect_failed = int(hello["failed"])
                result.connect_reasons = hello["reasons"]
                result.connect_s = float(hello["seconds"])
                print(
                    f"  {result.connected:,} of {level.clients:,} streams open in "
                    f"{result.connect_s:.1f} s"
                    + (f"; failed: {result.connect_reasons}" if result.connect_failed else ""),
                    flush=True,
                )
                if result.connected == 0:
                    raise LevelFailed(f"no stream opened: {result.connect_reasons}")
                await asyncio.sleep(2.0)
                result.rss_connected_kb = rss_kb(server.pid)

                stop = asyncio.Event()
                cpu0, ccpu0, me0 = server.cpu_seconds(), child.cpu_seconds(), time.process_time()
                t0 = time.monotonic()
                poller = asyncio.create_task(poll_board(board, stop, 1 / args.board_rate, result))
                await post_webhooks(hooks, mix, tag, posts, level.rate, t0)
                window = time.monotonic() - t0
                cpu1, ccpu1, me1 = server.cpu_seconds(), child.cpu_seconds(), time.process_time()
                stop.set()
                await poller
                result.window_s = window
                result.server_cpu_pct = 100 * (cpu1 - cpu0) / window
                result.clients_cpu_pct = 100 * (ccpu1 - ccpu0) / window
                result.bench_cpu_pct = 100 * (me1 - me0) / window
                result.load_avg = os.getloadavg()[0]
                result.posts = posts

                result.drain_s, _ = await drain(clients, len(posts.ok_at) * result.connected)
                result.rss_after_kb = rss_kb(server.pid)
                result.clients = await clients.ask("stop", 60)
            finally:
                child.stop()
    result.server_errors = server_errors(server)  # shutdown included
    seqs, times = load_receipts(out)
    score(result, posts, seqs, times)
    return result


# == main ========================================================================================
def parse_levels(text: str, rate: float) -> list[Level]:
    levels = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        clients, _, at = part.partition("@")
        level = Level(int(clients), float(at) if at else rate)
        if level.clients < 1 or level.rate <= 0:
            raise SystemExit(f"bad level {part!r}: N or N@rate, N >= 1, rate > 0")
        levels.append(level)
    if not levels:
        raise SystemExit("--levels: at least one level")
    return levels


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--levels",
        default=DEFAULT_LEVELS,
        help=f"browsers per level, N or N@rate, comma separated ({DEFAULT_LEVELS})",
    )
    p.add_argument("--rate", type=float, default=20.0, help="webhooks per second (20)")
    p.add_argument("--duration", type=float, default=60.0, help="traffic seconds per level (60)")
    p.add_argument(
        "--database",
        choices=["both", "sqlite", "postgres"],
        default="both",
        help="both: SQLite and PostgreSQL side by side (default)",
    )
    p.add_argument(
        "--postgres-admin-url",
        default=POSTGRES_ADMIN_URL,
        help=f"where the PostgreSQL leg creates its database ({POSTGRES_ADMIN_URL})",
    )
    p.add_argument("--leads", type=int, default=200, help="leads the webhooks cycle over (200)")
    p.add_argument("--board-rate", type=float, default=2.0, help="board GETs per second (2)")
    p.add_argument(
        "--connect-concurrency", type=int, default=100, help="streams being opened at once (100)"
    )
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--email", default=DEMO_USER_EMAIL, help=f"sign-in ({DEMO_USER_EMAIL})")
    p.add_argument("--password", default=DEMO_USER_PASSWORD, help="sign-in password")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite file)")
    # The client process (started by the benchmark itself):
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--clients", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--markers", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--tag", default="", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if urlsplit(args.postgres_admin_url).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("--postgres-admin-url: only 127.0.0.1")
    if not args.client and (args.duration <= 0 or args.duration > 3600 or args.leads < 1):
        raise SystemExit("--duration: 0 < D <= 3600; --leads >= 1")
    return args


def run_levels(
    legs: list[Leg], levels: list[Level], args: argparse.Namespace, workdir: Path
) -> tuple[list[Result], list[str]]:
    """Level by level, each on every database in turn; a failed level is reported, not fatal."""
    results: list[Result] = []
    failures: list[str] = []
    for level in levels:
        for leg in legs:
            print(f"[{leg.name}] {level.label} for {args.duration:g} s ...", flush=True)
            try:
                result = asyncio.run(measure_level(leg, level, args, workdir))
            except (LevelFailed, httpx.HTTPError, RuntimeError) as exc:
                failures.append(f"[{leg.name}] {level.label}: {type(exc).__name__}: {exc}")
                print(f"  FAILED: {exc}\n", flush=True)
                continue
            results.append(result)
            report_level(result)
    return results, failures


def main() -> int:
    args = parse_args()
    install_sigterm_handler()
    if args.client:
        return run_client(args)
    nofile = raise_nofile_limit()
    levels = parse_levels(args.levels, args.rate)
    need = max(lv.clients for lv in levels) + 200
    if nofile < need:
        print(f"warning: RLIMIT_NOFILE is {nofile}, below the {need} descriptors needed")
    started = time.monotonic()
    with scratch_dir("leadboard-bench-fanout-", args.keep) as workdir, contextlib.ExitStack() as st:
        legs: list[Leg] = []
        skipped: list[str] = []
        if args.database in ("both", "sqlite"):
            redis = st.enter_context(redis_server(workdir))
            legs.append(Leg("sqlite", f"sqlite+aiosqlite:///{workdir / 'fanout.sqlite'}", redis))
        if args.database in ("both", "postgres"):
            try:
                url = st.enter_context(postgres_database(args.postgres_admin_url))
            except PostgresUnavailable as exc:
                line = f"PostgreSQL leg skipped: {exc}"
                skipped.append(line)
                print(line, flush=True)
            else:
                print(f"PostgreSQL leg: database {url.rsplit('/', 1)[1]} (dropped afterwards)")
                legs.append(Leg("postgres", url, st.enter_context(redis_server(workdir))))
        if not legs:
            print("nothing to measure")
            return 1
        print(
            f"levels {', '.join(lv.label for lv in levels)}; {args.duration:g} s of traffic each "
            f"over {args.leads} leads; databases {', '.join(leg.name for leg in legs)}; "
            f"RLIMIT_NOFILE {nofile}\n",
            flush=True,
        )
        results, failures = run_levels(legs, levels, args, workdir)

    print("=" * 100)
    print("Leadboard SSE fan-out: N browsers on one `leadboard serve` (1 uvicorn worker, Redis)")
    print(f"command: {command_line()}")
    print(
        f"setup:   {args.duration:g} s of signed inbound webhooks per level over {args.leads} "
        f"leads, board GET {args.board_rate:g}/s meanwhile; fresh server process per level; "
        f"latency from each webhook's 2xx to each browser's receipt (CLOCK_MONOTONIC)"
    )
    for line in skipped:
        print(line)
    for line in failures:
        print(f"FAILED {line}")
    if results:
        print()
        print("\n".join(table(results)))
        print()
        print("\n".join(target_lines(results, [leg.name for leg in legs])))
    print(f"elapsed: {time.monotonic() - started:.0f} s")
    print("=" * 100)
    return 0 if results and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
