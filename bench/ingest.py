"""Sustained signed-webhook throughput: Leadboard against a bare Litestar baseline.

    .venv/bin/python bench/ingest.py [--duration 15] [--connections 32] [--repeat 3] [--redis]

Each repeat measures, back to back on the same machine:
  (a) the baseline: bench/_echo_app.py (one JSON POST echo endpoint) under uvicorn, one worker;
  (b) the real product: `leadboard serve` (one uvicorn worker, migrations, demo workspace) on a
      fresh SQLite file in a temp dir, with the in-process broker (or a private redis-server with
      --redis).
Load comes from wrk (C, one thread by default) with bench/wrk_replay.lua, which cycles through
pre-generated, pre-signed deliveries read from a file: a Python load generator would steal the
server's CPU. Every delivery is unique (own wamid or status, own idempotency key); the run counts
how many distinct ones were sent, and afterwards how many the database shows as processed.

Figures: baseline req/s; Leadboard accepted/s (2xx answers), processed/s (inbox rows processed in
the window), errors (wrk's "Non-2xx or 3xx responses" plus socket errors), p50/p99 latency, the
server's CPU use, and leadboard/baseline. Medians over --repeat runs are printed at the end.
No timed assertions: this reports, it does not judge.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    WEBHOOK_PATH,
    DeliveryMix,
    command_line,
    fmt,
    install_sigterm_handler,
    leadboard_server,
    median,
    scratch_dir,
)
from _profile import add_profile_option
from _wrk import (
    Load,
    WrkResult,
    add_load_options,
    back_to_back,
    measure_server,
    require_wrk,
    write_requests,
)

TARGETS = {"webhooks_per_s": 1000.0}
COUNTS = {
    "inbox": "SELECT count(*) FROM webhook_inbox",
    "processed": "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NOT NULL",
    "unprocessed": "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NULL",
    "duplicates": "SELECT coalesce(sum(duplicates), 0) FROM webhook_inbox",
    "messages": "SELECT count(*) FROM messages",
    "contacts": "SELECT count(*) FROM contacts",
    "change_events": "SELECT count(*) FROM change_events",
}


# -- one repeat ----------------------------------------------------------------------------------
@dataclass
class LeadboardRun:
    wrk: WrkResult
    processed: int
    unprocessed: int
    duplicates: int
    messages: int
    contacts: int
    change_events: int

    @property
    def server_cpu_s(self) -> float:
        return self.wrk.server_cpu_s

    @property
    def processed_per_s(self) -> float:
        return self.wrk.per_s(self.processed)

    @property
    def accepted_per_s(self) -> float:
        return self.wrk.per_s(self.wrk.accepted)


def measure_leadboard(
    load: Load,
    workdir: Path,
    files: tuple[Path, Path],
    redis_url: str | None,
    profile_dir: Path | None,
) -> LeadboardRun:
    """One fresh `leadboard serve`: warm up on other deliveries, then the measured ones."""
    with leadboard_server(workdir, redis_url) as (base, child, db_path):
        run = measure_server(base, child, db_path, files, WEBHOOK_PATH, load, COUNTS, profile_dir)
        log_errors = [
            x for x in child.log_tail(4000).splitlines() if "ERROR" in x or "Traceback" in x
        ]
        if log_errors:
            print(f"  server logged {len(log_errors)} error lines; first: {log_errors[0][:200]}")
        delta = run.delta
        return LeadboardRun(
            wrk=run.wrk,
            processed=delta["processed"],
            unprocessed=delta["unprocessed"],
            duplicates=delta["duplicates"],
            messages=delta["messages"],
            contacts=run.after["contacts"],
            change_events=delta["change_events"],
        )


def print_leadboard_run(r: LeadboardRun) -> None:
    """One repeat's lines: rates, errors, CPU, and what the database shows."""
    w = r.wrk
    print(
        f"  leadboard {r.accepted_per_s:9,.0f} accepted/s  {r.processed_per_s:9,.0f} "
        f"processed/s  p50 {w.p50_ms:7.2f} ms  p99 {w.p99_ms:7.2f} ms  errors "
        f"{w.errors} (non-2xx {w.non2xx}, socket {w.socket_errors})  server CPU "
        f"{100 * r.server_cpu_s / w.duration_s:.0f}%  wrk CPU "
        f"{100 * w.wrk_cpu_s / w.duration_s:.0f}%",
        flush=True,
    )
    print(
        f"            sent {w.sent:,} (distinct {w.distinct_sent:,}), answered "
        f"{w.requests:,}; db: +{r.processed:,} processed inbox rows, "
        f"+{r.unprocessed:,} unprocessed, +{r.duplicates:,} duplicates, "
        f"+{r.messages:,} messages, +{r.change_events:,} change events, "
        f"{r.contacts:,} leads",
        flush=True,
    )


