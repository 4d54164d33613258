"""private_key_jwt client authentication (RFC 7523 §2.2, OIDC Core §9)

``clients.jwks`` (a public JWK Set as JSON text), ``clients.jwks_uri`` and
``clients.token_endpoint_auth_signing_alg``, all NULL for existing clients (they keep their secrets); the
``used_client_assertions`` table, where each assertion's jti is spent once (RFC 7523 §3 item 7).

Downgrade drops the columns and the table. A private_key_jwt client left registered then has no keys and no
secret: it cannot authenticate until it is registered again with a secret method.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 12:50:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jwks", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("jwks_uri", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "token_endpoint_auth_signing_alg", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
            )
        )
    op.create_table(
        "used_client_assertions",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(
        op.f("ix_used_client_assertions_expires_at"), "used_client_assertions", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_used_client_assertions_expires_at"), table_name="used_client_assertions")
    op.drop_table("used_client_assertions")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("token_endpoint_auth_signing_alg")
        batch_op.drop_column("jwks_uri")
        batch_op.drop_column("jwks")
