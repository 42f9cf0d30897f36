"""Indexes for the admin console's submission lists (keyset paging per filter)

Revision ID: 0007_console
Revises: 0006_access
"""

from __future__ import annotations

from alembic import op

revision = "0007_console"
down_revision = "0006_access"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_submissions_received": ("submissions", ["received_at", "id"]),
    "ix_submissions_municipality": ("submissions", ["municipality", "received_at", "id"]),
    "ix_submissions_sender": ("submissions", ["sender", "received_at", "id"]),
    "ix_submissions_message_type": ("submissions", ["message_type", "received_at", "id"]),
    "ix_deliveries_state": ("deliveries", ["state", "submission_id"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
