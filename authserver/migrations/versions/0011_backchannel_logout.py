"""back-channel logout registration of clients

``clients.backchannel_logout_uri`` (NULL for every existing client: none is sent logout tokens until its
registration names a URI) and ``clients.backchannel_logout_session_required`` (false), OpenID Connect
Back-Channel Logout 1.0 §2.2.

Downgrade drops both: no client is sent logout tokens any more (their registrations must give the URI again
after a later upgrade).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 11:30:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("backchannel_logout_uri", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "backchannel_logout_session_required",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("backchannel_logout_session_required")
        batch_op.drop_column("backchannel_logout_uri")
