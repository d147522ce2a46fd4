"""the next free slot per image-search provider, shared across processes

Revision ID: 0006_search_pacing
Revises: 0005_search
Create Date: 2026-11-28 18:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_search_pacing"
down_revision = "0005_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_pacing",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("search_pacing")
