"""One judgement of loopback hosts (authserver/loopback.py), and the rules that rely on it: a plain
ldap:// directory, an http:// upstream or trusted issuer, and a public client that would skip consent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from authserver.admin.registration import ClientRegistration
from authserver.config import check_trusted_url
from authserver.identity_providers import parse_identity_providers
from authserver.ldap.directory import LdapSettings
from authserver.loopback import is_loopback, may_be_loopback

LOOPBACK = [
    "localhost",
    "LOCALHOST",
    "127.0.0.1",
    "127.0.0.2",
    "127.255.255.254",
    "::1",
    "[::1]",
    "0:0:0:0:0:0:0:1",
    "::ffff:127.0.0.1",
    "[::ffff:127.0.0.1]",
    "::ffff:7f00:1",  # the same mapped address in hex
    "::ffff:127.1.2.3",
]
NOT_LOOPBACK = [
    "",
    None,
    "example.com",
    "localhost.example.com",
    "mylocalhost",
    "10.0.0.1",
    "128.0.0.1",
    "126.255.255.255",
    "0.0.0.0",  # noqa: S104 -- a host to judge, not an address to bind
    "::",
    "::2",
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible (deprecated, RFC 4291 §2.5.5.1), not mapped
    "fe80::1",
    "127.1",  # not a dotted-quad literal: a name a resolver may send anywhere
]
# Might be this machine (RFC 6761 §6.3), so never trusted as loopback, yet never trusted as remote either.
LOCALHOST_NAMES = ["app.localhost", "a.b.localhost", "localhost.", "127.0.0.1.", "app.localhost."]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)
    assert may_be_loopback(host)


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_other_hosts(host: str | None) -> None:
    assert not is_loopback(host)
    assert not may_be_loopback(host)


@pytest.mark.parametrize("host", LOCALHOST_NAMES)
def test_names_reserved_for_loopback_only_might_be(host: str) -> None:
    assert not is_loopback(host)
    assert may_be_loopback(host)


def _ldap(url: str) -> LdapSettings:
    return LdapSettings(name="dir", url=url, bind_dn="cn=reader", bind_password="x", user_base="dc=corp")


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "localhost"])
def test_plain_ldap_is_accepted_on_loopback(host: str) -> None:
    assert _ldap(f"ldap://{host}:389").url == f"ldap://{host}:389"


@pytest.mark.parametrize("host", ["ldap.corp.example", "[::ffff:10.0.0.1]", "dir.localhost"])
def test_plain_ldap_elsewhere_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="clear text"):
        _ldap(f"ldap://{host}:389")


def _provider_issuer(issuer: str, tmp_path: Path) -> str:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value\n")
    document = {
        "providers": [
            {
                "name": "corp",
                "display_name": "Corp",
                "type": "oidc",
                "issuer": issuer,
                "client_id": "authyard",
                "client_secret_file": str(secret),
            }
        ]
    }
    return parse_identity_providers(json.dumps(document)).providers[0].name


@pytest.mark.parametrize("host", ["127.0.0.1:9000", "[::1]:9000", "[::ffff:127.0.0.1]:9000", "localhost"])
def test_an_http_issuer_is_accepted_on_loopback(host: str, tmp_path: Path) -> None:
    assert _provider_issuer(f"http://{host}", tmp_path) == "corp"


@pytest.mark.parametrize("host", ["login.corp.example", "[::ffff:10.0.0.1]", "sso.localhost"])
def test_an_http_issuer_elsewhere_is_refused(host: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="http only for a loopback address"):
        _provider_issuer(f"http://{host}", tmp_path)


def _public_trusted(redirect_uri: str) -> ClientRegistration:
    return ClientRegistration(
        name="app",
        type="public",
        grant_types=["authorization_code"],
        redirect_uris=[redirect_uri],
        skip_consent=True,
    )


@pytest.mark.parametrize(
    "uri",
    [
        "https://127.0.0.1/cb",
        "https://[::ffff:127.0.0.1]/cb",
        "https://localhost/cb",
        "https://app.localhost/cb",
        "https://localhost./cb",
    ],
)
def test_a_public_client_on_a_host_that_may_be_loopback_cannot_skip_consent(uri: str) -> None:
    with pytest.raises(ValidationError, match="non-loopback host"):
        _public_trusted(uri)


def test_a_public_client_on_a_real_https_host_may_skip_consent() -> None:
    assert _public_trusted("https://app.example.com/cb").skip_consent


@pytest.mark.parametrize("host", ["127.0.0.1:8443", "[::1]", "[::ffff:127.0.0.1]:8443", "localhost"])
def test_a_trusted_issuer_may_use_http_on_loopback(host: str) -> None:
    assert check_trusted_url(f"http://{host}/keys") == f"http://{host}/keys"


@pytest.mark.parametrize("host", ["oidc.cluster.example", "[::ffff:10.0.0.1]", "keys.localhost"])
def test_a_trusted_issuer_elsewhere_must_use_https(host: str) -> None:
    with pytest.raises(ValueError, match="plain http is allowed only for loopback"):
        check_trusted_url(f"http://{host}/keys")
