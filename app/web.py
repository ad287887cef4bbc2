"""What every page's template gets: the viewer, the CSRF token for htmx, the request path."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.response import Template
from litestar.utils.scope.state import ScopeState

from app.accounts.web import Viewer


def back_to(request: Request, fallback: str) -> str:
    """Where a form posted without JavaScript returns: the page it came from, if it is ours."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc == request.headers.get("host") and referer.path:
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return fallback


def csrf_token(request: Request) -> str:
    token = ScopeState.from_scope(request.scope).csrf_token
    return token if isinstance(token, str) else ""


def page(
    template_name: str,
    request: Request,
    viewer: Viewer | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """A full page, or only its fragment for htmx (the template decides from `htmx`)."""
    context.update(
        viewer=viewer,
        csrf_token=csrf_token(request),
        htmx=bool(request.headers.get("hx-request")),
        tz=viewer.workspace.timezone if viewer else "Asia/Jakarta",
    )
    return Template(
        template_name=template_name,
        context=context,
        status_code=status_code,
        headers={"Vary": "HX-Request", "Cache-Control": "no-store"},
    )
