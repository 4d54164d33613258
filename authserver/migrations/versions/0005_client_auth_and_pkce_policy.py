"""client authentication method optional (NULL: either secret method), per-client PKCE policy, codes
issued without PKCE

``clients.token_endpoint_auth_method`` becomes nullable: NULL lets a confidential client authenticate with
client_secret_basic or client_secret_post, a value pins that one. Existing confidential rows that say
client_secret_basic become NULL: until now that value was also what an omitted method defaulted to (and
the operator never sent one), so the rows cannot tell a pin from a default, and widening them to "either
secret method" is what the relying parties that failed need; the same secret guards both methods. A
registration that does pin client_secret_basic pins it again the next time it is sent. Rows that say
client_secret_post (always an explicit choice) and public clients' ``none`` stay as they are.

``clients.require_pkce`` (true for every existing client: nothing changes until a registration says
false) and ``authorization_codes.code_challenge`` nullable (a code issued without PKCE).

Downgrade: NULL methods become client_secret_basic (the old default), codes issued without PKCE are
deleted (they live minutes and the old code cannot redeem them), the column goes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 12:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.alter_column(
            "token_endpoint_auth_method",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
            nullable=True,
        )
        batch_op.add_column(sa.Column("require_pkce", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.execute(
        "UPDATE clients SET token_endpoint_auth_method = NULL "
        "WHERE client_type = 'confidential' AND token_endpoint_auth_method = 'client_secret_basic'"
    )
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.alter_column(
            "code_challenge", existing_type=sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True
        )


def downgrade() -> None:
    op.execute("DELETE FROM authorization_codes WHERE code_challenge IS NULL")
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.alter_column(
            "code_challenge", existing_type=sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False
        )
    op.execute(
        "UPDATE clients SET token_endpoint_auth_method = 'client_secret_basic' "
        "WHERE token_endpoint_auth_method IS NULL"
    )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("require_pkce")
        batch_op.alter_column(
            "token_endpoint_auth_method",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
            nullable=False,
        )
