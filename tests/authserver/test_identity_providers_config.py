"""``AUTHSERVER_IDENTITY_PROVIDERS_FILE``: validated at startup with errors naming the field (never a secret),
and local accounts turned off: the login page offers only the providers and the password form is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from authserver.config import Settings, SettingsError, load_settings
from authserver.identity_providers import parse_identity_providers, parse_sign_in
from authserver.web.app import create_app
from tests.conftest import settings_for
from tests.support.oauth import CALLBACK, PASSWORD, authorization_request, hidden_fields, register

SECRET = "the-upstream-client-secret-value"


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("idp-secret") / "client-secret"
    path.write_text(f"{SECRET}\n")
    return path


def provider(secret_file: Path, **fields: Any) -> dict[str, Any]:
    return {
        "name": "corp",
        "display_name": "Corp SSO",
        "type": "oidc",
        "issuer": "https://login.corp.example",
        "client_id": "authyard",
        "client_secret_file": str(secret_file),
        **fields,
    }


def test_a_valid_file_becomes_the_providers_with_their_secret_read_from_its_file(secret_file: Path) -> None:
    document = {
        "providers": [
            provider(
                secret_file,
                allowed_email_domains=["Corp.Example"],
                claims={"username": "upn", "groups": "roles"},
                trust_email_verified=True,
            )
        ]
    }
    parsed = parse_identity_providers(json.dumps(document))
    assert parsed.local_accounts is True
    corp = parsed.get("corp")
    assert corp is not None and corp.client_secret == SECRET  # the trailing newline of a mounted file dropped
    assert corp.scopes == ("openid", "profile", "email")  # the default
    without = parse_identity_providers(json.dumps({"providers": [provider(secret_file, scopes=["email"])]}))
    assert without.providers[0].scopes == ("openid", "email")  # openid is always asked for
    assert corp.allowed_email_domains == ("corp.example",)
    assert (corp.claims.username, corp.claims.groups, corp.claims.subject) == ("upn", "roles", "sub")
    assert SECRET not in repr(parsed)


def test_the_document_the_operator_renders_for_an_oidc_provider_is_accepted(secret_file: Path) -> None:
    """The shape ``spec.identityProviders`` becomes in the pods (the operator's ConfigMap): every member it
    writes, with the limits its schema allows (a 32-character name, a dotless e-mail domain, long groups)."""
    rendered = {
        "local_accounts": False,
        "providers": [
            {
                "name": "a" * 32,
                "display_name": "D" * 64,
                "type": "oidc",
                "issuer": "https://login.corp.example/tenant/v2.0",
                "client_id": "c" * 256,
                "client_secret_file": str(secret_file),
                "scopes": ["openid", "profile", "email", "groups"],
                "claims": {
                    "subject": "oid",
                    "username": "upn",
                    "email": "email",
                    "name": "name",
                    "groups": "roles",
                },
                "allowed_email_domains": ["corp"],
                "allowed_groups": ["g" * 256],
                "trust_email_verified": True,
            }
        ],
    }
    parsed = parse_identity_providers(json.dumps(rendered))
    assert parsed.local_accounts is False and parsed.providers[0].claims.subject == "oid"


def test_the_document_the_operator_renders_for_an_ldap_directory_is_accepted(tmp_path: Path) -> None:
    """The operator's own renderer (spec.identityProviders[].ldap) makes a document this server reads into
    the directory client's settings: every field carried over, the password read from its file."""
    from authyard_operator.resources.identity_providers import document
    from authyard_operator.spec import AuthServerSpec

    spec = AuthServerSpec.model_validate(
        {
            "identityProviders": {
                "providers": [
                    {
                        "name": "directory",
                        "displayName": "Directory",
                        "ldap": {
                            "url": "ldap://ldap.corp.example:389",
                            "startTLS": True,
                            "caConfigMapRef": {"name": "ldap-ca", "key": "ca.crt"},
                            "bindDN": "cn=reader,dc=corp,dc=example",
                            "bindPasswordRef": {"name": "ldap", "key": "password"},
                            "userSearch": {
                                "baseDN": "ou=people,dc=corp,dc=example",
                                "usernameAttribute": "mail",
                            },
                            "groupSearch": {
                                "baseDN": "ou=groups,dc=corp,dc=example",
                                "filter": "(objectClass=posixGroup)",
                                "memberAttribute": "memberUid",
                                "memberValue": "Username",
                            },
                            "allowedGroups": ["platform"],
                            "timeoutSeconds": 3,
                        },
                    }
                ]
            }
        }
    )
    rendered = document(spec)
    password = tmp_path / "bind-password"
    password.write_text(SECRET + "\n")
    ca = tmp_path / "ca.crt"
    ca.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    entry = rendered["providers"][0]
    entry["bind_password_file"], entry["ca_file"] = str(password), str(ca)  # where the pods have them
    providers, directories = parse_sign_in(json.dumps(rendered))
    assert providers.providers[0].kind == "ldap" and providers.providers[0].display_name == "Directory"
    settings = directories["directory"]
    assert (settings.url, settings.start_tls, settings.ca_file) == ("ldap://ldap.corp.example:389", True, ca)
    assert settings.bind_password == SECRET and SECRET not in repr(providers)
    assert (settings.username_attribute, settings.group_member_attribute) == ("mail", "memberUid")
    assert (settings.group_member_value, settings.group_filter) == ("username", "(objectClass=posixGroup)")
    assert settings.allowed_groups == frozenset({"platform"}) and settings.timeout_seconds == 3


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"name": "Corp SSO"}, "providers.0.name"),
        ({"type": "saml"}, "providers.0.type: 'saml' is not a kind this server knows (oidc, ldap)"),
        ({"issuer": "http://login.corp.example"}, "https URL (http only for a loopback address)"),
        ({"issuer": "https://login.corp.example?tenant=1"}, "without query or fragment"),
        (
            {"client_secret_file": "/nonexistent/secret"},
            "client_secret_file /nonexistent/secret cannot be read",
        ),
        ({"client_secret": SECRET}, "providers.0.client_secret: Extra inputs are not permitted"),
        ({"claims": {"subject": ""}}, "providers.0.claims.subject"),
        ({"allowed_email_domains": ["a@corp"]}, "providers.0.allowed_email_domains.0"),
        ({"ca_file": "/nonexistent/ca.pem"}, "not a readable PEM file"),
    ],
)
def test_a_wrong_provider_is_refused_naming_the_field_and_never_the_secret(
    secret_file: Path, change: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValueError, match="identity providers") as refused:
        parse_identity_providers(json.dumps({"providers": [provider(secret_file, **change)]}))
    assert says in str(refused.value)
    assert SECRET not in str(refused.value)


