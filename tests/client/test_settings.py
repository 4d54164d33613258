"""Reading a client's settings the way the operator writes them (the Secret's keys as files or as OAUTH_*
environment variables), choosing the client authentication method, and refusing settings that cannot work
before any request is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from authyard_client import (
    ClientSecretBasic,
    ClientSecretPost,
    ClientSettings,
    ConfigurationError,
    PrivateKeyJwt,
    RefreshPolicy,
    TokenSource,
    WorkloadIdentity,
)
from tests.support.client_assertions import ec_key, private_pem

SECRET = "s3cret-value-with-enough-entropy"


def _secret_dir(directory: Path, **data: str) -> Path:
    directory.mkdir()
    for key, value in data.items():
        (directory / key).write_text(value)
    return directory


def test_the_mounted_secret_and_its_envfrom_twin_give_the_same_settings(tmp_path: Path) -> None:
    data = {
        "client_id": "shop.orders",
        "client_secret": SECRET,
        "next_client_secret": "staged-during-a-rotation",
        "issuer": "https://id.example.test",
        "token_endpoint": "https://id.example.test/token",
        "jwks_uri": "https://id.example.test/.well-known/jwks.json",
        "scope": "orders.read  orders.write",
        "audience": "https://orders.example.test https://stock.example.test",
    }
    from_files = ClientSettings.from_secret_dir(_secret_dir(tmp_path / "secret", **data))
    from_env = ClientSettings.from_env(
        {
            "OAUTH_CLIENT_ID": data["client_id"],
            "OAUTH_CLIENT_SECRET": data["client_secret"],
            "OAUTH_ISSUER": data["issuer"],
            "OAUTH_TOKEN_URL": data["token_endpoint"],
            "OAUTH_JWKS_URI": data["jwks_uri"],
            "OAUTH_SCOPE": data["scope"],
            "OAUTH_AUDIENCE": data["audience"],
        }
    )
    for settings in (from_files, from_env):
        assert settings.client_id == "shop.orders" and settings.client_secret == SECRET
        assert settings.token_endpoint == "https://id.example.test/token"
        assert settings.scope == "orders.read orders.write"
        assert settings.audiences == ("https://orders.example.test", "https://stock.example.test")
    assert from_files.client_secret_file == tmp_path / "secret" / "client_secret"
    assert SECRET not in repr(from_files) and SECRET not in repr(from_files.authentication())


def test_the_method_follows_what_the_settings_hold(tmp_path: Path) -> None:
    secretless = ClientSettings.from_secret_dir(
        _secret_dir(tmp_path / "secretless", client_id="shop.orders", issuer="https://id.example.test")
    )
    assert secretless.client_secret is None
    with pytest.raises(ConfigurationError, match="no client secret, private key or service-account token"):
        secretless.authentication()
    with pytest.raises(ConfigurationError, match="needs a client secret"):
        secretless.authentication("client_secret_post")
    token_file = tmp_path / "token"
    workload = secretless.authentication(service_account_token_file=token_file)
    assert isinstance(workload, WorkloadIdentity) and workload.token_file == token_file
    with pytest.raises(ConfigurationError, match="cannot read the service-account token"):
        workload.apply({}, {}, "https://id.example.test/token")

    key_file = tmp_path / "key.pem"
    key_file.write_bytes(private_pem(ec_key()))
    signer = secretless.authentication(private_key_file=key_file, kid="k1")
    assert isinstance(signer, PrivateKeyJwt) and signer.algorithm == "ES256"
    with pytest.raises(ConfigurationError, match="cannot sign RS256"):
        PrivateKeyJwt("shop.orders", ec_key(), algorithm="RS256")

    with_secret = ClientSettings("shop.orders", issuer="https://id.example.test", client_secret=SECRET)
    assert isinstance(with_secret.authentication(), ClientSecretBasic)
    assert isinstance(with_secret.authentication("client_secret_post"), ClientSecretPost)
    with pytest.raises(ConfigurationError, match="unknown client authentication method"):
        with_secret.authentication("client_secret_jwt")


def test_settings_that_cannot_work_are_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no client id"):
        ClientSettings.from_secret_dir(_secret_dir(tmp_path / "empty", client_id=" \n"))
    with pytest.raises(ConfigurationError, match="OAUTH_CLIENT_ID"):
        ClientSettings.from_env({})
    with pytest.raises(ConfigurationError, match="token endpoint or the issuer"):
        TokenSource(ClientSecretBasic("shop.orders", SECRET))
    with pytest.raises(ConfigurationError, match="refresh_fraction"):
        RefreshPolicy(refresh_fraction=(0.8, 0.95))  # would refresh inside the last tenth of life
