"""The Jinja environment shared by page responses and the live stream (one row, one template)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from markupsafe import Markup

from app.i18n import LANGUAGE_NAMES, current_language, gettext_, ngettext_, translations
from app.leads.changes import LEAD_STATUSES

TEMPLATE_DIR = Path(__file__).parent / "templates"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """A short relative time; the browser keeps it ticking from the element's datetime."""
    if moment is None:
        return ""
    now = now or datetime.now(UTC)
    seconds = int((now - moment).total_seconds())
    if seconds < 45:
        return gettext_("just now")
    minutes = round(seconds / 60)
    if minutes < 60:
        return gettext_("%(n)s min ago", n=minutes)
    hours = round(seconds / 3600)
    if hours < 24:
        return gettext_("%(n)s h ago", n=hours)
    days = round(seconds / 86400)
    if days < 30:
        return gettext_("%(n)s d ago", n=days)
    return moment.strftime("%d %b %Y")


@pass_context  # never folded at compile time: the result depends on the request's language
def number(_ctx: object, value: int | float | None) -> str:
    """Thousands separated the way the reader expects (1,234 in English, 1.234 in Indonesian)."""
    if value is None:
        return "—"
    text = f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"
    if current_language.get() == "id":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


# Pure, and a board shows the same leads' times on every refresh: remembered per process.
@lru_cache(maxsize=8192)
def localtime(moment: datetime | None, tz: str = "Asia/Jakarta") -> str:
    if moment is None:
        return ""
    local = moment.astimezone(ZoneInfo(tz))
    return local.strftime("%d %b %Y %H:%M ") + (local.tzname() or "")


@lru_cache(maxsize=16384)
def isoformat(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else ""


@lru_cache(maxsize=4096)
def _translated(language: str, message: str) -> Markup:
    text = translations(language).gettext(message)
    if text != message:
        return Markup(text) % {}  # the catalogue's text is ours: trusted, as Jinja trusts it
    # No catalogue entry: English, or a value from the database shown through _(value) (a
    # delivery status a provider sent, say). That is text, never markup.
    return Markup.escape(message.replace("%%", "%"))


def template_gettext(message: str, **variables: object) -> Markup:
    """`_()` in templates: what Jinja's newstyle gettext returns (the translation trusted, the
    variables escaped into it), with each language's translation of a message made once per
    process instead of on every call (a board page calls `_` hundreds of times)."""
    if variables:
        return Markup(translations(current_language.get()).gettext(message)) % variables
    return _translated(current_language.get(), message)


@lru_cache(maxsize=32)
def _status_options(language: str, current: str) -> Markup:
    options = []
    for status in LEAD_STATUSES:
        label = _translated(language, status).capitalize()
        selected = " selected" if status == current else ""
        options.append(Markup('<option value="{}"{}>{}</option>').format(status, selected, label))
    return Markup("").join(options)


def status_options(current: str) -> Markup:
    """The <option>s of a status <select>, the lead's own selected. A pipeline shows 125 cards
    with one each: made once per language and status instead of five translations per card."""
    return _status_options(current_language.get(), current)


def create_environment(*, auto_reload: bool = False) -> Environment:
    """auto_reload: look for edited templates on every render (`leadboard serve --reload`); off,
    a page that includes a partial per row does not stat the file for each row."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        enable_async=False,
        extensions=["jinja2.ext.i18n"],
        auto_reload=auto_reload,
    )
    env.install_gettext_callables(gettext_, ngettext_, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(_=template_gettext, gettext=template_gettext, status_options=status_options)
    env.filters.update(ago=ago, localtime=localtime, isoformat=isoformat, number=number)
    env.globals.update(
        current_language=lambda: current_language.get(), LANGUAGE_NAMES=LANGUAGE_NAMES
    )
    return env
