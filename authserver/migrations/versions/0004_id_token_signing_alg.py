"""clients choose the algorithm of their ID tokens (OIDC Dynamic Client Registration §2)

clients.id_token_signed_response_alg: NULL (every existing client) means the server's default ID-token
algorithm (AUTHSERVER_ID_TOKEN_SIGNING_ALGORITHM).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        column_type = sqlmodel.sql.sqltypes.AutoString(length=16)
        batch.add_column(sa.Column("id_token_signed_response_alg", column_type, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("id_token_signed_response_alg")
