"""access: nachrichtenUUID unique per sender; the audit log

Revision ID: 0006_access
Revises: 0005_retention
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_access"
down_revision = "0005_retention"
branch_labels = None
depends_on = None

# 0001 declared the UUID's unique constraint without a name: PostgreSQL named it itself,
# SQLite keeps it unnamed (a batch naming convention names it for the table rebuild).
_SQLITE_CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _old_unique_name() -> str:
    if op.get_bind().dialect.name == "sqlite":
        return "uq_submissions_message_uuid"
    return "submissions_message_uuid_key"


def upgrade() -> None:
    with op.batch_alter_table("submissions", naming_convention=_SQLITE_CONVENTION) as batch_op:
        batch_op.drop_constraint(_old_unique_name(), type_="unique")
        batch_op.create_unique_constraint(
            "uq_submissions_message_uuid_sender", ["message_uuid", "sender"]
        )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)


def downgrade() -> None:
    # Fails while two senders share a nachrichtenUUID: resolve those first.
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_at")
    op.drop_table("audit_log")
    with op.batch_alter_table("submissions", naming_convention=_SQLITE_CONVENTION) as batch_op:
        batch_op.drop_constraint("uq_submissions_message_uuid_sender", type_="unique")
        batch_op.create_unique_constraint(_old_unique_name(), ["message_uuid"])
