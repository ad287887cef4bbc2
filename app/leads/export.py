"""CSV export of a board view, streamed: keyset batches, so 100,000 rows never sit in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from zoneinfo import ZoneInfo

from app.db import Database
from app.leads.board import BoardQuery, board_rows

HEADER = [
    "id",
    "name",
    "phone",
    "status",
    "temperature",
    "score",
    "phase",
    "business_type",
    "location",
    "pain_points",
    "owner",
    "needs_reply",
    "last_message",
    "last_activity",
    "created",
]
BATCH = 1000


def _cell(value: object) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: defuse them."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def csv_rows(
    db: Database, workspace_id: int, query: BoardQuery, user_id: int | None, tz: str
) -> AsyncIterator[str]:
    zone = ZoneInfo(tz)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # Excel opens UTF-8 (names with emoji) correctly with a BOM
    writer.writerow(HEADER)
    page_query = replace(query, size=BATCH, cursor="", view="table")
    while True:
        page = await db.read(
            partial(board_rows, workspace_id=workspace_id, query=page_query, user_id=user_id)
        )
        for row in page.rows:
            writer.writerow(
                [
                    _cell(v)
                    for v in (
                        row.id,
                        row.display_name,
                        row.phone_e164 or row.bsuid or "",  # E.164: what other tools import
                        row.status,
                        row.temperature or "",
                        "" if row.score is None else row.score,
                        row.phase or "",
                        row.business_type or "",
                        row.location or "",
                        "; ".join(row.pain_points),
                        row.owner_name or "",
                        "yes" if row.needs_reply else "",
                        row.preview,
                        row.last_activity_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                        row.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
                        if row.created_at
                        else "",
                    )
                ]
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if not page.next_cursor:
            break
        page_query = replace(page_query, cursor=page.next_cursor)
