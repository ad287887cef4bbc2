"""Board views the server keeps current: decided once per process and view, not per browser.

A browser on the plain board (first page, by last activity, no filter) places a live row itself:
a changed lead goes to the top. Anywhere else a change can make a lead enter, move within or leave
the view (a filter it no longer matches, a score that moved it, a pipeline column), which the
browser cannot tell from the row alone; it used to re-fetch its whole fragment, so N browsers made
N board reads per burst. Now the process reads each such view once per burst (at most every
`Fanout.view_seconds`) for all its browsers, and sends:

- a table view: the ordered lead ids of its first page, the rows of the leads that entered it or
  changed, and the next page's link (`view` event, JSON). The browser removes, moves and inserts
  rows to match, keeping the rows it has (their selection, a menu open in them);
- the pipeline: its columns rendered once per language (cards carry no form token: the page
  fills in its own, so no browser is ever sent another's);
- a lead's page, when that lead changed: its live part, once per person and language (the
  browser keeps a form someone is typing in or has open, and swaps the rest).

Later pages (a cursor) get rows updated in place only: their boundaries move with every change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment
from sqlalchemy import Connection
from sse_starlette import ServerSentEvent

from app.db import Database
from app.i18n import language
from app.leads.board import BoardQuery, board_rows, pipeline_columns
from app.leads.cache import BoardCache
from app.leads.queries import LeadRow, lead_details, lead_row
from app.leads.timeline import timeline
from app.templating import row_html


@dataclass(frozen=True, slots=True)
class LiveView:
    key: str  # what the browser's stream names it by, and what groups its browsers
    query: BoardQuery
    user_id: int | None  # for "owner: me" and the lead page, which depend on who looks
    lead_id: int | None = None  # a lead's page: its live part, when that lead changed


@dataclass(frozen=True, slots=True)
class Looker:
    """Who looks at a lead's page, as far as its template asks (the Claim button)."""

    user_id: int | None


def lead_view(lead_id: int, user_id: int | None) -> LiveView:
    return LiveView(
        key=f"lead:{lead_id}#u{user_id}", query=BoardQuery(), user_id=user_id, lead_id=lead_id
    )


def live_view_key(query: BoardQuery) -> str | None:
    """The key of a view the server keeps current, or None where the browser places rows itself
    (the plain first page) or where only rows in place change (later pages)."""
    if query.cursor:
        return None
    if query.view == "table" and query.sort == "activity" and not query.is_filtered:
        return None
    return urlencode(query.params())


def live_view(raw: str | None, user_id: int | None, default_size: int) -> LiveView | None:
    """The view a stream asked for (`?view=` holds the board's query string)."""
    if not raw:
        return None
    query = BoardQuery.from_params(dict(parse_qsl(raw[:2000])), default_size)
    key = live_view_key(query)
    if key is None:
        return None
    mine = query.owner == "me"
    return LiveView(key=key + (f"#u{user_id}" if mine else ""), query=query, user_id=user_id)


def view_event(payload: Mapping[str, Any]) -> bytes:
    return ServerSentEvent(data=json.dumps(payload, separators=(",", ":")), event="view").encode()


class ViewRenderer:
    def __init__(self, db: Database, env: Environment, cache: BoardCache) -> None:
        self._db = db
        self._env = env
        self._cache = cache

    async def read(self, workspace_id: int, view: LiveView) -> Any:
        """The view's first page (or pipeline columns), read once for all its browsers."""
        if view.lead_id is not None:
            return await self._read_lead(workspace_id, view.lead_id)
        facets = await self._cache.facets(workspace_id)
        query, user_id = view.query, view.user_id
        if query.view == "pipeline":
            return await self._db.read(
                lambda c: pipeline_columns(c, workspace_id, query, user_id, facets=facets)
            )
        return await self._db.read(lambda c: _first_page(c, workspace_id, query, user_id, facets))

    async def _read_lead(self, workspace_id: int, lead_id: int) -> Any:
        def read(conn: Connection) -> Any:
            lead = lead_row(conn, workspace_id, lead_id)
            if lead is None:  # gone, or another workspace's id: nothing to send
                return None
            return (
                lead,
                lead_details(conn, workspace_id, lead_id),
                timeline(conn, workspace_id, lead_id),
            )

        found = await self._db.read(read)
        return None if found is None else (*found, await self._cache.members(workspace_id))

    def render(
        self,
        view: LiveView,
        data: Any,
        *,
        lang: str,
        tz: str,
        changed: set[int],
        previous: list[int] | None,
    ) -> tuple[bytes, list[int]]:
        """The `view` event for browsers of one language, and the ids now in view."""
        with language(lang):
            if view.lead_id is not None:
                lead, details, items, members = data
                html = self._env.get_template("partials/_lead_live.html").render(
                    lead=lead,
                    details=details,
                    timeline=items,
                    members=members,
                    tz=tz,
                    csrf_token="",
                    viewer=Looker(view.user_id),
                )
                return view_event({"view": view.key, "lead": view.lead_id, "html": html}), []
            if view.query.view == "pipeline":
                html = self._env.get_template("partials/_pipeline.html").render(
                    columns=data, tz=tz, csrf_token=""
                )
                ids = [lead.id for column in data for lead in column.cards]
                return view_event({"view": view.key, "pipeline": html}), ids
            rows, next_url = data
            known = set(previous) if previous is not None else set()
            fresh = [lead for lead in rows if lead.id in changed or lead.id not in known]
            payload = {
                "view": view.key,
                "ids": [lead.id for lead in rows],
                "rows": "".join(str(row_html(self._env, lead, tz)) for lead in fresh),
                "next": next_url,
            }
            return view_event(payload), [lead.id for lead in rows]


def _first_page(
    conn: Connection, workspace_id: int, query: BoardQuery, user_id: int | None, facets: Any
) -> tuple[list[LeadRow], str | None]:
    page = board_rows(conn, workspace_id, query, user_id, facets)
    next_url = query.url(cursor=page.next_cursor) if page.next_cursor else None
    return page.rows, next_url
