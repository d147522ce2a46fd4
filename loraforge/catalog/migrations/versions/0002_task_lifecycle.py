"""task lifecycle: parent task, heartbeat, owner process, one active run per dataset

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 09:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ACTIVE = "parent_id IS NULL AND status IN ('PENDING', 'RUNNING')"


def upgrade() -> None:
    # Runs left active by an older version can never finish now: mark them, or the index below would fail.
    op.execute(
        "UPDATE tasks SET status = 'CRASHED', error = 'left running before the task lifecycle upgrade' "
        "WHERE status IN ('PENDING', 'RUNNING')"
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("owner", sa.String(length=300), nullable=True))
        batch_op.create_index("ix_tasks_parent_id", ["parent_id"], unique=False)
    op.create_index(
        "uq_tasks_one_active_run",
        "tasks",
        ["dataset_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_tasks_one_active_run", table_name="tasks")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_parent_id")
        batch_op.drop_column("owner")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("parent_id")
