"""image-search queries, their cursors per provider, and the candidates they found

Revision ID: 0005_search
Revises: 0004_users
Create Date: 2026-11-28 15:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_search"
down_revision = "0004_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_queries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dataset_id", "text", name="uq_search_query_text"),
    )
    op.create_index("ix_search_queries_dataset_id", "search_queries", ["dataset_id"], unique=False)
    op.create_table(
        "search_cursors",
        sa.Column("query_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("cursor", sa.JSON(), nullable=True),
        sa.Column("exhausted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["query_id"], ["search_queries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("query_id", "provider"),
    )
    op.create_table(
        "search_candidates",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("query_id", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("provider_id", sa.String(length=200), nullable=False),
        sa.Column("file_url_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("image_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["query_id"], ["search_queries.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("query_id", "provider", "provider_id", name="uq_search_candidate"),
    )
    op.create_index("ix_search_candidates_query_id", "search_candidates", ["query_id"], unique=False)
    op.create_index("ix_search_candidates_dataset_id", "search_candidates", ["dataset_id"], unique=False)
    op.create_index(
        "ix_search_candidates_query_url", "search_candidates", ["query_id", "file_url_hash"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_search_candidates_query_url", table_name="search_candidates")
    op.drop_index("ix_search_candidates_dataset_id", table_name="search_candidates")
    op.drop_index("ix_search_candidates_query_id", table_name="search_candidates")
    op.drop_table("search_candidates")
    op.drop_table("search_cursors")
    op.drop_index("ix_search_queries_dataset_id", table_name="search_queries")
    op.drop_table("search_queries")
