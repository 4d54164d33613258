"""Schema migrations (Alembic). Run with `authserver migrate`."""
