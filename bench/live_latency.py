"""Live latency: from a signed webhook POST to the row changing in a real browser's DOM.

    .venv/bin/python bench/live_latency.py [--events 300] [--redis]

Starts `leadboard serve` (fresh SQLite file, free port; a private redis-server and REDIS_URL with
--redis), opens the board in headless Chromium (Playwright, async API) and waits until its SSE
stream is live. A MutationObserver installed with page.evaluate watches the document. Then, one
at a time, each webhook is POSTed *by the page itself* with fetch() (pre-signed body and headers
built in Python), so both ends of the measurement use the browser's clock (performance.now()):

    latency = time the target row's text first contains the message's unique token
              - time just before fetch() was called

The next webhook is posted only after the DOM update, or after --timeout, which counts as a
failure. Each webhook is a new inbound message for one of --leads leads, so it changes that lead's
row (preview text, count, time) and moves it to the top. Also reported: the POST's own response
time (ingest), and the next animation frame after the DOM change (paint, approximately).
No timed assertions: this reports, it does not judge.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import time
from pathlib import Path

import httpx
from _browser import (
    LATENCY_TARGETS,
    Expect,
    Sample,
    add_sign_in_options,
    distribution,
    measure_events,
    open_board,
    page_lines,
    placement_line,
    require_chromium,
)
from _common import (
    WEBHOOK_PATH,
    DeliveryMix,
    command_line,
    install_sigterm_handler,
    leadboard_server,
    percentile,
    redis_server,
    scratch_dir,
)


async def seed_rows(base: str, mix: DeliveryMix) -> dict[str, int]:
    """One row per lead (plain HTTP, before the page loads); token in its text -> lead index."""
    seed_tokens: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for k, lead in enumerate(mix.leads):
            token = f"seed{k:03d}x{secrets.token_hex(4)}"
            seed_tokens[token] = k
            wire = mix.inbound(lead, f"Halo kak, saya tertarik ({token})")
            resp = await client.post(WEBHOOK_PATH, content=wire.body, headers=wire.headers)
            resp.raise_for_status()
    return seed_tokens


async def run(args: argparse.Namespace, workdir: Path) -> int:
    started = time.monotonic()
    mix = DeliveryMix(leads=args.leads, seed=args.seed)
    leads = mix.leads
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(workdir)) if args.redis else None
        base, child, _db = stack.enter_context(leadboard_server(workdir, redis_url))
        seed_tokens = await seed_rows(base, mix)

        async with open_board(base, child, args.email, args.password) as board:
            row_of: dict[int, str] = {}
            for row_id, text in await board.rows():
                for token, k in seed_tokens.items():
                    if token in text:
                        row_of[k] = row_id
            missing = [k for k in range(len(leads)) if k not in row_of]
            if missing:
                raise RuntimeError(f"seeded rows not on the board: {missing}")
            await board.install(attributes=False, next_frame=True)

            total = args.warmup + args.events
            print(f"posting {total} webhooks one at a time ({args.warmup} warm-up) ...", flush=True)

            async def event(i: int) -> Sample:
                """A new inbound message for lead i % leads: its row shows the token."""
                k = i % len(leads)
                token = f"ping{i:05d}x{secrets.token_hex(4)}"
                wire = mix.inbound(leads[k], f"Bench ping {token}, masih ada unit?")
                return await board.fire(
                    WEBHOOK_PATH,
                    wire.body.decode("utf-8"),
                    wire.headers,
                    Expect(row_of[k], token=token),
                    args.timeout * 1000,
                )

            samples = await measure_events(total, args.warmup, args.pause, event)
            final_state = await board.live_status()
            errors = board.errors

    report(args, samples, errors, final_state, len(leads))
    print(f"elapsed:     {time.monotonic() - started:.0f} s")
    print("=" * 78)
    return 0


def report(
    args: argparse.Namespace,
    samples: list[Sample],
    errors: list[str],
    final_state: str | None,
    nleads: int,
) -> None:
    ok = [s for s in samples if s.latency_ms is not None and s.status == 200]
    failures = len(samples) - len(ok)
    timeouts = sum(1 for s in samples if s.latency_ms is None)
    bad_status = sum(1 for s in samples if s.status != 200)
    lat = [s.latency_ms for s in ok if s.latency_ms is not None]
    post = [s.post_ms for s in samples]
    frame = [s.frame_ms for s in ok if s.frame_ms is not None]
    wall = [s.wall_ms for s in ok if s.wall_ms is not None]
    sse = [s.latency_ms - s.post_ms for s in ok if s.latency_ms is not None]

    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    print()
    print("=" * 78)
    print("Leadboard live latency: webhook POST -> row updated in Chromium's DOM")
    print(f"command:     {command_line()}")
    print(
        f"setup:       broker {'redis' if args.redis else 'in-process'}, SQLite, 1 uvicorn "
        f"worker; {nleads} leads; POST from the page (fetch), clock performance.now()"
    )
    print(f"n:           {len(samples)} measured (+{args.warmup} warm-up), one at a time")
    print(
        f"failures:    {failures} (timeouts > {args.timeout:g} s: {timeouts}, non-200: "
        f"{bad_status})"
    )
    print(f"latency:     {distribution(lat)}")
    print(f"  POST answered:      {distribution(post)}")
    print(f"  answer -> DOM:      {distribution(sse)}")
    print(f"  next frame:         {distribution(frame)}")
    print(f"  Date.now() check:   {distribution(wall)}")
    print(placement_line(ok))
    print("\n".join(page_lines(final_state, errors, 600)))
    met50 = "met" if p50 <= LATENCY_TARGETS["p50_ms"] else "NOT met"
    met99 = "met" if p99 <= LATENCY_TARGETS["p99_ms"] else "NOT met"
    print(
        f"targets:     p50 <= {LATENCY_TARGETS['p50_ms']:g} ms ({met50}), "
        f"p99 <= {LATENCY_TARGETS['p99_ms']:g} ms ({met99})"
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=300, help="measured webhooks (300)")
    p.add_argument("--warmup", type=int, default=10, help="webhooks first, not counted (10)")
    p.add_argument("--leads", type=int, default=10, help="rows the webhooks rotate over (10)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait per update (5)")
    p.add_argument("--pause", type=float, default=0.0, help="seconds between webhooks (0)")
    p.add_argument("--redis", action="store_true", help="private redis-server + REDIS_URL")
    p.add_argument("--seed", type=int, default=7)
    add_sign_in_options(p)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (server log, database)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    install_sigterm_handler()
    require_chromium()
    with scratch_dir("leadboard-bench-live-", args.keep) as workdir:
        return asyncio.run(run(args, workdir))


if __name__ == "__main__":
    sys.exit(main())
