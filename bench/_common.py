"""Shared by the benchmarks: private servers (Leadboard, redis-server, the echo baseline), free
ports, and realistic signed Kapso deliveries.

Every child process is started in its own process group with PR_SET_PDEATHSIG=SIGTERM, and is
stopped with SIGTERM (then SIGKILL after a grace period) when its context manager exits, so an
error, Ctrl-C or a SIGTERM sent to the benchmark never leaves a server behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import heapq
import json
import math
import os
import random
import resource
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.ingest.samples import (
    INBOUND_TEXTS,
    OUTBOUND_TEXTS,
    SampleLead,
    inbound_message,
    outbound_message,
    sign,
)
from app.ingest.signatures import kapso_signature
from app.workspaces.services import DEMO_PHONE_NUMBER_ID, DEMO_WEBHOOK_SECRET

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
LEADBOARD_BIN = VENV_BIN / "leadboard"
WEBHOOK_PATH = "/webhooks/kapso"
PHONE_NUMBER_ID = DEMO_PHONE_NUMBER_ID
SECRET = DEMO_WEBHOOK_SECRET
_PR_SET_PDEATHSIG = 1
# The PostgreSQL server the benchmarks' PostgreSQL legs use (trust auth on this machine); each leg
# creates and drops its own database there.
POSTGRES_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def command_line() -> str:
    """The exact command that ran this benchmark, ready to paste."""
    return shlex.join([sys.executable, *sys.argv])


@contextlib.contextmanager
def scratch_dir(prefix: str, keep: bool) -> Iterator[Path]:
    """A temp dir for servers' logs and databases, removed afterwards unless `keep` (--keep)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install_sigterm_handler() -> None:
    """Turn SIGTERM into SystemExit so every `finally` (and so every server stop) runs."""

    def _raise(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)


def _child_setup() -> None:
    # Own process group (we signal only what we started) and die with the benchmark.
    os.setpgid(0, 0)
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def raise_nofile_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kb(pid: int) -> int:
    """The process's resident set (VmRSS) in kB, from /proc; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Child:
    """A subprocess we started; `stop()` sends SIGTERM to it and only it (and its group).

    pipes=True: stdin and stdout are pipes (`proc.stdin`, `proc.stdout`) for a control channel;
    stderr still goes to the log.
    """

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    pipes: bool = False

    def start(self) -> None:
        env = {**os.environ, **self.env}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE if self.pipes else self._log,
            stderr=self._log if self.pipes else subprocess.STDOUT,
            stdin=subprocess.PIPE if self.pipes else subprocess.DEVNULL,
            env=env,
            cwd=str(PROJECT_ROOT),
            preexec_fn=_child_setup,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU of the process (all its threads) so far, from /proc."""
        try:
            raw = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return float("nan")
        fields = raw.rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


