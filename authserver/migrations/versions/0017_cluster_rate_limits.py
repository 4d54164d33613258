"""Server-wide token-endpoint rate limits: a census of live workers and per-client budgets

The ``worker_heartbeats`` table: each worker of each replica writes its row on every revocation sync and
counts the live ones, so that it enforces its share of a budget meant for the whole server. The columns
``clients.rate_limit_per_second`` and ``clients.rate_limit_burst``: a client's own budget, NULL for existing
clients (they keep the server's per-client default).

Downgrade drops the table and the columns: every client falls back to the server's default, and the
server's limits count per worker again.

Revision ID: 0017
Revises: 0012
Create Date: 2026-12-07 14:30:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limit_per_second", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("rate_limit_burst", sa.Integer(), nullable=True))
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker_id"),
    )
    op.create_index(op.f("ix_worker_heartbeats_last_seen"), "worker_heartbeats", ["last_seen"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_worker_heartbeats_last_seen"), table_name="worker_heartbeats")
    op.drop_table("worker_heartbeats")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("rate_limit_burst")
        batch_op.drop_column("rate_limit_per_second")
