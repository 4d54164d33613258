"""revoked grants: every access token of a revoked user grant is refused until the last of them expires

A grant is one sign-in (a code redemption and the refresh-token rotations after it); its access tokens carry
its grant id. The revocation sync reads this table with revoked_access_tokens. Downgrade drops it: grants
revoked until then are no longer refused by grant (their refresh families stay revoked).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revoked_grants",
        sa.Column("grant_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("grant_id"),
    )
    op.create_index(op.f("ix_revoked_grants_expires_at"), "revoked_grants", ["expires_at"], unique=False)
    op.create_index(op.f("ix_revoked_grants_revoked_at"), "revoked_grants", ["revoked_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_revoked_grants_revoked_at"), table_name="revoked_grants")
    op.drop_index(op.f("ix_revoked_grants_expires_at"), table_name="revoked_grants")
    op.drop_table("revoked_grants")
