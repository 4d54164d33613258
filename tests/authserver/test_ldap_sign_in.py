"""Sign-in with an LDAP directory account, end to end: a real ``authserver serve`` (both databases) whose
identity-providers file names a real OpenLDAP directory (Debian's slapd on loopback, over ldaps:// with its
own CA), the login page's directory form, consent, the code and the tokens, whose claims and groups come
from the directory; refusals each with the page a person sees; the local administrator still signing in
while a directory is down; and the sign-in throttle in front of the directory."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ldap3 import MODIFY_REPLACE

from harness.authserver import ADMIN_TOKEN, AuthServer
from harness.slapd import GROUPS, PEOPLE, READER_DN, Slapd
from tests.authserver.test_upstream_sign_in import REDIRECT_URI, SCOPE, Browser, claims_of, new_browser
from tests.conftest import server_process
from tests.support.oauth import hidden_fields
from tests.support.programs import require_program
from tests.support.upstream_provider import closed_port

ALICE_PASSWORD = "alice-" + secrets.token_urlsafe(10)
BOB_PASSWORD = "bob-" + secrets.token_urlsafe(10)
CAROL_PASSWORD = "carol-" + secrets.token_urlsafe(10)
DAVE_PASSWORD = "dave-" + secrets.token_urlsafe(10)
MAX_FAILURES = 3


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    require_program("slapd", "AUTHYARD_REQUIRE_SLAPD")
    slapd = Slapd(tmp_path_factory.mktemp("slapd"), secrets.token_urlsafe(12), secrets.token_urlsafe(12))
    slapd.start()
    try:
        slapd.seed_base()
        alice = slapd.add_user("alice", ALICE_PASSWORD, mail="alice@corp.example", cn="Alice Liddell")
        bob = slapd.add_user("bob", BOB_PASSWORD, mail="bob@corp.example")
        slapd.add_user("carol", CAROL_PASSWORD)  # in no group
        slapd.add_user("dave", DAVE_PASSWORD, employeeType="disabled")  # the user filter leaves him out
        slapd.add_group("platform", [alice])
        slapd.add_group("auditors", [alice, bob])
        yield slapd
    finally:
        slapd.stop()


def _providers_file(folder: Path, slapd: Slapd) -> Path:
    password = folder / "bind-password"
    password.write_text(slapd.reader_password + "\n")  # as a mounted Secret may end
    common = {
        "type": "ldap",
        "bind_dn": READER_DN,
        "bind_password_file": str(password),
        "user_base": PEOPLE,
        "user_filter": "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))",
        "group_base": GROUPS,
        "timeout_seconds": 2,
    }
    # The same shape the operator renders from spec.identityProviders (resources/identity_providers.py).
    document = {
        "local_accounts": True,
        "providers": [
            {
                **common,
                "name": "corp",
                "display_name": "Corp Directory",
                "url": slapd.tls_url,
                "ca_file": str(slapd.ca_file),
            },
            {
                **common,
                "name": "strict",
                "display_name": "Strict Directory",
                "url": slapd.tls_url,
                "ca_file": str(slapd.ca_file),
                "allowed_groups": ["platform"],
            },
            {
                **common,
                "name": "down",
                "display_name": "Down Directory",
                "url": f"ldap://127.0.0.1:{closed_port()}",
            },
        ],
    }
    path = folder / "identity-providers.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(scope="module")
def server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, directory: Slapd
) -> Iterator[AuthServer]:
    path = _providers_file(tmp_path_factory.mktemp("ldap-idp"), directory)
    with server_process(
        backend,
        request,
        workers=1,
        AUTHSERVER_IDENTITY_PROVIDERS_FILE=str(path),
        AUTHSERVER_LOGIN_MAX_FAILURES_PER_ACCOUNT=str(MAX_FAILURES),
    ) as started:
        yield started


@pytest.fixture(scope="module")
def client(server: AuthServer) -> dict[str, Any]:
    return server.create_client(
        "Directory App", ["authorization_code"], scopes=SCOPE.split(), redirect_uris=[REDIRECT_URI]
    )


def _sign_in(browser: Browser, provider: str | None, username: str, password: str) -> httpx.Response:
    """The login page, then its form: the directory's (``provider``) or the local accounts' (None)."""
    page = browser.login_page()
    form_id = f"directory-{provider}" if provider else None
    if form_id is not None:
        found = re.search(rf'<form[^>]*id="{form_id}".*?</form>', page.text, re.S)
        assert found, f"the login page has no form for {provider}"
        fields = hidden_fields(found.group(0))
        assert fields["provider"] == provider
    else:
        fields = hidden_fields(page.text.split('class="directory"')[0])
    return browser.http.post(
        f"{browser.server.base_url}/authorize/login",
        data={**fields, "username": username, "password": password},
    )


def test_a_directory_user_signs_in_and_tokens_carry_the_directory_attributes_and_groups(
    server: AuthServer, client: dict[str, Any], directory: Slapd
) -> None:
    with new_browser(server, client) as browser:
        tokens = browser.tokens(browser.consent_and_code(_sign_in(browser, "corp", "alice", ALICE_PASSWORD)))
    id_token = claims_of(tokens["id_token"])
    assert id_token["preferred_username"] == "alice"
    assert id_token["name"] == "Alice Liddell" and id_token["email"] == "alice@corp.example"
    assert id_token["email_verified"] is False  # nothing says the directory checked it
    assert sorted(id_token["groups"]) == ["auditors", "platform"]
    assert sorted(claims_of(tokens["access_token"])["groups"]) == ["auditors", "platform"]

    # Alice leaves "platform" in the directory: her next sign-in carries the groups as they are now, on the
    # same local user (linked by the entry's entryUUID, not by name).
    platform = f"cn=platform,{GROUPS}"
    with directory.admin() as admin:
        admin.modify(platform, {"member": [(MODIFY_REPLACE, [f"uid=bob,{PEOPLE}"])]})
    try:
        with new_browser(server, client) as browser:
            page = _sign_in(browser, "corp", "alice", ALICE_PASSWORD)
            again = browser.tokens(browser.consent_and_code(page))
    finally:
        with directory.admin() as admin:  # as it was, for the other database's run
            admin.modify(platform, {"member": [(MODIFY_REPLACE, [f"uid=alice,{PEOPLE}"])]})
    refreshed = claims_of(again["id_token"])
    assert refreshed["sub"] == id_token["sub"] and refreshed["groups"] == ["auditors"]


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "not-her-password"),
        ("nobody", "whatever"),
        ("dave", DAVE_PASSWORD),  # disabled in the directory: his right password is no use
        ("*", ALICE_PASSWORD),
        ("alice)(uid=*", "x"),
    ],
)
def test_wrong_credentials_or_filter_syntax_are_one_refusal(
    server: AuthServer, client: dict[str, Any], username: str, password: str
) -> None:
    with new_browser(server, client) as browser:
        page = _sign_in(browser, "corp", username, password)
    assert page.status_code == 401 and "Wrong username or password." in page.text


def test_a_person_outside_the_allowed_groups_is_told_so_on_a_page_naming_the_directory(
    server: AuthServer, client: dict[str, Any]
) -> None:
    with new_browser(server, client) as browser:
        page = _sign_in(browser, "strict", "carol", CAROL_PASSWORD)
    assert page.status_code == 403
    refusal = "Signing in with Strict Directory failed: you are not in a group that may sign in here."
    assert refusal in page.text


def test_a_directory_that_is_down_names_itself_and_never_locks_out_the_local_administrator(
    server: AuthServer, client: dict[str, Any]
) -> None:
    admin = f"admin-{secrets.token_hex(3)}"
    admin_password = secrets.token_urlsafe(16)
    server.create_user(admin, admin_password)
    with new_browser(server, client) as browser:
        page = _sign_in(browser, "down", "alice", ALICE_PASSWORD)
        assert page.status_code == 502
        assert "Signing in with Down Directory failed: it could not be asked." in page.text
        assert 'id="username"' in page.text  # the local form is on that same page
        consent = _sign_in(browser, None, admin, admin_password)
        assert consent.status_code == 200 and 'id="allow"' in consent.text


def test_a_local_account_of_the_same_name_is_never_the_directory_persons(
    server: AuthServer, client: dict[str, Any]
) -> None:
    """A local "bob" exists: the directory's bob gets a user of his own, qualified by the directory."""
    server.create_user("bob", secrets.token_urlsafe(16))
    with new_browser(server, client) as browser:
        tokens = browser.tokens(browser.consent_and_code(_sign_in(browser, "corp", "bob", BOB_PASSWORD)))
    assert claims_of(tokens["id_token"])["preferred_username"] == "bob@corp"


