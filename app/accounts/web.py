"""Who is asking: the signed-in user, the workspace they are looking at, and the answers for
anyone who is not signed in (a redirect to /login for pages, 401 for the rest)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import quote

from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.response import Redirect

from app.accounts.models import User
from app.accounts.services import WorkspaceAccess
from app.accounts.viewers import viewer_cache
from app.auth import KeyDirectory, bearer_key
from app.db import Database
from app.workspaces.models import Workspace

SESSION_USER = "uid"
SESSION_WORKSPACE = "ws"


class SignInRequired(NotAuthorizedException):
    """Raised by page dependencies; answered with a redirect to /login for browsers."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in user and the workspace in view, with their role there."""

    user: User
    access: WorkspaceAccess
    workspaces: list[WorkspaceAccess]

    @property
    def workspace(self) -> Workspace:
        return self.access.workspace

    @property
    def workspace_id(self) -> int:
        assert self.access.workspace.id is not None
        return self.access.workspace.id

    @property
    def user_id(self) -> int:
        assert self.user.id is not None
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return self.access.is_admin


async def _user(request: Request, db: Database) -> User | None:
    uid = request.session.get(SESSION_USER) if request.session else None
    if not isinstance(uid, int):
        return None
    async with db.session() as session:
        return await session.get(User, uid)


async def provide_viewer(request: Request, db: NamedDependency[Database]) -> Viewer:
    """Pages and the event stream: a signed-in member of the workspace in view.

    `?ws=<slug>` switches workspace; a workspace the user does not belong to is a 404, the same
    answer as one that does not exist.
    """
    uid = request.session.get(SESSION_USER) if request.session else None
    if not isinstance(uid, int):
        raise SignInRequired("sign in first")
    viewers = viewer_cache(db)
    user, accesses = await viewers.get(db, uid)
    wanted = request.query_params.get("ws")
    if user is not None and (
        not accesses or (wanted and all(a.workspace.slug != wanted for a in accesses))
    ):
        user, accesses = await viewers.get(db, uid, fresh=True)  # added since it was cached?
    if user is None or user.id is None:
        raise SignInRequired("sign in first")
    if not accesses:
        raise PermissionDeniedException("your account has no workspace yet; ask an admin")
    current = request.session.get(SESSION_WORKSPACE)
    chosen: WorkspaceAccess | None = None
    if wanted:
        chosen = next((a for a in accesses if a.workspace.slug == wanted), None)
        if chosen is None:
            raise NotFoundException(f"no workspace {wanted!r}")
    else:
        chosen = next((a for a in accesses if a.workspace.id == current), accesses[0])
    if chosen.workspace.id != current:
        request.set_session({**request.session, SESSION_WORKSPACE: chosen.workspace.id})
    return Viewer(user=user, access=chosen, workspaces=accesses)


async def provide_admin(viewer: NamedDependency[Viewer]) -> Viewer:
    if not viewer.is_admin:
        raise PermissionDeniedException("only a workspace admin can do that")
    return viewer


def _csrf_matches(request: Request) -> bool:
    cookie = request.cookies.get("csrftoken", "")
    header = request.headers.get("x-csrftoken", "")
    return bool(cookie) and hmac.compare_digest(cookie, header)


async def provide_api_workspace(
    request: Request, db: NamedDependency[Database], keys: NamedDependency[KeyDirectory]
) -> Workspace:
    """The JSON API: a workspace key (`Authorization: Bearer ...`), or a signed-in user's session
    (then unsafe methods must carry the CSRF header)."""
    header = request.headers.get("authorization", "")
    if header:
        key = bearer_key(header)
        workspace = await keys.workspace_for(key, api_tokens=True) if key else None
        if workspace is None:
            raise NotAuthorizedException("unknown key")
        return workspace
    user = await _user(request, db)
    if user is None:
        raise NotAuthorizedException("send Authorization: Bearer <workspace key>, or sign in")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not _csrf_matches(request):
        raise PermissionDeniedException("missing or wrong X-CSRFToken header")
    viewer = await provide_viewer(request, db)
    return viewer.workspace


def sign_in_redirect(request: Request, exc: NotAuthorizedException) -> Response:
    """Browsers go to the sign-in page (htmx is told to navigate there); machines get 401."""
    path = request.url.path
    wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
    if request.headers.get("hx-request"):
        return Response("", status_code=401, headers={"HX-Redirect": "/login"})
    if isinstance(exc, SignInRequired) and wants_page and not path.startswith(("/api", "/events")):
        query = f"?{request.url.query}" if request.url.query else ""
        return Redirect(f"/login?next={quote(path + query, safe='')}")
    return Response({"error": exc.detail}, status_code=401)
