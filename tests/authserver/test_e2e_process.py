"""End to end through a real ``authserver serve`` process on loopback, over SQLite and PostgreSQL.

The OAuth client is Authlib's httpx client (an independent implementation); tokens are verified with
PyJWT's ``PyJWKClient`` against the server's published JWKS. Every endpoint but the RFC 8414 metadata
document is discovered from that document. Clients and users are made with the ``authserver`` CLI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jwt
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from harness.authserver import AuthServer, running_server
from tests.support.oauth import ADMIN_TOKEN, hidden_fields

METADATA_PATH = "/.well-known/oauth-authorization-server"
API_AUDIENCE = "https://api.example.com"
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the test reads the Location header
REVOCATION_DEADLINE_SECONDS = 1.0
ROTATION_DEADLINE_SECONDS = 5.0


# Fixtures: one single-worker and one two-worker server per backend -----------------------------------------


def _database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    if backend == "sqlite":
        return None  # the embedded default: a SQLite file in the server's working directory
    cluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database(f"e2e_{uuid.uuid4().hex[:12]}")


def _server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, workers: int
) -> Iterator[AuthServer]:
    directory = tmp_path_factory.mktemp(f"e2e-{backend}-{workers}w")
    with running_server(directory, _database_url(backend, request), workers=workers) as server:
        server.seen_secrets.add(ADMIN_TOKEN)
        yield server


@pytest.fixture(scope="module")
def server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthServer]:
    yield from _server(backend, request, tmp_path_factory, workers=1)


@pytest.fixture(scope="module")
def two_worker_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthServer]:
    yield from _server(backend, request, tmp_path_factory, workers=2)


def discover(server: AuthServer) -> dict[str, Any]:
    response = httpx.get(server.base_url + METADATA_PATH, timeout=5)
    assert response.status_code == 200, response.text
    metadata = response.json()
    assert metadata["issuer"] == server.issuer
    return metadata


@pytest.fixture(scope="module")
def metadata(server: AuthServer) -> dict[str, Any]:
    return discover(server)


class Person:
    def __init__(self, server: AuthServer) -> None:
        self.username = f"alice-{uuid.uuid4().hex[:8]}"
        self.password = f"pw-{secrets.token_urlsafe(18)}"
        self.email = f"{self.username}@example.com"
        self.name = "Alice Example"
        self.user_id = server.create_user(self.username, self.password, email=self.email, name=self.name)[
            "user_id"
        ]


@pytest.fixture(scope="module")
def person(server: AuthServer) -> Person:
    return Person(server)


@pytest.fixture(scope="module")
def code_client(server: AuthServer) -> dict[str, Any]:
    return server.create_client(
        "E2E web app",
        ["authorization_code", "refresh_token"],
        scopes=["openid", "profile", "email", "read"],
        redirect_uris=[REDIRECT_URI],
        audiences=[API_AUDIENCE],
    )


def service_client(server: AuthServer) -> dict[str, Any]:
    created = server.create_client(
        f"svc-{uuid.uuid4().hex[:6]}",
        ["client_credentials"],
        scopes=["read", "write"],
        audiences=[API_AUDIENCE],
    )
    assert created["client_id"] and len(created["client_secret"]) >= 43  # >= 256 bits, base64url
    return created


# Helpers ---------------------------------------------------------------------------------------------------


def oauth_client(client: dict[str, Any], **kwargs: Any) -> OAuth2Client:
    return OAuth2Client(
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
        timeout=10,
        **kwargs,
    )


def verify(
    metadata: dict[str, Any], token: str, audience: str, jwks: jwt.PyJWKClient | None = None
) -> dict[str, Any]:
    """Signature against the published JWKS, plus aud, iss, exp and iat."""
    jwks = jwks or jwt.PyJWKClient(metadata["jwks_uri"], cache_jwk_set=False)
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key,
        algorithms=metadata["id_token_signing_alg_values_supported"],
        audience=audience,
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )


def published_kids(metadata: dict[str, Any]) -> set[str]:
    response = httpx.get(metadata["jwks_uri"], timeout=5)
    assert response.status_code == 200
    return {key["kid"] for key in response.json()["keys"]}


def fetch_client_credentials(
    metadata: dict[str, Any], client: dict[str, Any], **params: str
) -> dict[str, Any]:
    with oauth_client(client) as oauth:
        return dict(oauth.fetch_token(metadata["token_endpoint"], grant_type="client_credentials", **params))


def introspect(metadata: dict[str, Any], client: dict[str, Any], token: str, hint: str | None = None) -> dict:
    with oauth_client(client) as oauth:
        response = oauth.introspect_token(
            metadata["introspection_endpoint"], token=token, token_type_hint=hint
        )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


def _submit(browser: httpx.Client, page: httpx.Response, fields: dict[str, str]) -> httpx.Response:
    """Post the page's form (its action, its hidden fields, plus ``fields``) like a browser would."""
    actions = _FORM_ACTION.findall(page.text)
    assert len(actions) == 1, page.text
    return browser.post(urljoin(str(page.url), actions[0]), data={**hidden_fields(page.text), **fields})


