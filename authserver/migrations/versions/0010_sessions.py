"""sign-in sessions: a server-side row per browser sign-in, the clients it signed into, and the session of
each code and refresh family; clients' post-logout redirect URIs (RP-Initiated Logout 1.0 §3.1)

Downgrade drops them: browsers signed in before sign in again (their cookies name no session any more),
and refresh families lose the link to their session (nothing revokes them when a session ends).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"], unique=False)
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"], unique=False)
    op.create_table(
        "session_clients",
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "client_id"),
    )
    with op.batch_alter_table("authorization_codes") as batch:
        batch.add_column(sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    with op.batch_alter_table("refresh_families") as batch:
        batch.add_column(sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.create_index(op.f("ix_refresh_families_session_id"), ["session_id"], unique=False)
    with op.batch_alter_table("clients") as batch:
        batch.add_column(
            sa.Column("post_logout_redirect_uris", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("post_logout_redirect_uris")
    with op.batch_alter_table("refresh_families") as batch:
        batch.drop_index(op.f("ix_refresh_families_session_id"))
        batch.drop_column("session_id")
    with op.batch_alter_table("authorization_codes") as batch:
        batch.drop_column("session_id")
    op.drop_table("session_clients")
    op.drop_index(op.f("ix_sessions_expires_at"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_user_id"), table_name="sessions")
    op.drop_table("sessions")
