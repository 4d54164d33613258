"""standard claims of users (OIDC Core §5.1), and the claims request (§5.5) kept with codes and refresh
families

``users`` gains nullable given_name, family_name, locale, zoneinfo, phone_number, phone_number_verified,
address (a JSON object of §5.1.1's members) and updated_at (NULL: not changed since created_at, which is what
the updated_at claim then reports). ``authorization_codes.claims`` and ``refresh_families.claims`` hold the
normalised ``claims`` request parameter of the sign-in (NULL: none).

Downgrade drops the columns: the users' extra claims are lost, and codes and families keep working without
the claims they asked for (the code before this revision never returned them).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_USER_COLUMNS = (
    ("given_name", lambda: sqlmodel.sql.sqltypes.AutoString(length=255)),
    ("family_name", lambda: sqlmodel.sql.sqltypes.AutoString(length=255)),
    ("locale", lambda: sqlmodel.sql.sqltypes.AutoString(length=35)),
    ("zoneinfo", lambda: sqlmodel.sql.sqltypes.AutoString(length=64)),
    ("phone_number", lambda: sqlmodel.sql.sqltypes.AutoString(length=64)),
    ("phone_number_verified", sa.Boolean),
    ("address", sa.JSON),
    ("updated_at", lambda: sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        for name, kind in _USER_COLUMNS:
            batch_op.add_column(sa.Column(name, kind(), nullable=True))
    for table in ("authorization_codes", "refresh_families"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("claims", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    for table in ("refresh_families", "authorization_codes"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("claims")
    with op.batch_alter_table("users", schema=None) as batch_op:
        for name, _ in reversed(_USER_COLUMNS):
            batch_op.drop_column(name)
