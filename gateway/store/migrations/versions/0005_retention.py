"""submissions.payload_erased_at and xml_sha256 (retention and erasure), blob lookups by hash

Revision ID: 0005_retention
Revises: 0004_intake_limits
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_retention"
down_revision = "0004_intake_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("xml_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("payload_erased_at", sa.Float(), nullable=True))
    op.create_index("ix_submissions_retention", "submissions", ["payload_erased_at", "received_at"])
    op.create_index("ix_attachments_sha256", "attachments", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_attachments_sha256", table_name="attachments")
    op.drop_index("ix_submissions_retention", table_name="submissions")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("payload_erased_at")
        batch_op.drop_column("xml_sha256")
