"""Indonesian and English: gettext catalogues (Babel) used by Jinja's i18n extension.

The language is chosen per request (the `lang` cookie set by the switch, else the browser's
Accept-Language) and held in a context variable while templates render, so a page and a live
event rendered for an Indonesian board both come out in Indonesian.
"""

from __future__ import annotations

import contextlib
import gettext
import io
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from litestar.types import ASGIApp, Receive, Scope, Send

LANGUAGES = ("en", "id")
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "id": "Bahasa Indonesia"}
CATALOGUES = Path(__file__).parent / "translations"
COOKIE = "lang"

current_language: ContextVar[str] = ContextVar("current_language", default=DEFAULT_LANGUAGE)


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> gettext.NullTranslations:
    """Compiled in memory from the .po file: no build step, no binary in the repository."""
    po = CATALOGUES / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT_LANGUAGE or not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer)


def gettext_(message: str, **variables: object) -> str:
    text = translations(current_language.get()).gettext(message)
    return text % variables if variables else text


def ngettext_(singular: str, plural: str, n: int, **variables: object) -> str:
    text = translations(current_language.get()).ngettext(singular, plural, n)
    variables.setdefault("num", n)
    return text % variables


@contextlib.contextmanager
def language(code: str) -> Iterator[None]:
    token = current_language.set(code if code in LANGUAGES else DEFAULT_LANGUAGE)
    try:
        yield
    finally:
        current_language.reset(token)


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def _cookie(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == b"cookie":
            for item in value.decode("latin-1").split(";"):
                name, _, val = item.strip().partition("=")
                if name == COOKIE:
                    return val
    return None


def language_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        accept = next((v.decode("latin-1") for k, v in headers if k == b"accept-language"), None)
        code = choose_language(_cookie(headers), accept)
        scope.setdefault("state", {})["language"] = code
        with language(code):
            await app(scope, receive, send)

    return middleware


def N_(message: str) -> str:
    """Marks a string for extraction that templates translate at run time with _(value)."""
    return message


# Values stored in the database and shown through _(value): statuses, temperatures, delivery
# states, change sources and fields.
TRANSLATED_VALUES = (
    N_("new"),
    N_("qualified"),
    N_("contacted"),
    N_("converted"),
    N_("archived"),
    N_("hot"),
    N_("warm"),
    N_("lukewarm"),
    N_("cold"),
    N_("sent"),
    N_("delivered"),
    N_("read"),
    N_("failed"),
    N_("received"),
    N_("pending"),
    N_("bot"),
    N_("human"),
    N_("system"),
    N_("status"),
    N_("score"),
    N_("temperature"),
)
