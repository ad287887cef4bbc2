"""search index, temperature+score index, lead changes by time

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 02:30:00.000000

- Search: `LIKE '%term%'` over contacts.search_text read every lead for a rare term. On SQLite an
  FTS5 table with the trigram tokenizer (external content: it stores only the index, the text
  stays in contacts), kept in step by triggers; on PostgreSQL a pg_trgm GIN index, which LIKE
  uses as it is. Where neither can be had (SQLite without FTS5, PostgreSQL without the
  extension or the right to create it) nothing is created and search stays a plain LIKE.
- The score sort filtered by temperature: scores follow temperature, so walking the score index
  for the cold leads passed every hot, warm and lukewarm one first.
- A lead's changes: the timeline reads them newest first by created_at, not by id.

Note for later migrations: a batch ("move and copy") alter of contacts on SQLite drops its
triggers with the old table; such a migration must create the contacts_fts_* triggers again.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

SQLITE_FTS = (
    "CREATE VIRTUAL TABLE contacts_fts USING fts5("
    "search_text, content='contacts', content_rowid='id', tokenize='trigram')"
)
# An external-content index must be told the old text to remove it. The update trigger fires
# only when search_text is set and differs: the webhook path updates contacts on every message.
SQLITE_TRIGGERS = (
    "CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts BEGIN "
    "INSERT INTO contacts_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER contacts_fts_delete AFTER DELETE ON contacts BEGIN "
    "INSERT INTO contacts_fts(contacts_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER contacts_fts_update AFTER UPDATE OF search_text ON contacts "
    "WHEN old.search_text IS NOT new.search_text BEGIN "
    "INSERT INTO contacts_fts(contacts_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO contacts_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
)
SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS contacts_fts_update",
    "DROP TRIGGER IF EXISTS contacts_fts_delete",
    "DROP TRIGGER IF EXISTS contacts_fts_insert",
    "DROP TABLE IF EXISTS contacts_fts",
)
PG_TRGM_INDEX = "ix_contacts_search_trgm"


def _sqlite_search_index(conn: sa.Connection) -> None:
    try:
        conn.exec_driver_sql(SQLITE_FTS)
    except sa.exc.OperationalError as exc:  # no FTS5 or no trigram tokenizer (SQLite < 3.34)
        log.warning("search index not created, search stays LIKE: %s", exc)
        return
    for statement in SQLITE_TRIGGERS:
        conn.exec_driver_sql(statement)
    conn.exec_driver_sql("INSERT INTO contacts_fts(contacts_fts) VALUES ('rebuild')")


def _postgres_search_index(conn: sa.Connection) -> None:
    available = conn.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"
    ).first()
    if available is None:
        log.warning("pg_trgm is not installed on this server: search stays a plain LIKE")
        return
    try:
        with conn.begin_nested():  # a refusal must not abort the migration's transaction
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError as exc:
        log.warning("pg_trgm could not be created, search stays a plain LIKE: %s", exc)
        return
    conn.exec_driver_sql(
        f"CREATE INDEX {PG_TRGM_INDEX} ON contacts USING gin (search_text gin_trgm_ops)"
    )


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _sqlite_search_index(conn)
    elif conn.dialect.name == "postgresql":
        _postgres_search_index(conn)

    op.create_index(
        "ix_contacts_ws_temp_score",
        "contacts",
        ["workspace_id", "temperature", sa.text("coalesce(score, -1)"), "id"],
    )
    op.drop_index("ix_lead_changes_contact", table_name="lead_changes")
    op.create_index(
        "ix_lead_changes_contact_created", "lead_changes", ["contact_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_lead_changes_contact_created", table_name="lead_changes")
    op.create_index("ix_lead_changes_contact", "lead_changes", ["contact_id", "id"])
    op.drop_index("ix_contacts_ws_temp_score", table_name="contacts")
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for statement in SQLITE_DROP:
            conn.exec_driver_sql(statement)
    elif conn.dialect.name == "postgresql":
        # The extension stays: other objects may use it, and upgrading again reuses it.
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {PG_TRGM_INDEX}")
