"""create_app(): wiring only. Settings -> database, broker, renderer -> routes."""

from __future__ import annotations

import logging
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
from litestar.stores.file import FileStore
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.template import TemplateConfig

from app.accounts.controllers import AuthController
from app.accounts.web import provide_admin, provide_viewer, sign_in_redirect
from app.api.controllers import ApiController
from app.auth import KeyDirectory
from app.broker import Broker, create_broker
from app.db import Database
from app.heap import settle
from app.i18n import language_middleware
from app.i18n_controllers import switch_language
from app.ingest.controllers import webhook_endpoints
from app.ingest.services import IngestService, WorkspaceDirectory
from app.leads.cache import BoardCache
from app.leads.controllers import BoardController, LeadController
from app.live import LiveRenderer
from app.reconcile.controllers import SyncApiController, SyncController
from app.reconcile.scheduler import InProcessScheduler
from app.sarah.controllers import sarah_endpoints
from app.sarah.services import SarahService
from app.security import (
    LoginThrottle,
    RateLimiter,
    rate_limit_middleware,
    security_headers_middleware,
)
from app.sessions import QuietSessionStore
from app.settings import PROJECT_ROOT, Settings, get_settings
from app.stream import events_stream
from app.templating import create_environment
from app.workspaces.controllers import SettingsController

log = logging.getLogger("app")
STATIC_DIR = Path(__file__).parent / "static"


@get("/healthz", media_type=MediaType.JSON, include_in_schema=False)
async def healthz(broker: NamedDependency[Broker]) -> dict[str, object]:
    return {"ok": True, "broker": type(broker).__name__, "broker_healthy": broker.healthy}


def _internal_error(request: Request, exc: Exception) -> Response[dict[str, object]]:
    """Log the trace; the client gets a plain message, never a stack trace."""
    if isinstance(exc, HTTPException):
        return Response({"error": exc.detail}, status_code=exc.status_code)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response({"error": "internal error"}, status_code=HTTP_500_INTERNAL_SERVER_ERROR)


# Paths that never carry a browser session: no session lookup, no CSRF (they have signatures/keys).
MACHINE_PATHS = ["^/webhooks/", "^/webhook/", "^/sarah/", "^/static/", "^/healthz"]


def _stores(settings: Settings) -> dict[str, Store]:
    """Sessions and throttles in Redis when set (shared by every process), else on this machine."""
    if settings.redis_url:
        url, prefix = settings.redis_url, settings.redis_namespace
        return {
            "sessions": QuietSessionStore(
                RedisStore.with_client(url=url, namespace=f"{prefix}:sessions")
            ),
            "throttle": RedisStore.with_client(url=url, namespace=f"{prefix}:throttle"),
        }
    sessions = PROJECT_ROOT / "var" / "sessions"
    # FileStore makes only the last directory: a fresh checkout serving a database kept elsewhere
    # (DATABASE_URL) has no var/ yet, and every sign-in would fail.
    sessions.mkdir(parents=True, exist_ok=True)
    return {
        "sessions": QuietSessionStore(FileStore(path=sessions)),
        "throttle": MemoryStore(),
    }


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    env = create_environment()
    db = Database(settings.database_url)
    broker = create_broker(settings.redis_url)
    directory = WorkspaceDirectory(db)
    ingest = IngestService(db, broker, directory)
    cache = BoardCache(db)
    renderer = LiveRenderer(db, env, cache)
    keys = KeyDirectory(db)
    sarah = SarahService(db, broker)
    stores = _stores(settings)
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

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        await broker.start()
        # No Redis, no arq worker: this process runs the background jobs itself.
        scheduler = None if settings.redis_url else InProcessScheduler(db, broker, settings)
        if scheduler is not None:
            await scheduler.start()
        if settings.freeze_heap:
            frozen = settle(env)
            log.debug("start-up heap frozen: %s objects", frozen)
        try:
            yield
        finally:
            if scheduler is not None:
                await scheduler.stop()
            await broker.stop()
            await limiter.close()
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
            "cache": provide(cache),
            "keys": provide(keys),
            "sarah": provide(sarah),
            "throttle": provide(throttle),
            "viewer": Provide(provide_viewer),
            "admin": Provide(provide_admin),
        },
        stores=stores,
        middleware=[
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
    return app
