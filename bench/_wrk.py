"""Sustained load with wrk, replaying pre-built requests: shared by bench/ingest.py and sarah.py.

wrk is C and one thread by default, so the load generator leaves the server its core; a Python
generator would steal it. Requests are generated in Python beforehand, written to a file
(write_requests) and replayed by bench/wrk_replay.lua, which prints exact counts as JSON. The
baseline (bench/_echo_app.py) is driven by the same file and settings as the product, so the two
figures compare.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from _common import BENCH_DIR, Child, echo_server, redis_server
from _db import DatabaseRef, analyze, settle
from _profile import py_spy

LUA = BENCH_DIR / "wrk_replay.lua"
R = TypeVar("R")


@dataclass(frozen=True)
class Load:
    """How wrk drives a server: the same for the baseline and the product, so they compare."""

    duration: float  # seconds per measured run
    warmup: float  # seconds of load first, not counted (0: none)
    connections: int
    threads: int
    sort_answers: bool = False  # count 200 sync:true / sync:false / 429 ... (Sarah's answers)

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, sort_answers: bool = False) -> Load:
        return cls(args.duration, args.warmup, args.connections, args.threads, sort_answers)


def add_load_options(p: argparse.ArgumentParser) -> None:
    """The options every wrk benchmark takes, with the same defaults (see Load.from_args)."""
    p.add_argument("--duration", type=float, default=15.0, help="seconds per measured run (15)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1: leave a core)")
    p.add_argument("--repeat", type=int, default=3, help="repeats; medians are reported (3)")
    p.add_argument("--redis", action="store_true", help="private redis-server + REDIS_URL")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds, not counted (3)")


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")


def write_requests(path: Path, requests: Iterable[tuple[dict[str, str], bytes]]) -> None:
    """Records "length \\t Name: value ... \\n" + body + "\\n" (see wrk_replay.lua)."""
    with path.open("wb") as out:
        for headers, body in requests:
            fields = "".join(f"\t{name}: {value}" for name, value in headers.items())
            if "\n" in fields or fields.count("\t") != len(headers):
                raise ValueError(f"header names and values cannot hold tabs or newlines: {headers}")
            out.write(f"{len(body)}{fields}\n".encode())
            out.write(body)
            out.write(b"\n")


@dataclass
class WrkResult:
    """One wrk run, as wrk_replay.lua counted it."""

    duration_s: float
    requests: int  # answers received
    sent: int
    distinct_sent: int
    non2xx: int  # wrk's "Non-2xx or 3xx responses" (status >= 400)
    socket_errors: int  # connect + read + write + timeout
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wrk_cpu_s: float
    raw: str = field(repr=False)
    # With Load.sort_answers: ok_sync, ok_nosync, ok_other, too_many, other_status.
    answers: dict[str, int] = field(default_factory=dict)
    server_cpu_s: float = float("nan")  # set by the caller: the server's CPU during the run

    @property
    def rps(self) -> float:
        return self.per_s(self.requests)

    @property
    def accepted(self) -> int:
        return self.requests - self.non2xx

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.requests if self.requests else float("nan")

    def per_s(self, count: float) -> float:
        """A count over this run's duration."""
        return count / self.duration_s if self.duration_s else 0.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(base: str, requests: Path, path: str, load: Load, *, seconds: float) -> WrkResult:
    """POST the file's requests to base + path for `seconds`, as `load` says."""
    argv = [
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        base + path,
        "--",
        str(requests),
        path,
        str(load.threads),
    ]
    env = {**os.environ, "WRK_SORT_ANSWERS": "1" if load.sort_answers else "0"}
    cpu0 = _children_cpu()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, env=env)
    cpu = _children_cpu() - cpu0
    out = proc.stdout
    line = next((x for x in out.splitlines() if x.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (rc {proc.returncode}):\n{out}\n{proc.stderr}")
    d = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        duration_s=d["duration_us"] / 1e6,
        requests=d["requests"],
        sent=d["sent"],
        distinct_sent=d["distinct_sent"],
        non2xx=d["err_status"],
        socket_errors=d["err_connect"] + d["err_read"] + d["err_write"] + d["err_timeout"],
        p50_ms=d["lat_p50_us"] / 1000,
        p90_ms=d["lat_p90_us"] / 1000,
        p99_ms=d["lat_p99_us"] / 1000,
        max_ms=d["lat_max_us"] / 1000,
        wrk_cpu_s=cpu,
        raw=out,
        answers=d.get("answers", {}),
    )


def warm_up(base: str, requests: Path, path: str, load: Load) -> None:
    """Load.warmup seconds of load, not counted: the measured run starts on a warm server."""
    if load.warmup > 0:
        run_wrk(base, requests, path, load, seconds=load.warmup)


def measure_baseline(workdir: Path, requests: Path, path: str, load: Load) -> WrkResult:
    """The same requests against the bare echo app: what the framework and server alone cost."""
    with echo_server(workdir) as (base, child):
        warm_up(base, requests, path, load)
        cpu0 = child.cpu_seconds()
        result = run_wrk(base, requests, path, load, seconds=load.duration)
        result.server_cpu_s = child.cpu_seconds() - cpu0
        return result


@dataclass
class Measured:
    """A measured run against the product, with its database counts before and after."""

    wrk: WrkResult
    before: dict[str, int]
    after: dict[str, int]

    @property
    def delta(self) -> dict[str, int]:
        return {k: self.after[k] - self.before[k] for k in self.after}


def measure_server(
    base: str,
    child: Child,
    db_path: DatabaseRef,
    files: tuple[Path, Path],
    path: str,
    load: Load,
    counts: dict[str, str],
    profile_dir: Path | None = None,
) -> Measured:
    """Warm up on files[0], then measure files[1]; the database is counted once it settles.

    Warm-up requests are other ones (other deliveries, other leads), so the measured run's
    requests are all new to the server.
    """
    warm_file, main_file = files
    warm_up(base, warm_file, path, load)
    analyze(db_path)  # the steady state's plans, as autovacuum makes them (bench/_db.py)
    before = settle(db_path, counts)
    cpu0 = child.cpu_seconds()
    with py_spy(child, profile_dir, load.duration):
        result = run_wrk(base, main_file, path, load, seconds=load.duration)
    result.server_cpu_s = child.cpu_seconds() - cpu0
    after = settle(db_path, counts)
    return Measured(result, before, after)


def back_to_back(
    workdir: Path,
    requests: Path,
    echo_path: str,
    load: Load,
    *,
    repeat: int,
    redis: bool,
    label: str,
    product: Callable[[int, str | None], R],
    baseline_cpu: bool = False,
) -> tuple[list[WrkResult], list[R]]:
    """`repeat` times: the baseline on `requests`, then product(i, redis_url), back to back.

    Both halves of a repeat see the same machine load, so their ratio holds up on a shared
    machine better than either figure. With `redis`, one private redis-server serves every run.
    product() measures and prints its own lines; baseline_cpu adds the echo server's CPU use to
    the baseline's line.
    """
    baselines: list[WrkResult] = []
    runs: list[R] = []
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(workdir)) if redis else None
        for i in range(repeat):
            print(f"\nrun {i + 1}/{repeat}: baseline ...", flush=True)
            b = measure_baseline(workdir, requests, echo_path, load)
            baselines.append(b)
            line = (
                f"  baseline  {b.rps:9,.0f} req/s  p50 {b.p50_ms:7.2f} ms  p99 "
                f"{b.p99_ms:7.2f} ms  errors {b.errors}"
            )
            if baseline_cpu:
                line += (
                    f"  server CPU {100 * b.server_cpu_s / b.duration_s:.0f}% "
                    f"({b.cpu_ms_per_request:.2f} ms/req)"
                )
            print(line, flush=True)
            print(f"run {i + 1}/{repeat}: {label} ...", flush=True)
            runs.append(product(i, redis_url))
    return baselines, runs
