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
import collections
import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import (
    WEBHOOK_PATH,
    DeliveryMix,
    command_line,
    install_sigterm_handler,
    leadboard_server,
    percentile,
    redis_server,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, async_playwright

from app.workspaces import services as workspace_services

DEMO_EMAIL = str(getattr(workspace_services, "DEMO_USER_EMAIL", "demo@leadboard.local"))
DEMO_PASSWORD = str(getattr(workspace_services, "DEMO_USER_PASSWORD", "demo-password"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TARGETS = {"p50_ms": 50.0, "p99_ms": 200.0}

INSTALL_JS = """
() => {
  const b = (window.__bench = { pending: null, timer: null });
  const check = () => {
    const p = b.pending;
    if (!p) return;
    const row = document.getElementById(p.rowId);
    if (row && row.textContent.indexOf(p.token) !== -1) {
      const t = performance.now();
      const w = Date.now();
      b.pending = null;
      clearTimeout(b.timer);
      const up = row.parentElement;
      p.resolve({ t: t, w: w, parent: up ? up.tagName.toLowerCase() + "#" + up.id : "" });
    }
  };
  new MutationObserver(check).observe(document.documentElement, {
    subtree: true, childList: true, characterData: true, attributes: false,
  });
  b.fire = async (a) => {
    const dom = new Promise((resolve) => {
      b.pending = { rowId: a.rowId, token: a.token, resolve: resolve };
      b.timer = setTimeout(() => {
        if (b.pending && b.pending.token === a.token) { b.pending = null; resolve(null); }
      }, a.timeoutMs);
    });
    const w0 = Date.now();
    const t0 = performance.now();
    const post = fetch(a.path, { method: "POST", headers: a.headers, body: a.body,
                                 cache: "no-store" })
      .then(async (r) => ({ status: r.status, t: performance.now(),
                            text: (await r.text()).slice(0, 300) }))
      .catch((e) => ({ status: 0, t: performance.now(), text: String(e) }));
    const d = await dom;
    const r = await post;
    let frame = null;
    if (d) {
      frame = await Promise.race([
        new Promise((res) => requestAnimationFrame(() => res(performance.now()))),
        new Promise((res) => setTimeout(() => res(null), 1000)),
      ]);
    }
    return { t0: t0, w0: w0, dom: d, post: r, frame: frame };
  };
  return true;
}
"""

ROWS_JS = """
() => Array.from(document.querySelectorAll('#lead-rows tr[id^="lead-"]'))
  .map((r) => [r.id, r.textContent])
"""


STATE_JS = """
() => ({
  url: location.href,
  title: document.title,
  live: (document.getElementById("live-status") || {}).dataset || null,
})
"""


async def sign_in_if_asked(page: Page, email: str, password: str) -> None:
    """The board may sit behind a sign-in form: use the demo user's credentials."""
    form = await page.query_selector('form[action="/login"]')
    if form is None:
        return
    await page.fill('input[name="email"]', email)
    await page.fill('input[name="password"]', password)
    async with page.expect_navigation(wait_until="load"):
        await page.click('form[action="/login"] button[type="submit"]')
    if await page.query_selector('form[action="/login"]') is not None:
        raise RuntimeError(f"sign-in as {email} failed at {page.url}")


@dataclass
class Sample:
    latency_ms: float | None  # None: no DOM update within the timeout
    post_ms: float
    frame_ms: float | None
    wall_ms: float | None  # Date.now() difference, the cross-check
    status: int
    parent: str  # where the updated row sits: "tbody#lead-rows" is right


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.1f}"


async def fire(
    page: Page, row_id: str, token: str, body: bytes, headers: dict[str, str], timeout_ms: float
) -> Sample:
    result: dict[str, Any] = await page.evaluate(
        "(a) => window.__bench.fire(a)",
        {
            "rowId": row_id,
            "token": token,
            "body": body.decode("utf-8"),
            "headers": headers,
            "timeoutMs": timeout_ms,
            "path": WEBHOOK_PATH,
        },
    )
    post = result["post"]
    dom = result["dom"]
    t0 = result["t0"]
    return Sample(
        latency_ms=None if dom is None else dom["t"] - t0,
        post_ms=post["t"] - t0,
        frame_ms=None if result["frame"] is None else result["frame"] - t0,
        wall_ms=None if dom is None else dom["w"] - result["w0"],
        status=int(post["status"]),
        parent="" if dom is None else str(dom.get("parent", "")),
    )


async def run(args: argparse.Namespace, workdir: Path) -> int:
    started = time.monotonic()
    mix = DeliveryMix(leads=args.leads, seed=args.seed)
    leads = mix.leads
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(workdir)) if args.redis else None
        base, child, _db = stack.enter_context(leadboard_server(workdir, redis_url))

        # Seed one row per lead (plain HTTP, before the page loads).
        seed_tokens: dict[str, int] = {}
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for k, lead in enumerate(leads):
                token = f"seed{k:03d}x{secrets.token_hex(4)}"
                seed_tokens[token] = k
                wire = mix.inbound(lead, f"Halo kak, saya tertarik ({token})")
                resp = await client.post(WEBHOOK_PATH, content=wire.body, headers=wire.headers)
                resp.raise_for_status()

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 900})
                page = await context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc.stack or exc}"))
                page.on(
                    "console",
                    lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None,
                )
                await page.goto(base + "/", wait_until="load")
                await sign_in_if_asked(page, args.email, args.password)
                try:
                    await page.wait_for_selector('#live-status[data-state="live"]', timeout=20_000)
                except PlaywrightError as exc:
                    state = await page.evaluate(STATE_JS)
                    raise RuntimeError(
                        f"the board did not go live: {state}; errors {errors[:3]}\n"
                        f"server log:\n{child.log_tail(20)}"
                    ) from exc
                rows: list[list[str]] = await page.evaluate(ROWS_JS)
                row_of: dict[int, str] = {}
                for row_id, text in rows:
                    for token, k in seed_tokens.items():
                        if token in text:
                            row_of[k] = row_id
                missing = [k for k in range(len(leads)) if k not in row_of]
                if missing:
                    raise RuntimeError(f"seeded rows not on the board: {missing}")
                await page.evaluate(INSTALL_JS)

                samples: list[Sample] = []
                total = args.warmup + args.events
                print(
                    f"posting {total} webhooks one at a time ({args.warmup} warm-up) ...",
                    flush=True,
                )
                for i in range(total):
                    k = i % len(leads)
                    token = f"ping{i:05d}x{secrets.token_hex(4)}"
                    wire = mix.inbound(leads[k], f"Bench ping {token}, masih ada unit?")
                    sample = await fire(
                        page, row_of[k], token, wire.body, wire.headers, args.timeout * 1000
                    )
                    if i >= args.warmup:
                        samples.append(sample)
                    if (i + 1) % 100 == 0:
                        print(f"  {i + 1}/{total}", flush=True)
                    if args.pause > 0:
                        await asyncio.sleep(args.pause)
                final_state = await page.get_attribute("#live-status", "data-state")
            finally:
                await browser.close()

    ok = [s for s in samples if s.latency_ms is not None and s.status == 200]
    failures = len(samples) - len(ok)
    timeouts = sum(1 for s in samples if s.latency_ms is None)
    bad_status = sum(1 for s in samples if s.status != 200)
    lat = [s.latency_ms for s in ok if s.latency_ms is not None]
    post = [s.post_ms for s in samples]
    frame = [s.frame_ms for s in ok if s.frame_ms is not None]
    wall = [s.wall_ms for s in ok if s.wall_ms is not None]
    sse = [s.latency_ms - s.post_ms for s in ok if s.latency_ms is not None]

    def dist(values: list[float]) -> str:
        return (
            f"p50 {_fmt(percentile(values, 50))}  p95 {_fmt(percentile(values, 95))}  "
            f"p99 {_fmt(percentile(values, 99))}  max {_fmt(max(values) if values else None)}"
            " ms"
        )

    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    print()
    print("=" * 78)
    print("Leadboard live latency: webhook POST -> row updated in Chromium's DOM")
    print(f"command:     {command_line()}")
    print(
        f"setup:       broker {'redis' if args.redis else 'in-process'}, SQLite, 1 uvicorn "
        f"worker; {len(leads)} leads; POST from the page (fetch), clock performance.now()"
    )
    print(f"n:           {len(samples)} measured (+{args.warmup} warm-up), one at a time")
    print(
        f"failures:    {failures} (timeouts > {args.timeout:g} s: {timeouts}, non-200: "
        f"{bad_status})"
    )
    print(f"latency:     {dist(lat)}")
    print(f"  POST answered:      {dist(post)}")
    print(f"  answer -> DOM:      {dist(sse)}")
    print(f"  next frame:         {dist(frame)}")
    print(f"  Date.now() check:   {dist(wall)}")
    misplaced = collections.Counter(s.parent for s in ok if s.parent != "tbody#lead-rows")
    print(
        f"placement:   {sum(misplaced.values())} of {len(ok)} updated rows outside "
        f"tbody#lead-rows" + (f" (parents: {dict(misplaced)})" if misplaced else "")
    )
    print(f"page:        live-status {final_state!r}; {len(errors)} console/page errors")
    for text, count in collections.Counter(errors).most_common(3):
        print(f"  {count} x {text[:600]}")
    met50 = "met" if p50 <= TARGETS["p50_ms"] else "NOT met"
    met99 = "met" if p99 <= TARGETS["p99_ms"] else "NOT met"
    print(
        f"targets:     p50 <= {TARGETS['p50_ms']:g} ms ({met50}), "
        f"p99 <= {TARGETS['p99_ms']:g} ms ({met99})"
    )
    print(f"elapsed:     {time.monotonic() - started:.0f} s")
    print("=" * 78)
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=300, help="measured webhooks (300)")
    p.add_argument("--warmup", type=int, default=10, help="webhooks first, not counted (10)")
    p.add_argument("--leads", type=int, default=10, help="rows the webhooks rotate over (10)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait per update (5)")
    p.add_argument("--pause", type=float, default=0.0, help="seconds between webhooks (0)")
    p.add_argument("--redis", action="store_true", help="private redis-server + REDIS_URL")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--email", default=DEMO_EMAIL, help=f"sign-in, if asked ({DEMO_EMAIL})")
    p.add_argument("--password", default=DEMO_PASSWORD, help="sign-in password, if asked")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (server log, database)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    install_sigterm_handler()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="leadboard-bench-live-"))
    try:
        return asyncio.run(run(args, workdir))
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
