"""workload_identity client authentication (RFC 7523 §2.2 with a trusted issuer's JWT)

``clients.workload_issuer`` (a trusted issuer's configured name) and ``clients.workload_subject`` (the exact
``sub`` of its tokens for the client's workload), NULL for existing clients, unique together so one workload
is one client.

Downgrade drops the constraint and the columns. A workload_identity client left registered then names no
workload and has no secret: it cannot authenticate until it is registered again.

Revision ID: 0016
Revises: 0012
Create Date: 2026-12-07 14:40:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("workload_issuer", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("workload_subject", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True)
        )
        batch_op.create_unique_constraint("uq_clients_workload", ["workload_issuer", "workload_subject"])


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_constraint("uq_clients_workload", type_="unique")
        batch_op.drop_column("workload_subject")
        batch_op.drop_column("workload_issuer")
