"""Columns as wide as what intake accepts; attachments.file_name (the delivered name)

Revision ID: 0004_intake_limits
Revises: 0003_headers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_intake_limits"
down_revision = "0003_headers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.alter_column("recipient", type_=sa.Text(), existing_type=sa.String(200))
        batch_op.alter_column("author", type_=sa.Text(), existing_type=sa.String(200))
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.alter_column("name", type_=sa.Text(), existing_type=sa.String(500))
        batch_op.alter_column("content_type", type_=sa.Text(), existing_type=sa.String(200))
        batch_op.add_column(sa.Column("file_name", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_column("file_name")
        batch_op.alter_column("content_type", type_=sa.String(200), existing_type=sa.Text())
        batch_op.alter_column("name", type_=sa.String(500), existing_type=sa.Text())
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.alter_column("author", type_=sa.String(200), existing_type=sa.Text())
        batch_op.alter_column("recipient", type_=sa.String(200), existing_type=sa.Text())