def test_failed_directory_sign_ins_are_throttled_per_directory_account(
    server: AuthServer, client: dict[str, Any]
) -> None:
    """The directory is no free password oracle: after the account limit, even the right password waits (429,
    Retry-After), and the local account of the same name is not the one locked."""
    for _ in range(MAX_FAILURES):
        with new_browser(server, client) as browser:
            assert _sign_in(browser, "strict", "alice", "guess").status_code == 401
    with new_browser(server, client) as browser:
        locked = _sign_in(browser, "strict", "alice", ALICE_PASSWORD)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1


def test_an_unknown_provider_in_the_form_is_refused(server: AuthServer, client: dict[str, Any]) -> None:
    with new_browser(server, client) as browser:
        page = browser.login_page()
        answer = browser.http.post(
            f"{server.base_url}/authorize/login",
            data={**hidden_fields(page.text), "provider": "nope", "username": "alice", "password": "x"},
        )
    assert answer.status_code == 404


def test_the_admin_api_says_which_directory_can_be_used(server: AuthServer) -> None:
    """What the operator shows in the AuthServer's status: each directory's service account bound (or why
    not), nothing secret in it."""
    answer = httpx.get(
        f"{server.base_url}/admin/identity-providers", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert body["local_accounts"] is True
    health = {provider["name"]: provider for provider in body["providers"]}
    assert [health[name]["healthy"] for name in ("corp", "strict", "down")] == [True, True, False]
    assert health["corp"]["kind"] == "ldap" and health["corp"]["detail"] is None
    assert "Down Directory" == health["down"]["display_name"] and health["down"]["detail"]
    assert httpx.get(f"{server.base_url}/admin/identity-providers").status_code == 401
