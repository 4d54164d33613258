"""token exchange (RFC 8693): each client's token-exchange policy

``clients.token_exchange``, a JSON object (``audiences``, ``subject_audiences``, ``allow_impersonation``),
NULL for every existing client: none has the token-exchange grant type yet, and NULL means the defaults.

Downgrade drops the column. A client registered with the token-exchange grant keeps the grant type but
falls back to the defaults (no audiences to ask for, no subject audiences, no impersonation) until its
registration gives the policy again after a later upgrade.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_exchange", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("token_exchange")
