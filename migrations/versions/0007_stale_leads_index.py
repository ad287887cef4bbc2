"""stale leads index

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 15:30:00.000000

The board's "stale" view (`?stale=1`) walked the whole board index to find the flagged leads: a
partial index holds only leads that reconciliation ever flagged, in the board's order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLAGGED = sa.text("stale_flagged_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_contacts_ws_stale",
        "contacts",
        ["workspace_id", "last_activity_at", "id"],
        unique=False,
        sqlite_where=FLAGGED,
        postgresql_where=FLAGGED,
    )


def downgrade() -> None:
    op.drop_index("ix_contacts_ws_stale", table_name="contacts")
