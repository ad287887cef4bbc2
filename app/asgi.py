"""create_app(): wiring only. Settings -> database, broker, renderer -> routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar, MediaType, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.logging import LoggingConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.template import TemplateConfig

from app.api.controllers import ApiController
from app.auth import KeyDirectory
from app.broker import Broker, create_broker
from app.db import Database
from app.ingest.controllers import WebhookController
from app.ingest.services import IngestService, WorkspaceDirectory
from app.leads.controllers import board
from app.live import LiveRenderer
from app.sarah.controllers import SarahController
from app.sarah.services import SarahService
from app.settings import Settings, get_settings
from app.stream import events_stream
from app.templating import create_environment

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


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    env = create_environment()
    db = Database(settings.database_url)
    broker = create_broker(settings.redis_url)
    directory = WorkspaceDirectory(db)
    ingest = IngestService(db, broker, directory)
    renderer = LiveRenderer(db, env)
    keys = KeyDirectory(db)
    sarah = SarahService(db, broker)

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            await db.dispose()

    def provide(value: object) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    app = Litestar(
        route_handlers=[
            board,
            events_stream,
            WebhookController,
            SarahController,
            ApiController,
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
            "keys": provide(keys),
            "sarah": provide(sarah),
        },
        template_config=TemplateConfig(instance=JinjaTemplateEngine.from_environment(env)),
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        exception_handlers={Exception: _internal_error},
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
