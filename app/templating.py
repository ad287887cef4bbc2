"""The Jinja environment shared by page responses and the live stream (one row, one template)."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, Template, pass_context, select_autoescape
from markupsafe import Markup

from app.i18n import LANGUAGE_NAMES, current_language, gettext_, ngettext_, translations
from app.leads.changes import LEAD_STATUSES
from app.translated_templates import (
    LiteralTranslations,
    TranslatedEnvironment,
    TranslatedLoader,
    translated,
)

if TYPE_CHECKING:
    from app.leads.queries import LeadRow

TEMPLATE_DIR = Path(__file__).parent / "templates"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """A short relative time; the browser keeps it ticking from the element's datetime. `now`:
    the moment to count to (a template without one gets the current time)."""
    if moment is None:
        return ""
    if not isinstance(now, datetime):  # None, or Jinja's Undefined for a context without `now`
        now = datetime.now(UTC)
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


def template_gettext(message: str, **variables: object) -> Markup:
    """`_()` in templates: what Jinja's newstyle gettext returns (the translation trusted, the
    variables escaped into it), with each language's translation of a message made once per
    process instead of on every call (a board page calls `_` hundreds of times)."""
    if variables:
        return Markup(translations(current_language.get()).gettext(message)) % variables
    return translated(current_language.get(), message)


@lru_cache(maxsize=32)
def _status_options(language: str, current: str) -> Markup:
    options = []
    for status in LEAD_STATUSES:
        label = translated(language, status).capitalize()
        selected = " selected" if status == current else ""
        options.append(Markup('<option value="{}"{}>{}</option>').format(status, selected, label))
    return Markup("").join(options)


def status_options(current: str) -> Markup:
    """The <option>s of a status <select>, the lead's own selected. A pipeline shows 125 cards
    with one each: made once per language and status instead of five translations per card."""
    return _status_options(current_language.get(), current)


class LeadPartial:
    """A lead's partial (the board's row, the pipeline's card) rendered once per state of the
    lead, and served from memory after that, like Rails' cached collections.

    A board is fetched again after every live event, by every open browser, and nearly all of
    its rows are the same as last time; rendering them is most of what a board request costs.
    The HTML of a lead's partial follows from the key alone: the lead's values (a frozen
    LeadRow, compared whole), the time zone, the language, the relative times as of now ("3 min
    ago"), and any extra values given. The template is rendered with nothing but those in its
    context, so it cannot depend on anything the key leaves out.
    """

    def __init__(self, env: Environment, template: str, *, maxsize: int = 4096) -> None:
        self._env = env
        self._template = template
        self._maxsize = maxsize
        self._html: OrderedDict[tuple[Any, ...], Markup] = OrderedDict()
        self._flat_globals: dict[str, Any] | None = None

    def _globals(self, template: Template) -> dict[str, Any]:
        if self._flat_globals is None:  # taken once: the environment's globals are set up by now
            self._flat_globals = dict(template.globals)
        return self._flat_globals

    def __call__(self, lead: LeadRow, tz: str, now: datetime | None = None, **extra: Any) -> Markup:
        now = now or datetime.now(UTC)
        key = (
            lead,
            tz,
            current_language.get(),  # what _() translates to
            ago(lead.last_activity_at, now),
            ago(lead.hot_since, now),
            *extra.items(),
        )
        html = self._html.get(key)
        if html is not None:
            self._html.move_to_end(key)
            return html
        template = self._env.get_template(self._template)
        # What Template.render does, minus merging the globals into a fresh dict per row (they
        # are a ChainMap there, read key by key): the row's context is a flat dict.
        context = template.new_context(
            {**self._globals(template), **extra, "lead": lead, "tz": tz, "now": now}, shared=True
        )
        html = Markup(self._env.concat(template.root_render_func(context)))
        if self._maxsize:
            self._html[key] = html
            if len(self._html) > self._maxsize:
                self._html.popitem(last=False)
        return html

    def __len__(self) -> int:
        return len(self._html)


def create_environment(*, auto_reload: bool = False) -> Environment:
    """auto_reload: look for edited templates on every render (`leadboard serve --reload`); off,
    a page that includes a partial per row does not stat the file for each row."""
    env = TranslatedEnvironment(
        loader=TranslatedLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        enable_async=False,
        extensions=["jinja2.ext.i18n", LiteralTranslations],
        auto_reload=auto_reload,
    )
    env.install_gettext_callables(gettext_, ngettext_, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(_=template_gettext, gettext=template_gettext, status_options=status_options)
    # Edited templates show at once under `serve --reload`: nothing kept there.
    keep = 0 if auto_reload else 4096
    env.globals.update(
        row_html=LeadPartial(env, "partials/_row.html", maxsize=keep),
        card_html=LeadPartial(env, "partials/_card.html", maxsize=keep),
    )
    env.filters.update(ago=ago, localtime=localtime, isoformat=isoformat, number=number)
    env.globals.update(
        current_language=lambda: current_language.get(), LANGUAGE_NAMES=LANGUAGE_NAMES
    )
    return env


def row_html(env: Environment, lead: LeadRow, tz: str) -> Markup:
    """The board's row for a lead: what the page shows and what a live event swaps in."""
    partial: LeadPartial = env.globals["row_html"]  # type: ignore[assignment]
    return partial(lead, tz)
