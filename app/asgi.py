"""create_app(): wiring only. Settings -> database, broker, renderer -> routes."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar, MediaType, Request, Response, get
from litestar.config.csrf import CSRFConfig
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.logging import LoggingConfig
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.template import TemplateConfig
from redis.asyncio import Redis

from app.accounts.controllers import AuthController
from app.accounts.web import provide_admin, provide_viewer, sign_in_redirect
from app.api.controllers import ApiController
from app.auth import KeyDirectory
from app.db import Database
from app.heap import HeapKeeper, settle_soon
from app.i18n import language_middleware
from app.i18n_controllers import switch_language
from app.ingest.controllers import webhook_endpoints
from app.ingest.services import IngestService, WorkspaceDirectory
from app.leads.cache import BoardCache
from app.leads.controllers import BoardController, LeadController
from app.live.broker import Broker
from app.live.pipeline import LivePipeline
from app.live.stream import events_stream, raw_send_middleware
from app.reconcile.controllers import SyncApiController, SyncController
from app.reconcile.scheduler import InProcessScheduler
from app.sarah.controllers import sarah_endpoints
from app.sarah.services import SarahService
from app.security import (
    FallbackStore,
    LoginThrottle,
    RateLimiter,
    rate_limit_middleware,
    security_headers_middleware,
)
from app.sessions import DatabaseSessionStore, QuietSessionStore
from app.settings import Settings, get_settings
from app.templating import create_environment
from app.workspaces.controllers import SettingsController

log = logging.getLogger("app")
STATIC_DIR = Path(__file__).parent / "static"


@get("/healthz", media_type=MediaType.JSON, include_in_schema=False)
async def healthz(request: Request, broker: NamedDependency[Broker]) -> dict[str, object]:
    # pid and scheduler: which of several processes (`serve --workers N`) answered, and whether
    # it runs the in-process schedule ("runs"), stands by ("standby"), or the arq worker has the
    # jobs ("worker": REDIS_URL is set).
    scheduler: InProcessScheduler | None = getattr(request.app.state, "scheduler", None)
    return {
        "ok": True,
        "broker": type(broker).__name__,
        "broker_healthy": broker.healthy,
        "pid": os.getpid(),
        "scheduler": scheduler.state if scheduler is not None else "worker",
    }


def _internal_error(request: Request, exc: Exception) -> Response[dict[str, object]]:
    """Log the trace; the client gets a plain message, never a stack trace."""
    if isinstance(exc, HTTPException):
        return Response({"error": exc.detail}, status_code=exc.status_code)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response({"error": "internal error"}, status_code=HTTP_500_INTERNAL_SERVER_ERROR)


# Paths that never carry a browser session: no session lookup, no CSRF (they have signatures/keys).
MACHINE_PATHS = ["^/webhooks/", "^/webhook/", "^/sarah/", "^/static/", "^/healthz"]


def _stores(settings: Settings, db: Database) -> dict[str, Store]:
    """Sessions in the database on every configuration, so a Redis that is down signs nobody out
    and fails no page. The sign-in throttle in Redis when set (shared by every process), falling
    back to this process's memory while Redis is down; in memory without Redis."""
    throttle: Store = MemoryStore()
    if settings.redis_url:
        # Short timeouts: an unreachable Redis must cost a sign-in a second at most, not the
        # operating system's connect timeout.
        client = Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
        throttle = FallbackStore(
            RedisStore(
                client,
                namespace=f"{settings.redis_namespace}:throttle",
                handle_client_shutdown=True,
            ),
            name="sign-in throttle",
        )
    return {"sessions": QuietSessionStore(DatabaseSessionStore(db)), "throttle": throttle}


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    env = create_environment()
    db = Database(settings.database_url)
    cache = BoardCache(db)
    live = LivePipeline(
        db, env, cache, redis_url=settings.redis_url, ping_seconds=settings.sse_ping_seconds
    )
    broker, renderer = live.broker, live.renderer
    directory = WorkspaceDirectory(db)
    ingest = IngestService(db, broker, directory)
    keys = KeyDirectory(db)
    sarah = SarahService(db, broker)
    stores = _stores(settings, db)
    throttle = LoginThrottle(stores["throttle"])
    limiter = RateLimiter(
        [
            ("/webhooks/", settings.rate_limit_webhooks_per_minute),
            ("/webhook/", settings.rate_limit_webhooks_per_minute),
            ("/sarah/", settings.rate_limit_webhooks_per_minute),
            ("/login", settings.rate_limit_login_per_minute),
        ],
        redis_url=settings.redis_url,
        namespace=settings.redis_namespace,
    )
    secure_cookies = settings.public_url.startswith("https://")
    # No Redis, no arq worker: the app runs the background jobs itself, in one process of those
    # on this database (the others stand by: app/singleton.py).
    scheduler = None if settings.redis_url else InProcessScheduler(db, broker, settings)

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        await live.start()
        if scheduler is not None:
            await scheduler.start()
        settling = None
        if settings.freeze_heap:
            live.fanout.heap = HeapKeeper()
            settling = asyncio.get_running_loop().create_task(settle_soon(env))
        try:
            yield
        finally:
            if settling is not None and not settling.done():
                settling.cancel()
            if scheduler is not None:
                await scheduler.stop()
            await live.stop()
            await limiter.close()
            for store in stores.values():
                await store.__aexit__(None, None, None)
            await db.dispose()

    def provide(value: object) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    app = Litestar(
        route_handlers=[
            AuthController,
            BoardController,
            LeadController,
            SettingsController,
            switch_language,
            events_stream,
            *webhook_endpoints(ingest, directory, settings.max_body_bytes),
            *sarah_endpoints(sarah, keys, settings.max_body_bytes),
            ApiController,
            SyncController,
            SyncApiController,
            healthz,
            create_static_files_router(
                path="/static", directories=[STATIC_DIR], include_in_schema=False
            ),
        ],
        dependencies={
            "settings": provide(settings),
            "db": provide(db),
            "broker": provide(broker),
            "directory": provide(directory),
            "ingest": provide(ingest),
            "renderer": provide(renderer),
            "fanout": provide(live.fanout),
            "cache": provide(cache),
            "keys": provide(keys),
            "sarah": provide(sarah),
            "throttle": provide(throttle),
            "viewer": Provide(provide_viewer),
            "admin": Provide(provide_admin),
        },
        stores=stores,
        middleware=[
            raw_send_middleware,  # first: /events writes its body with the server's own send
            security_headers_middleware,
            language_middleware,
            rate_limit_middleware(limiter),
            ServerSideSessionConfig(
                store="sessions",
                key="lb_session",
                max_age=settings.session_max_age_days * 86400,
                samesite="lax",
                httponly=True,
                secure=secure_cookies,
                exclude=MACHINE_PATHS,
            ).middleware,
        ],
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_secure=secure_cookies,
            cookie_samesite="lax",
            exclude=[*MACHINE_PATHS, "^/api/"],  # /api checks the header itself for sessions
        ),
        template_config=TemplateConfig(instance=JinjaTemplateEngine.from_environment(env)),
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        exception_handlers={NotAuthorizedException: sign_in_redirect, Exception: _internal_error},
        logging_config=LoggingConfig(
            root={"level": settings.log_level, "handlers": ["queue_listener"]},
            log_exceptions="debug",
            disable_stack_trace={404, 401, 400, 413},
        ),
        debug=False,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.broker = broker
    app.state.live = live
    app.state.scheduler = scheduler
    return app
