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
import contextlib
import json
import math
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    BENCH_DIR,
    WEBHOOK_PATH,
    Child,
    DeliveryMix,
    Wire,
    command_line,
    echo_server,
    install_sigterm_handler,
    leadboard_server,
    median,
    redis_server,
)

LUA = BENCH_DIR / "wrk_replay.lua"
NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
TARGETS = {"webhooks_per_s": 1000.0}


# -- deliveries file -----------------------------------------------------------------------------
def write_deliveries(path: Path, wires: list[Wire]) -> None:
    """Records "event \\t key \\t signature \\t length \\n" + body + "\\n" (see wrk_replay.lua)."""
    with path.open("wb") as out:
        for w in wires:
            h = w.headers
            out.write(
                f"{w.event}\t{h['X-Idempotency-Key']}\t{h['X-Webhook-Signature']}\t"
                f"{len(w.body)}\n".encode()
            )
            out.write(w.body)
            out.write(b"\n")


# -- wrk -----------------------------------------------------------------------------------------
@dataclass
class WrkResult:
    duration_s: float
    requests: int
    sent: int
    distinct_sent: int
    non2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    rps: float
    wrk_cpu_s: float
    raw: str = field(repr=False)

    @property
    def accepted(self) -> int:
        return self.requests - self.non2xx

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    base: str, deliveries: Path, *, duration: float, connections: int, threads: int
) -> WrkResult:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        base + WEBHOOK_PATH,
        "--",
        str(deliveries),
        WEBHOOK_PATH,
        str(threads),
    ]
    cpu0 = _children_cpu()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    cpu = _children_cpu() - cpu0
    out = proc.stdout
    line = next((x for x in out.splitlines() if x.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (rc {proc.returncode}):\n{out}\n{proc.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    m = NON2XX.search(out)
    non2xx = int(m.group(1)) if m else 0
    s = SOCKET_ERRORS.search(out)
    socket_errors = sum(int(g) for g in s.groups()) if s else 0
    duration_s = data["duration_us"] / 1e6
    return WrkResult(
        duration_s=duration_s,
        requests=data["requests"],
        sent=data["sent"],
        distinct_sent=data["distinct_sent"],
        non2xx=non2xx,
        socket_errors=socket_errors,
        p50_ms=data["lat_p50_us"] / 1000,
        p90_ms=data["lat_p90_us"] / 1000,
        p99_ms=data["lat_p99_us"] / 1000,
        max_ms=data["lat_max_us"] / 1000,
        rps=data["requests"] / duration_s if duration_s else 0.0,
        wrk_cpu_s=cpu,
        raw=out,
    )


# -- database ------------------------------------------------------------------------------------
COUNTS = {
    "inbox": "SELECT count(*) FROM webhook_inbox",
    "processed": "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NOT NULL",
    "unprocessed": "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NULL",
    "duplicates": "SELECT coalesce(sum(duplicates), 0) FROM webhook_inbox",
    "messages": "SELECT count(*) FROM messages",
    "contacts": "SELECT count(*) FROM contacts",
    "change_events": "SELECT count(*) FROM change_events",
}


def db_counts(db_path: Path, counts: dict[str, str] = COUNTS) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return {name: int(conn.execute(sql).fetchone()[0]) for name, sql in counts.items()}
    finally:
        conn.close()


def settle(
    db_path: Path, timeout: float = 15.0, counts: dict[str, str] = COUNTS
) -> dict[str, int]:
    """Counts once in-flight requests have drained (two equal readings 0.5 s apart)."""
    deadline = time.monotonic() + timeout
    last = db_counts(db_path, counts)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = db_counts(db_path, counts)
        if now == last:
            return now
        last = now
    return last


# -- profiling -----------------------------------------------------------------------------------
@contextlib.contextmanager
def py_spy(child: Child, out_dir: Path | None, duration: float) -> Iterator[None]:
    """Optionally sample the server with py-spy (raw collapsed stacks) while the block runs."""
    if out_dir is None:
        yield
        return
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "leadboard.folded"
    argv = [
        binary,
        "record",
        "--pid",
        str(child.pid),
        "--rate",
        "200",
        "--format",
        "raw",
        "--duration",
        str(max(1, math.ceil(duration))),
        "--output",
        str(raw),
        "--nonblocking",
        "--gil",  # only the thread holding the GIL: where the CPU goes, not who waits
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        try:
            _, err = proc.communicate(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
        if proc.returncode != 0:
            print(f"py-spy failed (rc {proc.returncode}): {err.decode(errors='replace')[-500:]}")
        elif raw.exists():
            summarize_profile(raw, out_dir / "top.txt")


def summarize_profile(folded: Path, out: Path, top: int = 25) -> None:
    """Top functions by own samples, and app/ functions by inclusive samples (py-spy raw)."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [
            f
            for f in stack.split(";")
            if not f.startswith("process ") and not f.startswith("thread ")
        ]
        if not frames:
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    lines = [f"py-spy samples: {total} ({folded})", "", "Top by own samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    ours = [(f, n) for f, n in incl.most_common() if "(app/" in f][:top]
    lines += ["", "Top project functions (app/) by inclusive samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in ours]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


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
    server_cpu_s: float

    @property
    def processed_per_s(self) -> float:
        return self.processed / self.wrk.duration_s if self.wrk.duration_s else 0.0

    @property
    def accepted_per_s(self) -> float:
        return self.wrk.accepted / self.wrk.duration_s if self.wrk.duration_s else 0.0


def measure_baseline(args: argparse.Namespace, workdir: Path, main_file: Path) -> WrkResult:
    with echo_server(workdir) as (base, _child):
        if args.warmup > 0:
            run_wrk(
                base,
                main_file,
                duration=args.warmup,
                connections=args.connections,
                threads=args.threads,
            )
        return run_wrk(
            base,
            main_file,
            duration=args.duration,
            connections=args.connections,
            threads=args.threads,
        )


def measure_leadboard(
    args: argparse.Namespace,
    workdir: Path,
    warm_file: Path,
    main_file: Path,
    redis_url: str | None,
    profile_dir: Path | None,
) -> LeadboardRun:
    with leadboard_server(workdir, redis_url) as (base, child, db_path):
        if args.warmup > 0:
            run_wrk(
                base,
                warm_file,
                duration=args.warmup,
                connections=args.connections,
                threads=args.threads,
            )
        before = settle(db_path)
        cpu0 = child.cpu_seconds()
        with py_spy(child, profile_dir, args.duration):
            result = run_wrk(
                base,
                main_file,
                duration=args.duration,
                connections=args.connections,
                threads=args.threads,
            )
        cpu = child.cpu_seconds() - cpu0
        after = settle(db_path)
        delta = {k: after[k] - before[k] for k in after}
        log_errors = [
            x for x in child.log_tail(4000).splitlines() if "ERROR" in x or "Traceback" in x
        ]
        if log_errors:
            print(f"  server logged {len(log_errors)} error lines; first: {log_errors[0][:200]}")
        return LeadboardRun(
            wrk=result,
            processed=delta["processed"],
            unprocessed=delta["unprocessed"],
            duplicates=delta["duplicates"],
            messages=delta["messages"],
            contacts=after["contacts"],
            change_events=delta["change_events"],
            server_cpu_s=cpu,
        )


# -- main ----------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=15.0, help="seconds per measured run (15)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1: leave a core)")
    p.add_argument("--repeat", type=int, default=3, help="repeats; medians are reported (3)")
    p.add_argument("--redis", action="store_true", help="private redis-server + REDIS_URL")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds, not counted (3)")
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
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="py-spy the server during the first measured run; write DIR/top.txt",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    return p.parse_args()


def _fmt(x: float, digits: int = 0) -> str:
    return "n/a" if x != x else f"{x:,.{digits}f}"


def main() -> int:
    args = parse_args()
    install_sigterm_handler()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="leadboard-bench-ingest-"))
    try:
        return _run(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


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
    write_deliveries(warm_file, warm)
    write_deliveries(main_file, wires)
    del warm, wires
    mix_text = ", ".join(f"{k} {100 * v / args.deliveries:.0f}%" for k, v in mix_counts.items())
    print(f"  mix: {mix_text}; mean body {mean_body:,.0f} B", flush=True)

    baselines: list[WrkResult] = []
    runs: list[LeadboardRun] = []
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(workdir)) if args.redis else None
        for i in range(args.repeat):
            print(f"\nrun {i + 1}/{args.repeat}: baseline ...", flush=True)
            b = measure_baseline(args, workdir, main_file)
            baselines.append(b)
            print(
                f"  baseline  {b.rps:9,.0f} req/s  p50 {b.p50_ms:7.2f} ms  p99 "
                f"{b.p99_ms:7.2f} ms  errors {b.errors}",
                flush=True,
            )
            print(f"run {i + 1}/{args.repeat}: leadboard ...", flush=True)
            profile_dir = args.profile if i == 0 else None
            r = measure_leadboard(args, workdir, warm_file, main_file, redis_url, profile_dir)
            runs.append(r)
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
        f"baseline:    {_fmt(base_rps)} req/s (bare Litestar JSON echo), p50 "
        f"{_fmt(median([b.p50_ms for b in baselines]), 2)} ms, p99 "
        f"{_fmt(median([b.p99_ms for b in baselines]), 2)} ms"
    )
    print(
        f"leadboard:   {_fmt(acc)} accepted/s, {_fmt(proc)} processed/s, p50 "
        f"{_fmt(median([r.wrk.p50_ms for r in runs]), 2)} ms, p99 "
        f"{_fmt(median([r.wrk.p99_ms for r in runs]), 2)} ms"
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
        f"target:      >= {target:,.0f} webhooks/s -> median {_fmt(proc)}/s "
        f"({'met' if proc >= target else 'NOT met'})"
    )
    print(f"elapsed:     {time.monotonic() - started:.0f} s")
    print("=" * 78)
    return 0


if __name__ == "__main__":
    sys.exit(main())
