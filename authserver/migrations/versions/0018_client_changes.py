"""Client changes for the client caches: when each client was last created, changed or deleted

The ``client_changes`` table: the admin API's writes to a client record its time in the same transaction;
each worker reads the changes since its last look on every revocation sync and drops those clients from its
cache, so a cached client is served for as long as the worker keeps looking, not only for the cache's TTL.

Downgrade drops the table: the caches fall back to their TTL alone.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 19:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_changes",
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_index(op.f("ix_client_changes_changed_at"), "client_changes", ["changed_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_client_changes_changed_at"), table_name="client_changes")
    op.drop_table("client_changes")