def test_documents_nobody_could_use_are_refused(secret_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-secret"
    empty.write_text("\n")
    for document, says in [
        ("{not json", "not valid JSON"),
        ({"local_accounts": False, "providers": []}, "nobody could sign in"),
        ({"providers": [provider(secret_file), provider(secret_file)]}, "must be unique: corp"),
        ({"providers": [provider(secret_file, client_secret_file=str(empty))]}, "is empty"),
        ({"providers": [], "ldap": {}}, "ldap: Extra inputs are not permitted"),
    ]:
        text = document if isinstance(document, str) else json.dumps(document)
        with pytest.raises(ValueError, match=says):
            parse_identity_providers(text)


def test_the_server_refuses_to_start_with_a_wrong_file(secret_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "providers.json"
    path.write_text(json.dumps({"providers": [provider(secret_file, issuer="ftp://login.corp.example")]}))
    with pytest.raises(SettingsError, match=r"AUTHSERVER_IDENTITY_PROVIDERS_FILE: .*providers.0.issuer"):
        load_settings(identity_providers_file=str(path))
    with pytest.raises(SettingsError, match=r"AUTHSERVER_IDENTITY_PROVIDERS_FILE: .*cannot be read"):
        load_settings(identity_providers_file=str(tmp_path / "missing.json"))


@pytest.fixture(scope="module")
def backend() -> str:
    return "sqlite"  # no storage is touched here beyond what every test of the login page does


@pytest.fixture(scope="module")
def settings(request: pytest.FixtureRequest, secret_file: Path) -> Settings:
    path = secret_file.parent / "providers-only.json"
    path.write_text(json.dumps({"local_accounts": False, "providers": [provider(secret_file)]}))
    return settings_for("sqlite", request, identity_providers_file=path)


async def test_with_local_accounts_off_the_login_page_offers_only_the_providers(
    app_client: httpx.AsyncClient, user: Any
) -> None:
    client_id, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code"],
        scopes=["openid"],
        redirect_uris=[CALLBACK],
    )
    params, _ = authorization_request(client_id, scope="openid", state="s", redirect_uri=CALLBACK)
    page = await app_client.get(f"/authorize?{urlencode(params)}")
    assert page.status_code == 200
    assert 'id="username"' not in page.text and 'id="password"' not in page.text
    assert 'id="upstream-corp"' in page.text and "Sign in with Corp SSO" in page.text
    # A password form posted anyway (the page's own fields, a real user's password): refused.
    refused = await app_client.post(
        "/authorize/login", data={**hidden_fields(page.text), "username": user.username, "password": PASSWORD}
    )
    assert refused.status_code == 403 and "turned off" in refused.text
    assert "authyard_session" not in refused.headers.get("set-cookie", "")


async def test_the_services_take_the_file_as_the_settings_read_it(
    secret_file: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Read once, when the settings are checked: what the server serves is what that check accepted."""
    path = tmp_path / "read-once.json"
    path.write_text(json.dumps({"local_accounts": False, "providers": [provider(secret_file)]}))
    settings = settings_for("sqlite", request, identity_providers_file=path)
    path.write_text("{not json")  # a second read would now stop the server
    for read in (settings, settings.model_copy(update={"issuer": "http://127.0.0.1:8080"})):
        app = create_app(read)
        async with app.router.lifespan_context(app):
            providers = app.state.services.identity_providers
            assert not providers.local_accounts
            assert [provider.name for provider in providers.providers] == ["corp"]