class CodeFlow:
    """authorization_code + PKCE S256 through the real login and consent pages, driven by Authlib."""

    def __init__(self, server: AuthServer, metadata: dict[str, Any], client: dict[str, Any]) -> None:
        self.server = server
        self.metadata = metadata
        self.client = client

    def run(
        self, person: Person, scope: str, nonce: str | None = None
    ) -> tuple[OAuth2Client, dict[str, Any]]:
        oauth = oauth_client(
            self.client, scope=scope, redirect_uri=REDIRECT_URI, code_challenge_method="S256"
        )
        verifier = generate_token(64)
        # prompt=consent: the consent page every time, though an earlier run's consent is remembered.
        extra = {"prompt": "consent", **({"nonce": nonce} if nonce else {})}
        url, state = oauth.create_authorization_url(
            self.metadata["authorization_endpoint"], code_verifier=verifier, **extra
        )
        assert "code_challenge_method=S256" in url
        with httpx.Client(timeout=10, follow_redirects=False) as browser:
            page = browser.get(url)
            assert page.status_code == 200, page.text
            assert 'name="password"' in page.text
            self.login_started = int(time.time())
            consent = _submit(browser, page, {"username": person.username, "password": person.password})
            self.login_finished = int(time.time())
            assert consent.status_code == 200, consent.text
            assert person.username in consent.text and 'value="allow"' in consent.text
            redirect = _submit(browser, consent, {"decision": "allow"})
        assert redirect.status_code in (302, 303), redirect.text
        location = redirect.headers["location"]
        assert location.startswith(REDIRECT_URI + "?")
        token = oauth.fetch_token(
            self.metadata["token_endpoint"],
            authorization_response=location,
            code_verifier=verifier,
            state=state,
        )
        if token.get("refresh_token"):
            self.server.seen_secrets.add(token["refresh_token"])
        return oauth, dict(token)


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


# The grants ------------------------------------------------------------------------------------------------


def test_metadata_lists_every_endpoint(server: AuthServer, metadata: dict[str, Any]) -> None:
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ):
        assert metadata[name].startswith(server.issuer + "/"), name
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert {"client_credentials", "authorization_code", "refresh_token"} <= set(
        metadata["grant_types_supported"]
    )
    assert "password" not in metadata["grant_types_supported"]


def test_client_credentials(server: AuthServer, metadata: dict[str, Any]) -> None:
    client = service_client(server)
    token = fetch_client_credentials(metadata, client, scope="read")
    assert token["token_type"].lower() == "bearer"
    assert token["scope"] == "read"
    assert "refresh_token" not in token
    header = jwt.get_unverified_header(token["access_token"])
    assert header["typ"] == "at+jwt" and header["kid"]
    claims = verify(metadata, token["access_token"], API_AUDIENCE)
    assert claims["sub"] == claims["client_id"] == client["client_id"]
    assert claims["scope"] == "read" and claims["jti"]
    assert introspect(metadata, client, token["access_token"])["active"] is True

    secret = client["client_secret"]
    wrong = {**client, "client_secret": ("y" if secret[0] == "x" else "x") + secret[1:]}
    with pytest.raises(OAuthError) as refused:
        fetch_client_credentials(metadata, wrong)
    assert refused.value.error == "invalid_client"


