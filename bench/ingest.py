"""Sustained signed-webhook throughput on both databases and 1..N processes, against a baseline.

    .venv/bin/python bench/ingest.py [--database sqlite postgres] [--processes 1 2]
                                     [--duration 15] [--connections 32] [--repeat 3] [--redis]

Each repeat measures, back to back on the same machine:
  (a) the baseline: bench/_echo_app.py (one JSON POST echo endpoint) under uvicorn, one worker;
  (b) every setup asked for, in an order that rotates from repeat to repeat: a fresh
      `leadboard serve --workers N` on a fresh SQLite file or a fresh PostgreSQL database (the
      local server), with the in-process broker (or one private redis-server with --redis).
Each server is warmed up on other deliveries, then ANALYZEd (what autovacuum does within a
minute of a table growing; before it PostgreSQL planned the lead lookup on an empty-table
estimate), then driven by wrk (C, one thread) with bench/wrk_replay.lua, which cycles through
pre-generated, pre-signed, unique deliveries read from a file: a Python load generator would
steal the server's CPU. wrk's connections are shared among the workers as each accepts them.

Figures per setup: processed/s (inbox rows processed in the window, read from the database),
errors (non-2xx + socket errors), deliveries left unprocessed ("queued", what a database error
is answered with), p50/p99 latency, the CPU of the server's processes, and the ratios to the
baseline, to 1 process on SQLite, and to 1 process on the same database. Medians over --repeat.
No timed assertions: this reports, it does not judge.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    WEBHOOK_PATH,
    DeliveryMix,
    PostgresUnavailable,
    command_line,
    fmt,
    install_sigterm_handler,
    median,
    postgres_database,
    scratch_dir,
)
from _db import analyze
from _serve import postgres_cpu, process_tree, serve, settled_counts, tree_cpu
from _wrk import (
    Load,
    WrkResult,
    add_load_options,
    back_to_back,
    require_wrk,
    run_wrk,
    warm_up,
    write_requests,
)

TARGETS = {"webhooks_per_s": 1000.0, "p99_ms": 200.0}


@dataclass(frozen=True)
class Setup:
    database: str  # sqlite | postgres
    processes: int

    @property
    def label(self) -> str:
        name = "SQLite" if self.database == "sqlite" else "PostgreSQL"
        return f"{name}, {self.processes} process{'es' if self.processes > 1 else ''}"


@dataclass
class Run:
    setup: Setup
    wrk: WrkResult
    delta: dict[str, int]
    cpu_s: float
    postgres_cpu_s: float
    error_lines: int

    @property
    def processed_per_s(self) -> float:
        return self.wrk.per_s(self.delta["processed"])


def measure(
    workdir: Path, setup: Setup, files: tuple[Path, Path], load: Load, redis: str | None
) -> Run:
    with contextlib.ExitStack() as stack:
        database_url = (
            stack.enter_context(postgres_database()) if setup.database == "postgres" else None
        )
        base, child, url = stack.enter_context(serve(workdir, setup.processes, redis, database_url))
        warm_up(base, files[0], WEBHOOK_PATH, load)
        analyze(url)
        before = settled_counts(url)
        pids = process_tree(child.pid)
        cpu0, pg0 = tree_cpu(pids), postgres_cpu()
        result = run_wrk(base, files[1], WEBHOOK_PATH, load, seconds=load.duration)
        cpu1, pg1 = tree_cpu(pids), postgres_cpu()
        after = settled_counts(url)
        log = child.log_path.read_text(errors="replace")
    return Run(
        setup=setup,
        wrk=result,
        delta={k: after[k] - before[k] for k in after},
        cpu_s=sum(cpu1[p] - cpu0[p] for p in cpu1 if p in cpu0),
        postgres_cpu_s=pg1 - pg0,
        error_lines=sum(1 for line in log.splitlines() if "ERROR" in line or "Traceback" in line),
    )


def print_run(r: Run) -> None:
    w, d = r.wrk, r.delta
    print(
        f"  {r.setup.label:26s} {r.processed_per_s:7,.0f} processed/s  p50 {w.p50_ms:6.1f} ms"
        f"  p99 {w.p99_ms:6.1f} ms  errors {w.errors}  queued {d['unprocessed']}"
        f"  duplicates {d['duplicates']}  log errors {r.error_lines}"
        f"  CPU {100 * r.cpu_s / w.duration_s:.0f}% of a core"
        + (
            f" + PostgreSQL {100 * r.postgres_cpu_s / w.duration_s:.0f}%"
            if r.setup.database == "postgres"
            else ""
        )
        + f", wrk {100 * w.wrk_cpu_s / w.duration_s:.0f}%",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_load_options(p)
    p.add_argument(
        "--database", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="N values (1 2)")
    p.add_argument("--deliveries", type=int, default=60_000, help="unique deliveries (60000)")
    p.add_argument("--leads", type=int, default=2000, help="distinct leads writing (2000)")
    p.add_argument(
        "--style",
        choices=["recorded", "compact"],
        default="recorded",
        help="recorded: like tests/fixtures (~1.35 KB); compact: samples.sign()",
    )
    p.add_argument("--seed", type=int, default=1)
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
    print(f"generating {warm_count:,} warm-up + {args.deliveries:,} deliveries ...", flush=True)
    wires = [mix.next() for _ in range(args.deliveries)]
    mix_counts = collections.Counter(w.event.rsplit(".", 1)[-1] for w in wires)
    mean_body = sum(len(w.body) for w in wires) / len(wires)
    files = (workdir / "warmup.deliveries", workdir / "measured.deliveries")
    write_requests(
        files[0], ((w.headers, w.body) for w in (warm_mix.next() for _ in range(warm_count)))
    )
    write_requests(files[1], ((w.headers, w.body) for w in wires))
    del wires
    mix_text = ", ".join(f"{k} {100 * v / args.deliveries:.0f}%" for k, v in mix_counts.items())
    load = Load.from_args(args)
    setups = [Setup(db, n) for db in args.database for n in args.processes]

    def every_setup(i: int, redis: str | None) -> dict[Setup, Run]:
        shift = i % len(setups)  # rotate: each setup takes each place in the order once
        out: dict[Setup, Run] = {}
        for setup in setups[shift:] + setups[:shift]:
            out[setup] = run = measure(workdir, setup, files, load, redis)
            print_run(run)
        return out

    try:
        baselines, repeats = back_to_back(
            workdir,
            files[1],
            WEBHOOK_PATH,
            load,
            repeat=args.repeat,
            redis=args.redis,
            label=" / ".join(s.label for s in setups),
            product=every_setup,
        )
    except PostgresUnavailable as exc:
        print(f"PostgreSQL leg skipped: {exc}")
        return 1
    _report(args, setups, baselines, repeats, mix_text, mean_body, started)
    return 0


def _report(
    args: argparse.Namespace,
    setups: list[Setup],
    baselines: list[WrkResult],
    repeats: list[dict[Setup, Run]],
    mix_text: str,
    mean_body: float,
    started: float,
) -> None:
    def rate(setup: Setup) -> float:
        return median([r[setup].processed_per_s for r in repeats])

    first = setups[0]
    print()
    print("=" * 78)
    print("Leadboard ingest: signed Kapso webhooks, sustained, both databases, 1..N processes")
    print(f"command:     {command_line()}")
    print(
        f"setup:       {args.repeat} x {args.duration:g} s per server (+{args.warmup:g} s warm-up,"
        f" then ANALYZE), wrk -t{args.threads} -c{args.connections}, broker "
        f"{'redis' if args.redis else 'in-process'}, {os.cpu_count()} cores"
    )
    print(
        f"deliveries:  {args.deliveries:,} unique pre-signed ({args.style}, mean "
        f"{mean_body:,.0f} B): {mix_text}; {args.leads:,} leads"
    )
    base = median([b.rps for b in baselines])
    print(f"baseline:    {fmt(base)} req/s (bare Litestar JSON echo, 1 process)")
    for setup in setups:
        runs = [r[setup] for r in repeats]
        proc = rate(setup)
        one = Setup(setup.database, setups[0].processes)
        vs_one = (
            f", x{proc / rate(one):.2f} of {one.processes} on this database"
            if (one in repeats[0] and one != setup)
            else ""
        )
        each = ", ".join(fmt(r.processed_per_s) for r in runs)
        app_cpu = median([100 * r.cpu_s / r.wrk.duration_s for r in runs])
        pg_cpu = median([100 * r.postgres_cpu_s / r.wrk.duration_s for r in runs])
        per_delivery = median(
            [1000 * (r.cpu_s + r.postgres_cpu_s) / max(1, r.delta["processed"]) for r in runs]
        )
        cpu = f"CPU {fmt(app_cpu)}% of a core" + (
            f" + PostgreSQL {fmt(pg_cpu)}%" if setup.database == "postgres" else ""
        )
        print(
            f"{setup.label:26s} {fmt(proc)} processed/s ({each})"
            f", x{proc / rate(first):.2f} of {first.label}{vs_one}, x{proc / base:.3f} of baseline;"
            f" p50 {fmt(median([r.wrk.p50_ms for r in runs]), 1)} ms, p99 "
            f"{fmt(median([r.wrk.p99_ms for r in runs]), 1)} ms; {cpu}"
            f" ({fmt(per_delivery, 2)} ms a delivery); errors "
            f"{[r.wrk.errors for r in runs]}, queued {[r.delta['unprocessed'] for r in runs]}, "
            f"log errors {[r.error_lines for r in runs]}"
        )
    print(f"elapsed:     {time.monotonic() - started:.0f} s")
    print("=" * 78)


if __name__ == "__main__":
    sys.exit(main())