# -- main ----------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_load_options(p)
    p.add_argument(
        "--deliveries",
        type=int,
        default=60_000,
        help="unique deliveries pre-generated for a measured run (60000)",
    )
    p.add_argument("--leads", type=int, default=2000, help="distinct leads writing (2000)")
    p.add_argument(
        "--style",
        choices=["recorded", "compact"],
        default="recorded",
        help="recorded: like tests/fixtures (~1.35 KB); compact: samples.sign()",
    )
    p.add_argument("--seed", type=int, default=1)
    add_profile_option(p)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    install_sigterm_handler()
    require_wrk()
    with scratch_dir("leadboard-bench-ingest-", args.keep) as workdir:
        return _run(args, workdir)


def _run(args: argparse.Namespace, workdir: Path) -> int:
    started = time.monotonic()
    mix = DeliveryMix(leads=args.leads, seed=args.seed, style=args.style)
    warm_mix = DeliveryMix(leads=args.leads, seed=args.seed, style=args.style, stream=1)
    warm_count = max(1000, int(args.warmup * 3000)) if args.warmup > 0 else 0
    print(
        f"generating {warm_count:,} warm-up + {args.deliveries:,} measured deliveries "
        f"({args.style}) over {args.leads:,} leads ...",
        flush=True,
    )
    warm = [warm_mix.next() for _ in range(warm_count)]
    wires = [mix.next() for _ in range(args.deliveries)]
    mix_counts = collections.Counter(w.event.rsplit(".", 1)[-1] for w in wires)
    mean_body = sum(len(w.body) for w in wires) / len(wires)
    warm_file, main_file = workdir / "warmup.deliveries", workdir / "measured.deliveries"
    write_requests(warm_file, ((w.headers, w.body) for w in warm))
    write_requests(main_file, ((w.headers, w.body) for w in wires))
    del warm, wires
    mix_text = ", ".join(f"{k} {100 * v / args.deliveries:.0f}%" for k, v in mix_counts.items())
    print(f"  mix: {mix_text}; mean body {mean_body:,.0f} B", flush=True)

    load = Load.from_args(args)

    def leadboard(i: int, redis_url: str | None) -> LeadboardRun:
        profile_dir = args.profile if i == 0 else None
        r = measure_leadboard(load, workdir, (warm_file, main_file), redis_url, profile_dir)
        print_leadboard_run(r)
        return r

    baselines, runs = back_to_back(
        workdir,
        main_file,
        WEBHOOK_PATH,
        load,
        repeat=args.repeat,
        redis=args.redis,
        label="leadboard",
        product=leadboard,
    )

    base_rps = median([b.rps for b in baselines])
    acc = median([r.accepted_per_s for r in runs])
    proc = median([r.processed_per_s for r in runs])
    ratio = median([r.processed_per_s / b.rps for r, b in zip(runs, baselines, strict=True)])
    wrapped = any(r.wrk.sent > r.wrk.distinct_sent for r in runs)
    print()
    print("=" * 78)
    print("Leadboard ingest benchmark: signed Kapso webhooks, sustained")
    print(f"command:     {command_line()}")
    print(
        f"setup:       {args.repeat} x {args.duration:g} s per server (+{args.warmup:g} s "
        f"warm-up), wrk -t{args.threads} -c{args.connections}, "
        f"broker {'redis' if args.redis else 'in-process'}, SQLite, 1 uvicorn worker"
    )
    print(
        f"deliveries:  {args.deliveries:,} unique pre-signed ({args.style}, mean "
        f"{mean_body:,.0f} B): {mix_text}; {args.leads:,} leads"
    )
    print(
        f"baseline:    {fmt(base_rps)} req/s (bare Litestar JSON echo), p50 "
        f"{fmt(median([b.p50_ms for b in baselines]), 2)} ms, p99 "
        f"{fmt(median([b.p99_ms for b in baselines]), 2)} ms"
    )
    print(
        f"leadboard:   {fmt(acc)} accepted/s, {fmt(proc)} processed/s, p50 "
        f"{fmt(median([r.wrk.p50_ms for r in runs]), 2)} ms, p99 "
        f"{fmt(median([r.wrk.p99_ms for r in runs]), 2)} ms"
    )
    print(
        f"errors:      {[r.wrk.errors for r in runs]} per run (non-2xx "
        f"{[r.wrk.non2xx for r in runs]}, socket {[r.wrk.socket_errors for r in runs]})"
    )
    print(
        f"unique sent: {[r.wrk.distinct_sent for r in runs]} of "
        f"{[r.wrk.sent for r in runs]} sent"
        + ("  (file wrapped: raise --deliveries)" if wrapped else "")
    )
    print(
        f"server CPU:  {[round(100 * r.server_cpu_s / r.wrk.duration_s) for r in runs]} % "
        "of one core"
    )
    print(f"ratio:       leadboard processed / baseline = {ratio:.3f}")
    print(
        f"per run:     baseline {[round(b.rps) for b in baselines]} req/s; leadboard "
        f"processed {[round(r.processed_per_s) for r in runs]}/s"
    )
    target = TARGETS["webhooks_per_s"]
    print(
        f"target:      >= {target:,.0f} webhooks/s -> median {fmt(proc)}/s "
        f"({'met' if proc >= target else 'NOT met'})"
    )
    print(f"elapsed:     {time.monotonic() - started:.0f} s")
    print("=" * 78)
    return 0


if __name__ == "__main__":
    sys.exit(main())