def test_authorization_code_with_pkce_id_token_and_userinfo(
    server: AuthServer, metadata: dict[str, Any], code_client: dict[str, Any], person: Person
) -> None:
    flow = CodeFlow(server, metadata, code_client)
    nonce = generate_token(24)
    oauth, token = flow.run(person, "openid profile read", nonce=nonce)
    assert set(token["scope"].split()) == {"openid", "profile", "read"}

    access = verify(metadata, token["access_token"], API_AUDIENCE)
    assert access["sub"] == person.user_id and access["client_id"] == code_client["client_id"]

    id_token = verify(metadata, token["id_token"], code_client["client_id"])
    assert id_token["sub"] == person.user_id
    assert id_token["nonce"] == nonce
    assert id_token["at_hash"] == at_hash(token["access_token"])
    assert flow.login_started - 1 <= id_token["auth_time"] <= flow.login_finished + 1

    # userinfo releases what the scope allows: profile yes (updated_at is a profile claim, OIDC Core §5.4:
    # the person was never changed, so it is when they were created), email no.
    info = oauth.get(metadata["userinfo_endpoint"])
    assert info.status_code == 200, info.text
    released = info.json()
    updated_at = released.pop("updated_at")
    assert isinstance(updated_at, int) and time.time() - 600 < updated_at <= flow.login_started + 1
    assert released == {"sub": person.user_id, "preferred_username": person.username, "name": person.name}

    oauth, token = CodeFlow(server, metadata, code_client).run(person, "openid email")
    info = oauth.get(metadata["userinfo_endpoint"]).json()
    assert info == {"sub": person.user_id, "email": person.email, "email_verified": True}
    oauth.close()


def test_code_is_single_use_and_pkce_is_checked(
    server: AuthServer, metadata: dict[str, Any], code_client: dict[str, Any], person: Person
) -> None:
    oauth = oauth_client(code_client, scope="read", redirect_uri=REDIRECT_URI, code_challenge_method="S256")
    verifier = generate_token(64)
    url, _state = oauth.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, prompt="consent"
    )
    with httpx.Client(timeout=10) as browser:
        page = browser.get(url)
        consent = _submit(browser, page, {"username": person.username, "password": person.password})
        location = _submit(browser, consent, {"decision": "allow"}).headers["location"]
    with pytest.raises(OAuthError) as wrong_verifier:
        oauth.fetch_token(
            metadata["token_endpoint"], authorization_response=location, code_verifier=generate_token(64)
        )
    assert wrong_verifier.value.error == "invalid_grant"
    # A failed exchange burns the code (or the code was never redeemable): either way, no token now.
    with pytest.raises(OAuthError) as replay:
        oauth.fetch_token(metadata["token_endpoint"], authorization_response=location, code_verifier=verifier)
    assert replay.value.error == "invalid_grant"


def test_refresh_rotation_and_reuse_detection(
    server: AuthServer, metadata: dict[str, Any], code_client: dict[str, Any], person: Person
) -> None:
    oauth, token = CodeFlow(server, metadata, code_client).run(person, "openid read")
    chain = [token["refresh_token"]]
    for _ in range(3):
        refreshed = oauth.refresh_token(metadata["token_endpoint"], refresh_token=chain[-1])
        assert refreshed["refresh_token"] not in chain, "refresh tokens must rotate"
        server.seen_secrets.add(refreshed["refresh_token"])
        verify(metadata, refreshed["access_token"], API_AUDIENCE)
        chain.append(refreshed["refresh_token"])
    newest = chain[-1]
    assert introspect(metadata, code_client, newest, "refresh_token")["active"] is True
    assert introspect(metadata, code_client, chain[0], "refresh_token") == {"active": False}

    # Replaying an already rotated token is reuse: refused, and its whole family is revoked.
    with pytest.raises(OAuthError) as reuse:
        oauth.refresh_token(metadata["token_endpoint"], refresh_token=chain[1])
    assert reuse.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as family_revoked:
        oauth.refresh_token(metadata["token_endpoint"], refresh_token=newest)
    assert family_revoked.value.error == "invalid_grant"
    assert introspect(metadata, code_client, newest, "refresh_token") == {"active": False}

    # Another login's family is untouched.
    other, token = CodeFlow(server, metadata, code_client).run(person, "read")
    again = other.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    server.seen_secrets.add(again["refresh_token"])


