"""Reading a PostgreSQL URL for PgBouncer."""

from __future__ import annotations

import pytest
from authyard_operator.dburl import parse_database_url


def test_asyncpg_url_with_everything() -> None:
    url = parse_database_url(
        "postgresql+asyncpg://app%40corp:p%3Ass@db.example.com:6543/auth%20db?ssl=require"
    )
    assert (url.host, url.port, url.database, url.user, url.password, url.sslmode) == (
        "db.example.com",
        6543,
        "auth db",
        "app@corp",
        "p:ss",
        "require",
    )
    assert "p:ss" not in repr(url)


def test_defaults_and_libpq_spelling() -> None:
    url = parse_database_url("postgres://app@db/auth?sslmode=verify-full")
    assert (url.port, url.password, url.sslmode) == (5432, "", "verify-full")
    assert parse_database_url("postgresql://a:b@h/d?ssl=true").sslmode == "require"
    assert parse_database_url("postgresql://a:b@h/d").sslmode is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://a:b@h/d", "postgresql://"),
        ("postgresql:///d", "no host"),
        ("postgresql://a:b@h", "names no database"),
        ("postgresql://h/d", "no user"),
        ("postgresql://a:b@h:99999/d", "invalid port"),
    ],
)
def test_unusable_urls_say_why_without_the_password(url: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as error:
        parse_database_url(url)
    assert ":b@" not in str(error.value)
