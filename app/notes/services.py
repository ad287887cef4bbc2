"""Notes on a lead's timeline."""

from __future__ import annotations

from sqlalchemy import Connection, insert

from app.db import utcnow
from app.notes.models import Note

notes = Note.__table__  # type: ignore[attr-defined]
MAX_NOTE_CHARS = 5000


class NoteError(ValueError):
    pass


def add_note(
    conn: Connection,
    workspace_id: int,
    contact_id: int,
    body: str,
    *,
    author_name: str,
    author_kind: str = "user",
    user_id: int | None = None,
    kind: str = "note",
) -> int:
    text = (body or "").strip()
    if not text:
        raise NoteError("a note needs some text")
    if len(text) > MAX_NOTE_CHARS:
        raise NoteError(f"a note holds at most {MAX_NOTE_CHARS} characters")
    result = conn.execute(
        insert(notes)
        .values(
            workspace_id=workspace_id,
            contact_id=contact_id,
            author_kind=author_kind,
            author_name=author_name[:120],
            user_id=user_id,
            kind=kind,
            body=text,
            created_at=utcnow(),
        )
        .returning(notes.c.id)
    )
    return int(result.scalar_one())