def test_revoked_refresh_token_is_inactive(
    server: AuthServer, metadata: dict[str, Any], code_client: dict[str, Any], person: Person
) -> None:
    oauth, token = CodeFlow(server, metadata, code_client).run(person, "read")
    response = oauth.revoke_token(
        metadata["revocation_endpoint"], token=token["refresh_token"], token_type_hint="refresh_token"
    )
    assert response.status_code == 200, response.text
    assert introspect(metadata, code_client, token["refresh_token"]) == {"active": False}
    with pytest.raises(OAuthError) as refused:
        oauth.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    assert refused.value.error == "invalid_grant"


def test_token_signed_by_a_pruned_key_is_inactive_not_an_error(
    server: AuthServer, metadata: dict[str, Any]
) -> None:
    """Once a retired key is pruned (its retention is over), its tokens are simply invalid: introspection
    says inactive, userinfo says invalid_token. Never a 500."""
    client = service_client(server)
    old_token = fetch_client_credentials(metadata, client)["access_token"]
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    server.remember_private_keys()
    # --retention 0.001, not 0: the CLI reads 0 as "not given" and keeps the default retention.
    server.cli("keys", "rotate", "--retention", "0.001")
    final = json.loads(server.cli("keys", "rotate", "--retention", "0.001").stdout)
    server.remember_private_keys()
    assert old_kid not in final["published"]
    deadline = time.monotonic() + ROTATION_DEADLINE_SECONDS
    while old_kid in published_kids(metadata):
        assert time.monotonic() < deadline, "the server did not reload the rotated key file"
        time.sleep(0.05)

    with oauth_client(client) as oauth:
        response = oauth.introspect_token(metadata["introspection_endpoint"], token=old_token)
        assert response.status_code == 200, f"{response.status_code} {response.text[:200]}"
        assert response.json() == {"active": False}
        revoked = oauth.revoke_token(metadata["revocation_endpoint"], token=old_token)
        assert revoked.status_code == 200, f"{revoked.status_code} {revoked.text[:200]}"
    info = httpx.get(
        metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {old_token}"}, timeout=5
    )
    assert info.status_code == 401, f"{info.status_code} {info.text[:200]}"
    assert info.json()["error"] == "invalid_token"
    # New tokens work with the new keys.
    verify(metadata, fetch_client_credentials(metadata, client)["access_token"], API_AUDIENCE)


# Two workers: revocation and key rotation must hold on every worker ----------------------------------------


def _route(url: str) -> str:
    return urlsplit(url).path


def _introspect_burst(
    metadata: dict[str, Any], client: dict[str, Any], token: str, size: int = 24
) -> list[bool]:
    """``size`` concurrent introspections, each on a new connection (so the workers share them)."""
    with ThreadPoolExecutor(max_workers=size) as pool:
        return list(pool.map(lambda _: introspect(metadata, client, token)["active"], range(size)))


def test_revocation_is_seen_by_every_worker_within_a_second(two_worker_server: AuthServer) -> None:
    server = two_worker_server
    metadata = discover(server)
    route = _route(metadata["introspection_endpoint"])
    client = service_client(server)
    access_token = fetch_client_credentials(metadata, client)["access_token"]

    # Before: both workers answer introspection, and both say active.
    deadline = time.monotonic() + 15
    while len(server.requests_by_worker(route)) < 2:
        assert all(_introspect_burst(metadata, client, access_token)), "active before revocation"
        assert time.monotonic() < deadline, f"introspection never reached two workers: {server.log_tail()}"

    with oauth_client(client) as oauth:
        response = oauth.revoke_token(
            metadata["revocation_endpoint"], token=access_token, token_type_hint="access_token"
        )
    revoked_at = time.monotonic()
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"

    counts_at_deadline: dict[int, float] | None = None
    deadline = revoked_at + 15
    history: list[tuple[float, int]] = []
    while True:
        elapsed = time.monotonic() - revoked_at
        if elapsed >= REVOCATION_DEADLINE_SECONDS and counts_at_deadline is None:
            counts_at_deadline = server.requests_by_worker(route)
        answers = _introspect_burst(metadata, client, access_token)
        history.append((round(elapsed, 3), sum(answers)))
        if counts_at_deadline is not None:
            assert not any(answers), (
                f"{sum(answers)}/{len(answers)} introspections still active {elapsed:.2f}s after "
                f"revocation (history: {history})"
            )
            after = server.requests_by_worker(route)
            served = [pid for pid, count in after.items() if count > counts_at_deadline.get(pid, 0)]
            if len(served) >= 2:
                break
        assert time.monotonic() < deadline, (
            f"introspection after the deadline never reached two workers {history}"
        )