def wait_http(child: Child, url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(
        f"{child.name} did not answer {url} in {timeout:.0f} s ({last}):\n{child.log_tail()}"
    )


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A private redis-server on a free port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    child = Child(
        "redis-server",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        workdir / f"redis-{port}.log",
    )
    child.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or not child.alive():
                    raise RuntimeError(f"redis-server did not start:\n{child.log_tail()}") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        child.stop()


@contextlib.contextmanager
def leadboard_server(
    workdir: Path,
    redis_url: str | None = None,
    *,
    name: str = "leadboard",
    database_url: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, Child, Path | str]]:
    """`leadboard serve` exactly as in production, on a fresh SQLite file and a free port.

    database_url: use that database instead (an existing SQLite file, or PostgreSQL, e.g. from
    `postgres_database()`). env: more environment for the server. Yields (base_url, child,
    database): the SQLite file's path, or database_url when given (what bench/_db.py reads).
    """
    port = free_port()
    rundir = workdir / f"{name}-{port}"
    rundir.mkdir(parents=True)
    db_path = rundir / "db.sqlite"
    env = {
        "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{db_path}",
        "DEMO_WORKSPACE": "1",
        "REDIS_URL": redis_url or "",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    argv = [str(LEADBOARD_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    child = Child(name, argv, rundir / "server.log", env=env)
    child.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(child, f"{base}/healthz")
        yield base, child, database_url or db_path
    finally:
        child.stop()


class PostgresUnavailable(RuntimeError):
    """PostgreSQL did not answer (or refused to create a database): skip that leg, say why."""


def _run_coroutine(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to the end on its own loop in a thread (callable inside a running loop)."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="postgres-admin")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _pg_execute(admin_url: str, sql: str) -> None:
    import asyncpg

    async def execute() -> None:
        dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run_coroutine(execute())


@contextlib.contextmanager
def postgres_database(
    admin_url: str = POSTGRES_ADMIN_URL, prefix: str = "leadboard_bench"
) -> Iterator[str]:
    """A fresh, empty PostgreSQL database `<prefix>_<random>`, dropped afterwards (WITH FORCE).

    Yields its SQLAlchemy URL (postgresql+asyncpg://...); raises PostgresUnavailable, with the
    reason, when the server cannot be reached or the database cannot be created.
    """
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        _pg_execute(admin_url, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        raise PostgresUnavailable(
            f"PostgreSQL not reachable at {admin_url} ({type(exc).__name__}: {exc})"
        ) from exc
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        try:
            _pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:
            print(f"could not drop PostgreSQL database {name}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def echo_server(workdir: Path) -> Iterator[tuple[str, Child]]:
    """The baseline: bench/_echo_app.py under uvicorn, one worker, the same loop/http stack."""
    port = free_port()
    argv = [
        str(VENV_BIN / "python"),
        "-m",
        "uvicorn",
        "_echo_app:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    child = Child("echo-baseline", argv, workdir / f"echo-{port}.log")
    child.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(child, f"{base}/healthz")
        yield base, child
    finally:
        child.stop()


# -- deliveries ----------------------------------------------------------------------------------
def realistic_wamid(rng: random.Random) -> str:
    """A wamid shaped like Meta's (base64 of a binary id), unique per call."""
    raw = b"\x15\x02\x00\x12\x18\x14" + uuid.UUID(int=rng.getrandbits(128)).bytes + b"\x00"
    return "wamid.HBgNNjI4" + base64.b64encode(raw).decode()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Wire:
    """One delivery as sent: the exact body bytes and the headers `sign()` produces."""

    event: str
    body: bytes
    headers: dict[str, str]


def _as_recorded(event: str, payload: dict[str, Any], secret: str, key: str) -> Wire:
    """Encode like the recorded Kapso deliveries in tests/fixtures (2-space indented JSON)."""
    body = json.dumps(payload, ensure_ascii=False, indent=2).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Event": event,
        "X-Webhook-Payload-Version": "v2",
        "X-Idempotency-Key": key,
        "X-Webhook-Signature": kapso_signature(secret, body),
    }
    return Wire(event, body, headers)


class DeliveryMix:
    """Unique signed deliveries over a pool of leads: mostly inbound, plus outbound lifecycles.

    Each step is either a fresh message (85 % inbound text from a random lead, 15 % an outbound
    "sent") or a status update that an earlier "sent" scheduled for itself: "delivered" 40-120
    deliveries later, "read" (for 3 in 4 messages) 120-600 later, so status updates almost always
    follow their message, as they do in real traffic. Resulting mix: ~67 % received, ~12 % sent,
    ~12 % delivered, ~9 % read. Every delivery has its own idempotency key; messages have their
    own wamid (status updates reuse their message's, as Kapso does).

    style "recorded" (default): the payloads of app.ingest.samples, completed with the fields the
    recorded fixtures carry (conversation.kapso summary, pricing, Meta-shaped wamids) and indented
    like tests/fixtures/webhooks/kapso/*.json: 1.2-1.8 KB. style "compact": exactly samples.sign().
    `stream` gives another sequence of deliveries over the same leads (e.g. for a warm-up).
    """

    def __init__(
        self,
        *,
        leads: int = 2000,
        seed: int = 1,
        style: str = "recorded",
        stream: int = 0,
        phone_number_id: str = PHONE_NUMBER_ID,
        secret: str = SECRET,
    ) -> None:
        lead_rng = random.Random(seed)
        self.leads = [SampleLead.random(lead_rng) for _ in range(leads)]
        self.rng = random.Random(f"{seed}/{stream}")
        self.style = style
        self.phone_number_id = phone_number_id
        self.secret = secret
        self._step = 0
        self._due: list[tuple[int, int, str, int, str, str]] = []  # heap of follow-ups

    def _key(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_wamid(self) -> str:
        if self.style == "compact":
            return "wamid." + uuid.UUID(int=self.rng.getrandbits(128)).hex.upper()
        return realistic_wamid(self.rng)

    def inbound(self, lead: SampleLead, text: str) -> Wire:
        payload = inbound_message(lead, self.phone_number_id, text)
        if self.style == "compact":
            d = sign("whatsapp.message.received", payload, self.secret, key=self._key())
            return Wire(d.event, d.body, d.headers)
        wamid = realistic_wamid(self.rng)
        payload["message"]["id"] = wamid
        at = datetime.now(UTC)
        payload["conversation"]["kapso"].update(
            messages_count=self.rng.randrange(1, 60),
            last_message_id=wamid,
            last_message_type="text",
            last_message_timestamp=_iso(at),
            last_message_text=text,
            last_inbound_at=_iso(at),
            last_outbound_at=None,
        )
        return _as_recorded("whatsapp.message.received", payload, self.secret, self._key())

    def outbound(self, lead: SampleLead, text: str, status: str, wamid: str) -> Wire:
        event = f"whatsapp.message.{status}"
        if self.style == "compact":
            payload = outbound_message(lead, self.phone_number_id, text, status=status, wamid=wamid)
            d = sign(event, payload, self.secret, key=self._key())
            return Wire(d.event, d.body, d.headers)
        payload = outbound_message(lead, self.phone_number_id, text, status=status, wamid=wamid)
        payload["message"]["kapso"]["statuses"][0]["pricing"] = {
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "service",
        }
        return _as_recorded(event, payload, self.secret, self._key())

    def next(self) -> Wire:
        step = self._step
        self._step += 1
        if self._due and self._due[0][0] <= step:
            _, _, status, lead_index, wamid, text = heapq.heappop(self._due)
            return self.outbound(self.leads[lead_index], text, status, wamid)
        lead_index = self.rng.randrange(len(self.leads))
        lead = self.leads[lead_index]
        if self.rng.random() < 0.15:
            text = self.rng.choice(OUTBOUND_TEXTS)
            wamid = self.new_wamid()
            delivered = step + self.rng.randint(40, 120)
            heapq.heappush(self._due, (delivered, step, "delivered", lead_index, wamid, text))
            if self.rng.random() < 0.75:
                read = step + self.rng.randint(120, 600)
                heapq.heappush(self._due, (read, step, "read", lead_index, wamid, text))
            return self.outbound(lead, text, "sent", wamid)
        return self.inbound(lead, self.rng.choice(INBOUND_TEXTS))


# -- statistics ----------------------------------------------------------------------------------
def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v == v]
    return statistics.median(clean) if clean else float("nan")


def fmt(x: float | None, digits: int = 0, *, grouping: bool = True) -> str:
    """A figure for a summary line: `digits` decimals, thousands separated; "n/a" for none/nan."""
    if x is None or x != x:
        return "n/a"
    return f"{x:,.{digits}f}" if grouping else f"{x:.{digits}f}"
