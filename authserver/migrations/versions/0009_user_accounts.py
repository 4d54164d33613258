"""user accounts: a disabled flag on users, and the failed sign-in counters of the login throttle

``users.disabled``: a disabled user cannot sign in (their refresh families are revoked when disabling).
``login_failures``: failed sign-ins per account (a hash of the username) and per client address, shared by
every worker and replica. Downgrade drops both: disabled users become enabled again (their revoked refresh
families stay revoked) and the counts are forgotten.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 07:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "login_failures",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(op.f("ix_login_failures_expires_at"), "login_failures", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_login_failures_expires_at"), table_name="login_failures")
    op.drop_table("login_failures")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled")
