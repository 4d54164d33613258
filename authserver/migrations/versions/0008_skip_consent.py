"""first-party clients that skip the consent page

``clients.skip_consent`` (false for every existing client: each keeps asking until a registration says
true). A client registered with it gets a code right after sign-in, without the consent page and without
remembered consent; ``prompt=consent`` still shows the page.

Downgrade drops the column: every client asks for consent again (what it already allowed stays remembered,
and nothing was remembered for the trusted ones).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("skip_consent", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("skip_consent")
