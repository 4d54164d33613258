"""private_key_jwt end to end (RFC 7523 §2.2, OIDC Core §9): a real ``authserver serve --workers 2`` on
SQLite and PostgreSQL, clients registered with ``authserver clients create`` (inline JWKS, or a jwks_uri
served by a loopback HTTP server), Authlib's own PrivateKeyJWT client authentication for client_credentials,
introspection and revocation, and each refusal as a client sees it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from harness.authserver import AuthServer
from harness.polling import wait_for
from tests.conftest import server_process
from tests.support.client_assertions import (
    JWT_BEARER,
    PrivateKey,
    ec_key,
    hmac_with,
    private_pem,
    public_jwk,
    public_pem,
    rsa_key,
    sign,
    unsigned,
)
from tests.support.jwks_server import JwksServer, serving_jwks
from tests.support.worker_connections import Connection, close_all, open_on_two_workers

TOKEN_ROUTE = "/token"


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with serving_jwks() as served:
        yield served


@pytest.fixture(scope="module")
def server(backend: str, request: pytest.FixtureRequest) -> Iterator[AuthServer]:
    with server_process(backend, request, AUTHSERVER_CLIENT_JWKS_TIMEOUT="2s") as started:
        yield started


def _register(
    server: AuthServer, tmp_path: Path, *, keys: list[dict[str, Any]] | None = None, uri: str | None = None
) -> str:
    args = ["clients", "create", "--name", "signing service", "--grant-type", "client_credentials"]
    args += ["--scope", "orders.read", "--token-endpoint-auth-method", "private_key_jwt"]
    if keys is not None:
        path = tmp_path / f"jwks-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps({"keys": keys}))
        args += ["--jwks-file", str(path)]
    if uri is not None:
        args += ["--jwks-uri", uri]
    created: dict[str, Any] = json.loads(server.cli(*args).stdout)
    assert "client_secret" not in created and created["has_secret"] is False
    assert created["token_endpoint_auth_method"] == "private_key_jwt"
    return str(created["client_id"])


def _authlib_client(server: AuthServer, client_id: str, private: PrivateKey, kid: str) -> OAuth2Client:
    """Authlib's httpx client with its own private_key_jwt (RS256, an hour-long assertion, aud the URL it
    posts to: the token, introspection or revocation endpoint)."""
    client = OAuth2Client(
        client_id=client_id,
        client_secret=private_pem(private).decode(),
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
        timeout=10,
    )
    client.register_client_auth_method(PrivateKeyJWT(headers={"kid": kid}))
    return client


def _post_token(http: httpx.Client, assertion: str, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }
    return http.post(TOKEN_ROUTE, data={**form, **extra})


def _refused(response: httpx.Response, description: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_client", body
    assert description in body["error_description"], body


def test_discovery_offers_private_key_jwt(server: AuthServer) -> None:
    metadata = httpx.get(f"{server.base_url}/.well-known/openid-configuration", timeout=10).json()
    for endpoint in ("token", "revocation", "introspection"):
        assert "private_key_jwt" in metadata[f"{endpoint}_endpoint_auth_methods_supported"]
        assert set(metadata[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]) == {
            "RS256",
            "PS256",
            "ES256",
            "EdDSA",
        }
    assert "client_secret_jwt" not in metadata["token_endpoint_auth_methods_supported"]


def test_authlib_gets_introspects_and_revokes_a_token_with_inline_keys(
    server: AuthServer, tmp_path: Path
) -> None:
    private = rsa_key(1)
    client_id = _register(server, tmp_path, keys=[public_jwk(private, "inline-1")])
    metadata = httpx.get(f"{server.base_url}/.well-known/openid-configuration", timeout=10).json()
    with _authlib_client(server, client_id, private, "inline-1") as oauth:
        token = oauth.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        access_token = token["access_token"]
        introspected = oauth.introspect_token(metadata["introspection_endpoint"], token=access_token)
        assert introspected.status_code == 200, introspected.text
        assert introspected.json()["active"] is True and introspected.json()["client_id"] == client_id
        revoked = oauth.revoke_token(metadata["revocation_endpoint"], token=access_token)
        assert revoked.status_code == 200, revoked.text
        after = oauth.introspect_token(metadata["introspection_endpoint"], token=access_token)
        assert after.json() == {"active": False}


@pytest.fixture
async def connections(server: AuthServer) -> AsyncIterator[tuple[Connection, Connection]]:
    """Two connections that two different workers serve (opened and kept until both workers hold one)."""
    opened, pair = await open_on_two_workers(server)
    try:
        yield pair
    finally:
        close_all(opened)


async def test_a_jwks_uri_is_fetched_and_a_new_kid_picked_up(
    server: AuthServer, jwks: JwksServer, connections: tuple[Connection, Connection], tmp_path: Path
) -> None:
    """The client publishes its keys at its jwks_uri; it rotates its signing key, and each worker, seeing an
    unknown kid, fetches the set again and accepts the new key."""
    path = f"/rotating-{uuid.uuid4().hex[:6]}"
    first, second = rsa_key(2), rsa_key(3)
    jwks.documents[path] = {"keys": [public_jwk(first, "one")]}
    client_id = _register(server, tmp_path, uri=jwks.uri(path))
    token_endpoint = f"{server.base_url}/token"
    for connection in connections:  # each worker fetches and caches the set with the first key only
        assert (
            _post_token(
                connection.http, sign(first, "RS256", client_id, token_endpoint, kid="one")
            ).status_code
            == 200
        )
    jwks.documents[path] = {"keys": [public_jwk(first, "one"), public_jwk(second, "two")]}
    for connection in connections:
        # A refresh on an unknown kid is allowed once every few seconds per client and worker.
        def accepted(http: httpx.Client = connection.http) -> bool:
            return (
                _post_token(http, sign(second, "RS256", client_id, token_endpoint, kid="two")).status_code
                == 200
            )

        await wait_for(accepted, timeout=15, interval=0.5, message="the rotated key was never accepted")
    with _authlib_client(server, client_id, second, "two") as oauth:
        assert oauth.fetch_token(token_endpoint, grant_type="client_credentials")["token_type"] == "Bearer"
    assert jwks.hits[path] >= 4  # two workers, each: the first fetch and one refresh


async def test_a_replayed_assertion_is_refused_by_the_other_worker(
    server: AuthServer, connections: tuple[Connection, Connection], tmp_path: Path
) -> None:
    private = ec_key()
    client_id = _register(server, tmp_path, keys=[public_jwk(private, "e1")])
    assertion = sign(private, "ES256", client_id, f"{server.base_url}/token", kid="e1")
    first, second = connections
    assert _post_token(first.http, assertion).status_code == 200
    _refused(_post_token(second.http, assertion), "already used")
    _refused(_post_token(first.http, assertion), "already used")


def test_assertions_breaking_the_rules_are_refused(server: AuthServer, tmp_path: Path) -> None:
    private = rsa_key(1)
    client_id = _register(server, tmp_path, keys=[public_jwk(private, "r1")])
    token_endpoint = f"{server.base_url}/token"
    now = int(time.time())

    def signed(**claims: Any) -> str:
        return sign(private, "RS256", client_id, token_endpoint, kid="r1", **claims)

    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        _refused(_post_token(http, signed(exp=now - 60, iat=now - 120)), "has expired")
        _refused(_post_token(http, signed(nbf=now + 120)), "not valid yet")
        _refused(_post_token(http, signed(aud="https://elsewhere.example.com/token")), "aud must contain")
        _refused(_post_token(http, signed(iss="someone-else")), "iss must be the client_id")
        _refused(
            _post_token(http, signed(sub="someone-else", iss="someone-else")), "client authentication failed"
        )
        _refused(_post_token(http, unsigned(client_id, token_endpoint, "r1")), "must be signed with")
        _refused(
            _post_token(http, hmac_with(public_pem(private), client_id, token_endpoint, "r1")),
            "must be signed with",
        )
        _refused(_post_token(http, signed(exp=now + 3 * 3600)), "more than 3600 s away")
        other = rsa_key(2)
        _refused(
            _post_token(http, sign(other, "RS256", client_id, token_endpoint, kid="unknown")),
            "has kid 'unknown'",
        )
        _refused(
            _post_token(http, sign(other, "RS256", client_id, token_endpoint, kid="r1")), "does not verify"
        )
        _refused(_post_token(http, signed(padding="x" * 9000)), "longer than 8192 bytes")
        _refused(
            _post_token(http, signed(), client_secret="a-secret-as-well"),
            "not a client_assertion and a secret",
        )
        # A secret for a private_key_jwt client is no way in either.
        response = http.post(
            TOKEN_ROUTE, data={"grant_type": "client_credentials"}, auth=(client_id, "guess")
        )
        _refused(response, "registered for private_key_jwt")


@pytest.mark.parametrize(
    ("script", "description"),
    [("hang", "did not answer within 2 s"), ("garbage", "did not serve a JWK Set of public keys")],
)
async def test_a_broken_jwks_uri_is_invalid_client_and_blocks_nobody_else(
    server: AuthServer, jwks: JwksServer, tmp_path: Path, script: str, description: str
) -> None:
    path = f"/{script}-{uuid.uuid4().hex[:6]}"
    jwks.documents[path] = script
    broken, healthy = ec_key(), ec_key()
    broken_id = _register(server, tmp_path, uri=jwks.uri(path))
    healthy_id = _register(server, tmp_path, keys=[public_jwk(healthy)])
    token_endpoint = f"{server.base_url}/token"
    form = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        waiting = asyncio.create_task(
            http.post(
                TOKEN_ROUTE,
                data={**form, "client_assertion": sign(broken, "ES256", broken_id, token_endpoint)},
            )
        )
        await wait_for(lambda: jwks.hits.get(path), timeout=10, message="the jwks_uri was never fetched")
        # While the server waits on the broken jwks_uri, another client is served.
        other = await http.post(
            TOKEN_ROUTE, data={**form, "client_assertion": sign(healthy, "ES256", healthy_id, token_endpoint)}
        )
        assert other.status_code == 200, other.text
        if script == "hang":
            assert not waiting.done()
        _refused(await waiting, description)
