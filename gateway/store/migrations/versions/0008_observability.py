"""deliveries by (state, destination, updated_at): the queue gauges of /metrics per scrape;
submissions.traceparent: the worker continues the accept's trace

Revision ID: 0008_observability
Revises: 0007_console
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_observability"
down_revision = "0007_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("traceparent", sa.String(length=55), nullable=True))
    op.create_index(
        "ix_deliveries_state_destination", "deliveries", ["state", "destination", "updated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_state_destination", table_name="deliveries")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("traceparent")
