"""Migrations: a database at the newest revision costs one query at start-up, a new or older one
is migrated by Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from app.migrate import alembic_config, current_revision, head_revision, upgrade


def test_the_head_read_from_the_files_is_alembics() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite:///unused.db"))
    assert head_revision() == script.get_current_head()


def test_a_new_file_is_migrated_and_a_migrated_one_is_left_alone(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh' / 'leadboard.db'}"
    assert current_revision(url) is None
    assert upgrade(url) is True
    assert current_revision(url) == head_revision()
    assert upgrade(url) is False  # one query, no Alembic


def test_an_older_database_is_brought_up_to_date(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0004")
    assert current_revision(url) == "0004"
    assert upgrade(url) is True and current_revision(url) == head_revision()


def test_postgres_reports_its_revision(database_url: str) -> None:
    # database_url is migrated by its fixture (SQLite file or a fresh PostgreSQL schema)
    assert current_revision(database_url) == head_revision()
    assert upgrade(database_url) is False
