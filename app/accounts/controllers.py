"""Sign-in and sign-out pages."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template

from app.accounts.services import authenticate
from app.accounts.web import SESSION_USER, SESSION_WORKSPACE
from app.db import Database
from app.i18n import gettext_
from app.security import LoginThrottle

FormBody = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def safe_next(target: str | None) -> str:
    """Only local paths: an open redirect would make a phishing link out of our sign-in page."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(error: str | None, email: str, next_url: str, status: int = 200) -> Template:
    return Template(
        template_name="login.html",
        context={"error": error, "email": email, "next": next_url},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


class AuthController(Controller):
    path = "/"
    include_in_schema = False

    @get("/login")
    async def login_page(self, request: Request, next: FromQuery[str | None] = None) -> Template:
        return _login_page(None, "", safe_next(next))

    @post("/login", status_code=200)
    async def login(
        self,
        request: Request,
        data: FormBody,
        db: NamedDependency[Database],
        throttle: NamedDependency[LoginThrottle],
    ) -> Response[Any] | Template:
        email = (data.get("email") or "").strip()
        password = data.get("password") or ""
        next_url = safe_next(data.get("next"))
        ip = request.client.host if request.client else "unknown"
        wait = await throttle.retry_after(email, ip)
        if wait:
            page = _login_page(
                gettext_("Too many attempts. Try again in %(n)s min.", n=max(1, wait // 60)),
                email,
                next_url,
                429,
            )
            page.headers["Retry-After"] = str(wait)
            return page
        async with db.session() as session:
            user = await authenticate(session, email, password)
        if user is None:
            await throttle.failed(email, ip)
            return _login_page(gettext_("Wrong email or password."), email, next_url, 401)
        await throttle.succeeded(email)
        # A new session id on sign-in: a session fixed before sign-in is worthless.
        request.clear_session()
        request.set_session({SESSION_USER: user.id})
        return Redirect(next_url, status_code=303)

    @post("/logout", status_code=303)
    async def logout(self, request: Request) -> Redirect:
        request.clear_session()
        return Redirect("/login", status_code=303)

    @get("/switch/{slug:str}")
    async def switch(self, request: Request, slug: FromPath[str]) -> Redirect:
        """Kept for links; the board's ?ws= does the check and remembers the choice."""
        request.set_session({**(request.session or {}), SESSION_WORKSPACE: None})
        return Redirect(f"/?ws={slug}")
