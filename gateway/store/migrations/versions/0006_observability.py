"""deliveries by (state, destination, updated_at): the queue gauges of /metrics per scrape

Revision ID: 0006_observability
Revises: 0005_retention
"""

from __future__ import annotations

from alembic import op

revision = "0006_observability"
down_revision = "0005_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_state_destination", "deliveries", ["state", "destination", "updated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_state_destination", table_name="deliveries")
