"""Usage per client

``client_usage``: tokens and token-endpoint errors per client and clock hour, summed over every worker and
replica (each adds its counts every few seconds); ``client_last_use``: each client's last token and last
error. Both start empty: usage is counted from the upgrade on.

Downgrade drops both tables (the usage counted so far is lost; nothing else reads it).

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-07 14:40:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_usage",
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "hour"),
    )
    op.create_index(op.f("ix_client_usage_hour"), "client_usage", ["hour"], unique=False)
    op.create_table(
        "client_last_use",
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("last_token_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("client_id"),
    )


def downgrade() -> None:
    op.drop_table("client_last_use")
    op.drop_index(op.f("ix_client_usage_hour"), table_name="client_usage")
    op.drop_table("client_usage")
