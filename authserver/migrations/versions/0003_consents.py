"""remembered consent: the scopes each user allowed each client (OIDC Core §3.1.2.4)

One row per user, client and scope; the client_id index serves deleting a client's consents with it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "client_id", "scope"),
    )
    op.create_index(op.f("ix_consents_client_id"), "consents", ["client_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_consents_client_id"), table_name="consents")
    op.drop_table("consents")
