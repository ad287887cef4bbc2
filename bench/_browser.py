"""The board in headless Chromium: the POST-to-DOM latency harness of bench/live_latency.py
(webhooks) and bench/sarah.py --part live (Sarah states).

The page itself fetch()es each pre-built POST, and a MutationObserver notes when the target row
shows the expected change, so both ends of a measurement use the browser's clock
(performance.now()); Date.now() is kept as a cross-check. Events go one at a time: the next is
posted after the row changed, or after the timeout, which counts as a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from _common import Child, fmt, percentile
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, async_playwright

from app.workspaces.services import DEMO_USER_EMAIL, DEMO_USER_PASSWORD

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
LATENCY_TARGETS = {"p50_ms": 50.0, "p99_ms": 200.0}
ROWS_PARENT = "tbody#lead-rows"  # where an updated row belongs
T = TypeVar("T")

# window.__bench.fire(a): set what the row must show, POST, wait for the DOM (or the timeout).
# A row matches when it shows every expectation given: a token in its text, a score in
# .score-num, a .temp-badge-<temp> element.
HARNESS_JS = """
(opts) => {
  const b = (window.__bench = { pending: null, timer: null, seq: 0 });
  const matches = (row, p) => {
    if (p.token !== null && row.textContent.indexOf(p.token) === -1) return false;
    if (p.score !== null) {
      const s = row.querySelector(".score-num");
      if (!s || s.textContent.trim() !== p.score) return false;
    }
    return p.temp === null || !!row.querySelector(".temp-badge-" + p.temp);
  };
  const check = () => {
    const p = b.pending;
    if (!p) return;
    const row = document.getElementById(p.rowId);
    if (row && matches(row, p)) {
      const t = performance.now();
      const w = Date.now();
      b.pending = null;
      clearTimeout(b.timer);
      const up = row.parentElement;
      p.resolve({ t: t, w: w, parent: up ? up.tagName.toLowerCase() + "#" + up.id : "" });
    }
  };
  new MutationObserver(check).observe(document.documentElement, {
    subtree: true, childList: true, characterData: true, attributes: opts.attributes,
  });
  b.fire = async (a) => {
    const seq = ++b.seq;
    const dom = new Promise((resolve) => {
      b.pending = { seq: seq, rowId: a.rowId, token: a.token, score: a.score, temp: a.temp,
                    resolve: resolve };
      b.timer = setTimeout(() => {
        if (b.pending && b.pending.seq === seq) { b.pending = null; resolve(null); }
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
    if (d && opts.nextFrame) {
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

ROW_JS = """
(id) => {
  const r = document.getElementById(id);
  if (!r) return null;
  const s = r.querySelector(".score-num");
  const t = r.querySelector("[class*='temp-badge-']");
  return { score: s ? s.textContent.trim() : null, temp: t ? t.className : null };
}
"""

STATE_JS = """
() => ({
  url: location.href,
  title: document.title,
  live: (document.getElementById("live-status") || {}).dataset || null,
})
"""


@dataclass(frozen=True)
class Expect:
    """What the row must show for an event to have arrived (None: not checked)."""

    row_id: str
    token: str | None = None  # a unique text in the row
    score: str | None = None  # the row's .score-num text
    temp: str | None = None  # a .temp-badge-<temp> element in the row


@dataclass
class Sample:
    """One event, timed from just before fetch() on the page's clock."""

    latency_ms: float | None  # None: the row did not change within the timeout
    post_ms: float  # the POST's answer
    frame_ms: float | None  # the next animation frame after the change (with next_frame)
    wall_ms: float | None  # Date.now() difference, the cross-check
    status: int
    answer: str  # the first 300 characters of the POST's answer
    parent: str  # where the updated row sits: ROWS_PARENT is right


class Board:
    """A signed-in board page whose SSE stream is live."""

    def __init__(self, page: Page, errors: list[str]) -> None:
        self.page = page
        self.errors = errors  # console errors and uncaught page errors, as they come

    async def rows(self) -> list[list[str]]:
        """[row id, row text] of every lead row on the board."""
        rows: list[list[str]] = await self.page.evaluate(ROWS_JS)
        return rows

    async def row(self, row_id: str) -> dict[str, str | None] | None:
        """The row's score text and temperature badge class, None if it is not on the board."""
        shown: dict[str, str | None] | None = await self.page.evaluate(ROW_JS, row_id)
        return shown

    async def install(self, *, attributes: bool, next_frame: bool) -> None:
        """Install the harness. attributes: also watch attribute changes (a badge's class);
        next_frame: also time the next animation frame after each change."""
        await self.page.evaluate(HARNESS_JS, {"attributes": attributes, "nextFrame": next_frame})

    async def fire(
        self, path: str, body: str, headers: dict[str, str], expect: Expect, timeout_ms: float
    ) -> Sample:
        """POST body from the page and wait until the row shows `expect` (or the timeout)."""
        result: dict[str, Any] = await self.page.evaluate(
            "(a) => window.__bench.fire(a)",
            {
                "rowId": expect.row_id,
                "token": expect.token,
                "score": expect.score,
                "temp": expect.temp,
                "body": body,
                "headers": headers,
                "timeoutMs": timeout_ms,
                "path": path,
            },
        )
        post, dom, t0 = result["post"], result["dom"], result["t0"]
        return Sample(
            latency_ms=None if dom is None else dom["t"] - t0,
            post_ms=post["t"] - t0,
            frame_ms=None if result["frame"] is None else result["frame"] - t0,
            wall_ms=None if dom is None else dom["w"] - result["w0"],
            status=int(post["status"]),
            answer=str(post["text"]),
            parent="" if dom is None else str(dom.get("parent", "")),
        )

    async def live_status(self) -> str | None:
        return await self.page.get_attribute("#live-status", "data-state")


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


@contextlib.asynccontextmanager
async def open_board(base: str, child: Child, email: str, password: str) -> AsyncIterator[Board]:
    """Chromium on base + "/", signed in, once the board's live stream says "live"."""
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
            await sign_in_if_asked(page, email, password)
            try:
                await page.wait_for_selector('#live-status[data-state="live"]', timeout=20_000)
            except PlaywrightError as exc:
                state = await page.evaluate(STATE_JS)
                raise RuntimeError(
                    f"the board did not go live: {state}; errors {errors[:3]}\n"
                    f"server log:\n{child.log_tail(20)}"
                ) from exc
            yield Board(page, errors)
        finally:
            await browser.close()


async def measure_events(
    total: int, warmup: int, pause: float, event: Callable[[int], Awaitable[T]]
) -> list[T]:
    """event(0) .. event(total - 1), one at a time; the first `warmup` results are dropped."""
    kept: list[T] = []
    for i in range(total):
        result = await event(i)
        if i >= warmup:
            kept.append(result)
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{total}", flush=True)
        if pause > 0:
            await asyncio.sleep(pause)
    return kept


# -- report --------------------------------------------------------------------------------------
def distribution(values: list[float], *, grouping: bool = False, count: bool = False) -> str:
    """Percentiles and max in ms, one decimal; count adds "(n N)" (sarah.py prints it)."""
    top = max(values) if values else None
    text = "  ".join(
        f"{name} {fmt(x, 1, grouping=grouping)}"
        for name, x in (
            ("p50", percentile(values, 50)),
            ("p95", percentile(values, 95)),
            ("p99", percentile(values, 99)),
            ("max", top),
        )
    )
    return f"{text} ms" + (f" (n {len(values)})" if count else "")


def placement_line(ok: list[Sample]) -> str:
    """How many updated rows were found outside the board's table (expect 0)."""
    misplaced = collections.Counter(s.parent for s in ok if s.parent != ROWS_PARENT)
    return (
        f"placement:   {sum(misplaced.values())} of {len(ok)} updated rows outside "
        f"{ROWS_PARENT}" + (f" (parents: {dict(misplaced)})" if misplaced else "")
    )


def page_lines(final_state: str | None, errors: list[str], width: int) -> list[str]:
    """The page's live state at the end, and its most frequent errors (each cut to width)."""
    lines = [f"page:        live-status {final_state!r}; {len(errors)} console/page errors"]
    lines += [
        f"  {count} x {text[:width]}" for text, count in collections.Counter(errors).most_common(3)
    ]
    return lines


# -- command line --------------------------------------------------------------------------------
def add_sign_in_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--email", default=DEMO_USER_EMAIL, help=f"sign-in, if asked ({DEMO_USER_EMAIL})"
    )
    p.add_argument("--password", default=DEMO_USER_PASSWORD, help="sign-in password, if asked")


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is not installed")
