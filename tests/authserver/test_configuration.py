"""Configuration errors are clear, and never echo a value that may be a secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from authserver.config import Settings, SettingsError, load_settings


def test_invalid_secret_is_reported_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHSERVER_ADMIN_TOKEN", "tiny-s3cret")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "AUTHSERVER_ADMIN_TOKEN" in str(raised.value) and "at least 16" in str(raised.value)
    assert "tiny-s3cret" not in str(raised.value)


def test_empty_admin_token_disables_the_admin_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHSERVER_ADMIN_TOKEN", "")
    assert load_settings().admin_token is None


def test_durations_and_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHSERVER_ACCESS_TOKEN_TTL", "5m")
    monkeypatch.setenv("AUTHSERVER_REFRESH_TOKEN_TTL", "1h30m")
    monkeypatch.setenv("AUTHSERVER_CORS_ALLOWED_ORIGINS", "https://a.example.com, https://b.example.com")
    settings = load_settings()
    assert settings.access_token_ttl.total_seconds() == 300
    assert settings.refresh_token_ttl.total_seconds() == 5400
    assert settings.cors_allowed_origins == ["https://a.example.com", "https://b.example.com"]


def test_a_duration_too_long_for_any_clock_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHSERVER_ACCESS_TOKEN_TTL", "9" * 30)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "AUTHSERVER_ACCESS_TOKEN_TTL" in str(raised.value) and "at most" in str(raised.value)


def test_write_connections_must_leave_the_engine_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHSERVER_DB_POOL_MAX_SIZE", "4")
    monkeypatch.setenv("AUTHSERVER_DB_WRITE_CONNECTIONS", "4")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value) == (
        "invalid configuration: AUTHSERVER_DB_WRITE_CONNECTIONS (4) must be below "
        "AUTHSERVER_DB_POOL_MAX_SIZE (4)"
    )
    monkeypatch.setenv("AUTHSERVER_DB_WRITE_CONNECTIONS", "3")
    assert load_settings().db_write_connections == 3
    # A pool of one is not split: the writes borrow its connection, whatever the default says.
    monkeypatch.setenv("AUTHSERVER_DB_POOL_MAX_SIZE", "1")
    monkeypatch.delenv("AUTHSERVER_DB_WRITE_CONNECTIONS")
    assert load_settings().db_write_connections == 1


def test_cli_exits_2_with_the_problem_on_bad_configuration(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "authserver", "migrate"],
        env={"AUTHSERVER_ACCESS_TOKEN_TTL": "forever", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "AUTHSERVER_ACCESS_TOKEN_TTL" in result.stderr and "Traceback" not in result.stderr


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("### Configuration", 1)[1].split("\n### ", 1)[0]
    missing = [
        f"AUTHSERVER_{name.upper()}"
        for name in Settings.model_fields
        if f"`AUTHSERVER_{name.upper()}`" not in table
    ]
    assert not missing, f"settings missing from the README's configuration table: {missing}"
