"""The parts of a PostgreSQL URL that PgBouncer needs (host, port, database, credentials, TLS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 5432
# asyncpg spells TLS `ssl=`, libpq `sslmode=`; both take libpq's mode names.
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


@dataclass(frozen=True)
class DatabaseUrl:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)  # never in logs or tracebacks
    sslmode: str | None = None


def parse_database_url(url: str) -> DatabaseUrl:
    """Parse ``postgresql[+driver]://user:password@host[:port]/database[?ssl=...]``; ValueError says what
    is missing (without echoing the URL, which holds a password)."""
    parts = urlsplit(url.strip())
    if parts.scheme.split("+")[0] not in {"postgresql", "postgres"}:
        raise ValueError("the database URL must start with postgresql:// or postgresql+asyncpg://")
    if not parts.hostname:
        raise ValueError("the database URL has no host")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ValueError("the database URL names no database (postgresql://user:pass@host:5432/<database>)")
    if not parts.username:
        raise ValueError("the database URL has no user")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as error:
        raise ValueError("the database URL has an invalid port") from error
    query = parse_qs(parts.query)
    modes = query.get("sslmode") or query.get("ssl")
    sslmode = modes[0] if modes else None
    if sslmode is not None and sslmode not in _SSL_MODES:
        sslmode = "require" if sslmode.lower() in {"true", "1"} else None
    return DatabaseUrl(
        host=parts.hostname,
        port=port,
        database=database,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        sslmode=sslmode,
    )
