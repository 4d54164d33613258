"""Sign-in through upstream OpenID Connect providers, and groups

``users.groups`` (a JSON list; NULL for existing users: no groups) and the ``federated_identities`` table, the
stable link of a local user to an upstream provider's subject (provider name + subject → user_id).

Downgrade drops both. The users provisioned from an upstream stay, without a password and without their
link: a later upstream sign-in of the same person would provision a new user (under another username).

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-07 14:30:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("groups", sa.JSON(), nullable=True))
    op.create_table(
        "federated_identities",
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "subject"),
    )
    op.create_index(
        op.f("ix_federated_identities_user_id"), "federated_identities", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_federated_identities_user_id"), table_name="federated_identities")
    op.drop_table("federated_identities")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("groups")