def test_key_rotation_while_tokens_are_live(two_worker_server: AuthServer) -> None:
    server = two_worker_server
    metadata = discover(server)
    client = service_client(server)
    token_route = _route(metadata["token_endpoint"])
    cached_jwks = jwt.PyJWKClient(metadata["jwks_uri"])  # a verifier that fetched the JWKS before rotation

    kids_before = published_kids(metadata)
    old_token = fetch_client_credentials(metadata, client)["access_token"]
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    verify(metadata, old_token, API_AUDIENCE, cached_jwks)
    assert old_kid in kids_before and len(kids_before) >= 2, "the next key must be published before it signs"

    rotated = server.rotate_keys()
    new_kid = rotated["active_kid"]
    assert new_kid != old_kid
    assert new_kid in kids_before, "the promoted key was already published, so cached verifiers know it"

    # Every worker reloads the file: poll until a whole burst of new tokens (both workers) carries new_kid.
    counts_before = server.requests_by_worker(token_route)
    deadline = time.monotonic() + ROTATION_DEADLINE_SECONDS
    while True:
        with ThreadPoolExecutor(max_workers=16) as pool:
            tokens = list(
                pool.map(lambda _: fetch_client_credentials(metadata, client)["access_token"], range(16))
            )
        kids = {jwt.get_unverified_header(token)["kid"] for token in tokens}
        counts = server.requests_by_worker(token_route)
        served = [pid for pid, count in counts.items() if count > counts_before.get(pid, 0)]
        if kids == {new_kid} and len(served) >= 2:
            break
        if kids != {new_kid}:
            counts_before = counts  # only bursts after every worker switched count toward coverage
        assert time.monotonic() < deadline, f"new tokens still signed with {kids}, workers {served}"

    kids_after = published_kids(metadata)
    assert {old_kid, new_kid} <= kids_after, "the retiring key stays published while its tokens live"
    assert len(kids_after - kids_before) == 2, "a new next key is published for each algorithm"

    # Tokens signed before the rotation still verify (fresh and cached JWKS) and are still active.
    for jwks in (None, cached_jwks):
        verify(metadata, old_token, API_AUDIENCE, jwks)
        verify(metadata, tokens[0], API_AUDIENCE, jwks)
    assert all(_introspect_burst(metadata, client, old_token, size=8))
    assert httpx.get(server.base_url + "/readyz", timeout=5).json()["active_kid"] == new_kid


def test_client_credentials_on_two_workers(two_worker_server: AuthServer) -> None:
    metadata = discover(two_worker_server)
    client = service_client(two_worker_server)
    with ThreadPoolExecutor(max_workers=8) as pool:
        tokens = list(
            pool.map(lambda _: fetch_client_credentials(metadata, client)["access_token"], range(16))
        )
    for token in tokens:
        assert verify(metadata, token, API_AUDIENCE)["client_id"] == client["client_id"]


# Last in each backend's group: nothing secret reached the logs ---------------------------------------------


def test_logs_hold_no_secrets(server: AuthServer, two_worker_server: AuthServer) -> None:
    for process in (server, two_worker_server):
        process.remember_private_keys()
        assert process.stop() is not None
        log = process.log_text()
        assert "GET " in log or "POST " in log, f"the access log is empty: {process.log_path}"
        assert len(process.seen_secrets) >= 3, "expected at least the admin token and two private keys"
        leaked = sorted(secret[:6] + "..." for secret in process.seen_secrets if secret in log)
        assert not leaked, f"secrets found in {process.log_path}: {leaked}"
