"""refresh tokens as families: one row per sign-in, its secret hash replaced by each refresh-token rotation

Every live token is moved into a family row of its own family (its hash becomes the family's current
secret hash, so the value its client holds keeps working); every unexpired token, current or already
rotated, is kept by hash in legacy_refresh_tokens so that presenting it finds its family (a rotated one is
then reuse, as before). Tokens issued from now on carry their family in the value.

Downgrade turns the families back into one row per current token: tokens issued before this migration
keep working, tokens issued after it do not (only their secret was hashed, not the whole value).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:10:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refresh_families",
        sa.Column("family_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("audience", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("family_id"),
    )
    op.create_index(op.f("ix_refresh_families_client_id"), "refresh_families", ["client_id"], unique=False)
    op.create_table(
        "legacy_refresh_tokens",
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("family_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    # A family's current token is its one unrotated row; the family began with its first token.
    op.execute(
        """
        INSERT INTO refresh_families (family_id, secret_hash, client_id, user_id, scope, audience, auth_time,
            issued_at, rotated_at, expires_at, revoked)
        SELECT token.family_id, token.token_hash, token.client_id, token.user_id, token.scope, token.audience,
            token.auth_time, first.issued_at, NULLIF(token.issued_at, first.issued_at), token.expires_at,
            token.revoked
        FROM refresh_tokens AS token JOIN (
            SELECT family_id, MIN(issued_at) AS issued_at FROM refresh_tokens GROUP BY family_id
        ) AS first ON first.family_id = token.family_id
        WHERE token.rotated_at IS NULL
        ON CONFLICT (family_id) DO NOTHING
        """
    )
    op.execute(
        """
        INSERT INTO legacy_refresh_tokens (token_hash, family_id, expires_at)
        SELECT token_hash, family_id, expires_at FROM refresh_tokens
        WHERE family_id IN (SELECT family_id FROM refresh_families)
        """
    )
    op.drop_index(op.f("ix_refresh_tokens_family_id"), table_name="refresh_tokens")
    op.drop_index(op.f("ix_refresh_tokens_expires_at"), table_name="refresh_tokens")
    op.drop_index(op.f("ix_refresh_tokens_client_id"), table_name="refresh_tokens")
    op.drop_table("refresh_tokens")


def downgrade() -> None:
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("family_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("audience", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_refresh_tokens_client_id"), "refresh_tokens", ["client_id"], unique=False)
    op.create_index(op.f("ix_refresh_tokens_expires_at"), "refresh_tokens", ["expires_at"], unique=False)
    op.create_index(op.f("ix_refresh_tokens_family_id"), "refresh_tokens", ["family_id"], unique=False)
    op.execute(
        """
        INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope, audience, auth_time,
            issued_at, expires_at, rotated_at, revoked)
        SELECT secret_hash, family_id, client_id, user_id, scope, audience, auth_time,
            COALESCE(rotated_at, issued_at), expires_at, NULL, revoked
        FROM refresh_families
        """
    )
    op.drop_table("legacy_refresh_tokens")
    op.drop_index(op.f("ix_refresh_families_client_id"), table_name="refresh_families")
    op.drop_table("refresh_families")
