"""The client kit's resource-server side against a real ``authserver serve --workers 2``: the verifier
accepts the server's access tokens and refuses each wrong one with its RFC 6750 code, sees a signing-key
rotation through its refresh on an unknown kid (rate-limited), and the Starlette/FastAPI dependency and the
RFC 9728 document work as a client meets them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

from authyard_client import (
    AsyncTokenSource,
    BearerAuth,
    ClientSettings,
    InsufficientScope,
    InvalidToken,
    TokenVerifier,
    VerifiedToken,
    VerifierUnavailable,
)
from authyard_client.resource_server import ProtectedResource, protected_resource_route, require_scopes
from harness.authserver import AuthServer
from harness.polling import wait_for
from tests.support.client_assertions import ec_key
from tests.support.client_kit import (
    API,
    Recorder,
    async_recording_client,
    forged,
    register_service,
    server_key,
)

JWKS_ROUTE = "/.well-known/jwks.json"


@pytest.fixture(scope="module")
def service(server: AuthServer) -> dict[str, Any]:
    return register_service(server, scopes=("orders.read", "orders.write"))


def issue(server: AuthServer, client: dict[str, Any], scope: str = "orders.read") -> str:
    response = httpx.post(
        f"{server.issuer}/token",
        data={"grant_type": "client_credentials", "scope": scope, "resource": API},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_accepts_the_servers_access_tokens(
    server: AuthServer, service: dict[str, Any], verifier: TokenVerifier
) -> None:
    verified = await verifier.verify(issue(server, service, "orders.read orders.write"), ["orders.write"])
    assert verified.client_id == service["client_id"] == verified.subject
    assert verified.scopes == {"orders.read", "orders.write"}
    assert verified.claims["iss"] == server.issuer and verified.claims["aud"] == API


async def test_refuses_each_wrong_token_with_its_rfc_6750_code(
    server: AuthServer, service: dict[str, Any], verifier: TokenVerifier
) -> None:
    real = issue(server, service)
    kid = jwt.get_unverified_header(real)["kid"]
    now = int(time.time())
    public = json.dumps((await _published(server))[kid]).encode()
    cases = {
        "another audience": (forged(server, aud="https://elsewhere.example.test"), "not meant for this"),
        "another issuer": (forged(server, iss="https://evil.example.test"), "another issuer"),
        "expired": (forged(server, exp=now - 60, iat=now - 400, nbf=now - 400), "expired"),
        "not valid yet": (forged(server, nbf=now + 300), "not valid yet"),
        "an ID token's typ": (forged(server, header={"typ": "JWT"}), "typ must be at+jwt"),
        "no typ": (_resigned(server, real, typ=None), "typ must be at+jwt"),
        "no client_id": (forged(server, client_id=None), "no client_id claim"),
        "alg none": (_unsigned(real), "algorithm 'none'"),
        "HMAC with the public key": (_hmac_with(public, real), "algorithm 'HS256'"),
        "a tampered payload": (_tampered(real), "signature does not verify"),
        "not a JWT": ("opaque-value", "not a JWT"),
    }
    for case, (token, message) in cases.items():
        with pytest.raises(InvalidToken) as refused:
            await verifier.verify(token)
        assert refused.value.error == "invalid_token" and refused.value.status_code == 401, case
        assert message in refused.value.description, (case, refused.value.description)
    assert (await verifier.verify(forged(server, header={"typ": "application/AT+JWT"}))).subject
    with pytest.raises(InsufficientScope) as lacking:
        await verifier.verify(real, ["orders.read", "orders.write"])
    assert lacking.value.error == "insufficient_scope" and lacking.value.status_code == 403
    assert lacking.value.required == ("orders.read", "orders.write")
    other = TokenVerifier(server.issuer, "https://elsewhere.example.test")
    try:
        with pytest.raises(InvalidToken, match="not meant for this resource"):
            await other.verify(real)
    finally:
        await other.aclose()


async def test_a_signing_key_rotation_is_seen_through_one_jwks_refresh(
    server: AuthServer, service: dict[str, Any]
) -> None:
    """The new active key was published after the verifier cached the JWKS (two rotations: the first
    publishes it as the next key): the first token it signs makes the verifier fetch the JWKS once more.
    A made-up kid right after does not cause another fetch (at most one per interval)."""
    now = [1000.0]
    recorder = Recorder()
    verifier = TokenVerifier(server.issuer, API, http=async_recording_client(recorder), clock=lambda: now[0])
    try:
        old = issue(server, service)
        await verifier.verify(old)
        assert verifier.jwks_fetches == 1 and len(recorder.to(JWKS_ROUTE)) == 1
        cached = set(await _published(server))
        server.rotate_keys()
        new_kid = server.rotate_keys()["active_kid"]
        assert new_kid not in cached

        def signed_with_the_new_key() -> str | None:
            token = issue(server, service)
            return token if jwt.get_unverified_header(token)["kid"] == new_kid else None

        new = await wait_for(signed_with_the_new_key, timeout=20, message="no token signed with the new key")
        now[0] += 11  # past the refresh interval since the first fetch
        assert (await verifier.verify(new)).client_id == service["client_id"]
        assert verifier.jwks_fetches == 2 and len(recorder.to(JWKS_ROUTE)) == 2
        await verifier.verify(old)  # the retired key stays published while its tokens live

        unknown = jwt.encode(
            {"iss": server.issuer}, ec_key(), algorithm="ES256", headers={"kid": "made-up", "typ": "at+jwt"}
        )
        for _ in range(5):
            with pytest.raises(InvalidToken, match="unknown key"):
                await verifier.verify(unknown)
        assert len(recorder.to(JWKS_ROUTE)) == 2, "unknown kids within the interval fetch nothing"
        now[0] += 11
        with pytest.raises(InvalidToken, match="unknown key"):
            await verifier.verify(unknown)
        assert len(recorder.to(JWKS_ROUTE)) == 3
    finally:
        await verifier.aclose()


async def test_no_reachable_jwks_is_unavailability_not_a_bad_token(server: AuthServer) -> None:
    verifier = TokenVerifier(server.issuer, API, jwks_uri="http://127.0.0.1:9/jwks")
    try:
        with pytest.raises(VerifierUnavailable):
            await verifier.verify(forged(server))
        transport = httpx.ASGITransport(app=resource_app(verifier, server))
        async with httpx.AsyncClient(transport=transport, base_url=API) as api:
            answer = await api.get("/orders", headers={"Authorization": f"Bearer {forged(server)}"})
        assert answer.status_code == 503 and "www-authenticate" not in answer.headers
    finally:
        await verifier.aclose()


def resource_app(verifier: TokenVerifier, server: AuthServer) -> FastAPI:
    resource = ProtectedResource(
        API, (server.issuer,), scopes_supported=("orders.read", "orders.write"), resource_name="Orders"
    )
    app = FastAPI()
    app.router.routes.append(protected_resource_route(resource))

    reading = require_scopes(verifier, "orders.read", resource=resource)
    writing = require_scopes(verifier, "orders.write", resource=resource)

    @app.get("/orders")
    async def orders(token: VerifiedToken = Depends(reading)) -> dict[str, str]:
        return {"client_id": token.client_id}

    @app.post("/orders")
    async def place(token: VerifiedToken = Depends(writing)) -> dict[str, str]:
        return {"placed_by": token.client_id}

    return app


async def test_the_fastapi_dependency_answers_with_rfc_6750_challenges(
    server: AuthServer, service: dict[str, Any], verifier: TokenVerifier
) -> None:
    metadata_url = f"{API}/.well-known/oauth-protected-resource"
    transport = httpx.ASGITransport(app=resource_app(verifier, server))
    async with httpx.AsyncClient(transport=transport, base_url=API) as api:
        missing = await api.get("/orders")
        assert missing.status_code == 401
        # RFC 6750 §3.1: no error code when the request carried no token; RFC 9728 §5.1: where to look.
        assert missing.headers["www-authenticate"] == (
            f'Bearer scope="orders.read", resource_metadata="{metadata_url}"'
        )
        token = issue(server, service)
        ok = await api.get("/orders", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json() == {"client_id": service["client_id"]}
        assert (await api.get("/orders", headers={"Authorization": f"bearer {token}"})).status_code == 200

        forbidden = await api.post("/orders", headers={"Authorization": f"Bearer {token}"})
        assert forbidden.status_code == 403
        challenge = forbidden.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="insufficient_scope", error_description="')
        assert 'scope="orders.write"' in challenge and f'resource_metadata="{metadata_url}"' in challenge

        expired = forged(server, exp=int(time.time()) - 60, iat=int(time.time()) - 400)
        bad = await api.get("/orders", headers={"Authorization": f"Bearer {expired}"})
        assert bad.status_code == 401
        assert bad.headers["www-authenticate"] == (
            'Bearer error="invalid_token", error_description="the access token has expired", '
            f'resource_metadata="{metadata_url}"'
        )
        malformed = await api.get("/orders", headers={"Authorization": "Bearer "})
        assert malformed.status_code == 400
        assert malformed.headers["www-authenticate"].startswith('Bearer error="invalid_request"')
        other_scheme = await api.get("/orders", headers={"Authorization": "Basic Zm9vOmJhcg=="})
        assert other_scheme.status_code == 401 and "error=" not in other_scheme.headers["www-authenticate"]


async def test_a_client_finds_the_authorization_server_from_the_challenge_and_gets_in(
    server: AuthServer, service: dict[str, Any], verifier: TokenVerifier
) -> None:
    """RFC 9728: from the 401's resource_metadata to the document, from its authorization_servers to a
    token source, then the request succeeds."""
    transport = httpx.ASGITransport(app=resource_app(verifier, server))
    async with httpx.AsyncClient(transport=transport, base_url=API) as api:
        challenge = (await api.get("/orders")).headers["www-authenticate"]
        metadata_url = challenge.split('resource_metadata="')[1].split('"')[0]
        document = (await api.get(metadata_url)).json()
        assert document == {
            "resource": API,
            "authorization_servers": [server.issuer],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["orders.read", "orders.write"],
            "resource_name": "Orders",
        }
        settings = ClientSettings(
            service["client_id"],
            issuer=document["authorization_servers"][0],
            scope="orders.read",
            audiences=(document["resource"],),
            client_secret=service["client_secret"],
        )
        async with AsyncTokenSource.from_settings(settings) as source:
            api.auth = BearerAuth(source)
            answer = await api.get("/orders")
        assert answer.status_code == 200 and answer.json() == {"client_id": service["client_id"]}


def test_the_metadata_path_follows_rfc_9728_for_a_resource_with_a_path() -> None:
    resource = ProtectedResource("https://api.example.test/tenant/a", ("https://id.example.test",))
    # RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
    assert resource.metadata_url == "https://api.example.test/.well-known/oauth-protected-resource/tenant/a"


async def _published(server: AuthServer) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        keys = (await http.get(f"{server.issuer}{JWKS_ROUTE}")).json()["keys"]
    return {key["kid"]: key for key in keys}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, Any], str]:
    header = jwt.get_unverified_header(token)
    return header, token.split(".")[1]


def _unsigned(token: str) -> str:
    header, payload = _parts(token)
    return f"{_b64(json.dumps({**header, 'alg': 'none'}).encode())}.{payload}."


def _hmac_with(public_key: bytes, token: str) -> str:
    """The algorithm-confusion attack: HS256 keyed with the published public key."""
    header, payload = _parts(token)
    signing_input = f"{_b64(json.dumps({**header, 'alg': 'HS256'}).encode())}.{payload}"
    signature = hmac.new(public_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "orders.read orders.write admin"
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def _resigned(server: AuthServer, token: str, typ: str | None) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    if typ is None:
        kid, key, alg = server_key(server)
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": None})
    return forged(server, header={"typ": typ}, **claims)
