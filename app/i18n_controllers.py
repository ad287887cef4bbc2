"""The language switch: remember the choice in a cookie and go back where the person was."""

from __future__ import annotations

from litestar import Request, get
from litestar.datastructures import Cookie
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect

from app.i18n import COOKIE, LANGUAGES
from app.web import back_to


@get("/lang/{code:str}", include_in_schema=False)
async def switch_language(request: Request, code: FromPath[str]) -> Redirect:
    if code not in LANGUAGES:
        raise NotFoundException(f"no language {code!r}")
    return Redirect(
        back_to(request, "/"),
        cookies=[
            Cookie(key=COOKIE, value=code, max_age=365 * 86400, samesite="lax", httponly=True)
        ],
    )
