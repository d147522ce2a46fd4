"""trainings: error, stored weights, the run that started it; look-up by the provider's id

Revision ID: 0003_trainings
Revises: 0002
Create Date: 2026-12-05 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_trainings"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("weights_key", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("task_id", sa.String(length=32), nullable=True))
        # Webhooks and the status sync find a row by the provider's id.
        batch_op.create_index("ix_trainings_remote_id", ["remote_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.drop_index("ix_trainings_remote_id")
        batch_op.drop_column("task_id")
        batch_op.drop_column("weights_key")
        batch_op.drop_column("error")
