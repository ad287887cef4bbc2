"""Settings from the environment; every default makes `make run` work on a bare machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _env_flag(name: str, default: bool) -> bool:
    """Unset or empty: the default; otherwise on, unless it says 0, false or no."""
    raw = os.environ.get(name)
    return default if raw in (None, "") else raw not in ("0", "false", "no")


def _env_optional_flag(name: str) -> bool | None:
    """Unset or empty: None (the caller decides); otherwise as _env_flag."""
    raw = os.environ.get(name)
    return None if raw in (None, "") else raw not in ("0", "false", "no")


# Published in the source: app/deploy.py refuses it on a server reachable beyond loopback.
DEV_SECRET_KEY = "dev-insecure-secret-change-me"


def _default_database_url() -> str:
    return f"sqlite+aiosqlite:///{PROJECT_ROOT / 'var' / 'leadboard.db'}"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    redis_url: str | None = None  # unset: the in-process broker
    redis_namespace: str = "leadboard"  # prefix of the throttle and rate-limit keys
    secret_key: str = DEV_SECRET_KEY
    public_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = 1_048_576  # Kapso batches stay far below 1 MiB
    sse_ping_seconds: float = 15.0
    sse_replay_limit: int = 500  # more missed events than this: the client reloads instead
    board_page_size: int = 50
    event_log_keep: int = 100_000  # change events kept for replay
    reconcile_interval_minutes: int = 60  # how often reconciliation runs (worker or in-process)
    # Create the demo workspace on first start; None (unset): only on loopback (app/deploy.py).
    demo_workspace: bool | None = None
    log_level: str = "INFO"
    rate_limit_webhooks_per_minute: int = 120_000  # per client address; Kapso sends in bursts
    rate_limit_login_per_minute: int = 30
    session_max_age_days: int = 14
    # After start-up, compile every template and move the heap out of the garbage collector's
    # sight (gc.freeze): a full collection of it takes ~100 ms on a small machine, a stall that
    # otherwise hits a request every few dozen. Off for processes that build many apps (tests).
    freeze_heap: bool = True

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls) -> Settings:
        d = cls()
        return cls(
            database_url=os.environ.get("DATABASE_URL") or _default_database_url(),
            redis_url=os.environ.get("REDIS_URL") or None,
            redis_namespace=os.environ.get("REDIS_NAMESPACE") or d.redis_namespace,
            secret_key=os.environ.get("SECRET_KEY") or d.secret_key,
            public_url=(os.environ.get("PUBLIC_URL") or d.public_url).rstrip("/"),
            max_body_bytes=_env_int("MAX_BODY_BYTES", d.max_body_bytes),
            sse_ping_seconds=_env_float("SSE_PING_SECONDS", d.sse_ping_seconds),
            sse_replay_limit=_env_int("SSE_REPLAY_LIMIT", d.sse_replay_limit),
            board_page_size=_env_int("BOARD_PAGE_SIZE", d.board_page_size),
            event_log_keep=_env_int("EVENT_LOG_KEEP", d.event_log_keep),
            reconcile_interval_minutes=_env_int(
                "RECONCILE_INTERVAL_MINUTES", d.reconcile_interval_minutes
            ),
            demo_workspace=_env_optional_flag("DEMO_WORKSPACE"),
            log_level=os.environ.get("LOG_LEVEL", d.log_level).upper(),
            rate_limit_webhooks_per_minute=_env_int(
                "RATE_LIMIT_WEBHOOKS_PER_MINUTE", d.rate_limit_webhooks_per_minute
            ),
            rate_limit_login_per_minute=_env_int(
                "RATE_LIMIT_LOGIN_PER_MINUTE", d.rate_limit_login_per_minute
            ),
            session_max_age_days=_env_int("SESSION_MAX_AGE_DAYS", d.session_max_age_days),
            freeze_heap=_env_flag("FREEZE_HEAP", d.freeze_heap),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
