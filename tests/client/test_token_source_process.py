"""The client kit's token source against a real ``authserver serve --workers 2``: each client
authentication method, one token request however many callers wait, the operator's Secret read as mounted,
the service-account token file re-read for each request, and the httpx Auth's retry on 401."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authyard_client import (
    JWT_BEARER,
    AsyncTokenSource,
    BearerAuth,
    ClientSettings,
    PrivateKeyJwt,
    RefreshPolicy,
    TokenRequestError,
    TokenSource,
    TokenUnavailable,
    TokenVerifier,
)
from harness.authserver import ADMIN_TOKEN, AuthServer
from harness.polling import wait_for
from tests.support.client_assertions import ec_key, private_pem, public_jwk, rsa_key
from tests.support.client_kit import (
    API,
    Recorder,
    async_recording_client,
    recording_client,
    register_service,
    secret_settings,
    write_secret_dir,
)

TOKEN_ROUTE = "/token"


def token_requests_counted_by_server(server: AuthServer) -> float:
    return sum(server.requests_by_worker(TOKEN_ROUTE).values())


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_a_secret_client_from_the_operators_secret_gets_tokens_with_either_method(
    server: AuthServer, verifier: TokenVerifier, tmp_path: Path, method: str
) -> None:
    client = register_service(server)
    directory = write_secret_dir(tmp_path / "secret", server, client)  # issuer only: found by discovery
    recorder = Recorder()
    with TokenSource.from_secret_dir(directory, method, http=recording_client(recorder)) as source:
        token = source.token()
    verified = await verifier.verify(token, ["orders.read"])
    assert verified.client_id == client["client_id"] and verified.claims["aud"] == API
    (sent,) = recorder.to(TOKEN_ROUTE)
    assert sent.form["grant_type"] == ["client_credentials"] and sent.form["resource"] == [API]
    assert sent.form["scope"] == ["orders.read"]
    if method == "client_secret_basic":
        scheme, _, encoded = sent.headers["authorization"].partition(" ")
        assert scheme == "Basic" and "client_secret" not in sent.form
        assert base64.b64decode(encoded).decode() == f"{client['client_id']}:{client['client_secret']}"
    else:
        assert "authorization" not in sent.headers
        assert sent.form["client_secret"] == [client["client_secret"]]


async def test_a_rotated_secret_written_into_the_mounted_secret_is_used_without_a_restart(
    server: AuthServer, tmp_path: Path
) -> None:
    """The kubelet updates a mounted Secret in place when the operator rotates the client secret: the next
    token request reads the new one."""
    client = register_service(server)
    directory = write_secret_dir(tmp_path / "secret", server, client)
    recorder = Recorder()
    policy = RefreshPolicy(backoff_initial=0.1, backoff_max=0.2)
    async with AsyncTokenSource.from_secret_dir(
        directory, policy=policy, http=async_recording_client(recorder)
    ) as source:
        first = await source.token()
        async with httpx.AsyncClient(timeout=10) as admin:
            rotated = await admin.post(
                f"{server.issuer}/admin/clients/{client['client_id']}/rotate-secret",
                json={"grace_period": "0s"},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["client_secret"]
        server.seen_secrets.add(new_secret)
        (directory / "client_secret").write_text(new_secret)
        source.invalidate(first)

        async def fresh() -> str | None:  # the other worker trusts its cached client for a moment
            try:
                token = await source.token()
            except TokenUnavailable:
                return None
            return token if token != first else None

        await wait_for(fresh, timeout=10)
    basic = [sent.headers["authorization"].split()[1] for sent in recorder.to(TOKEN_ROUTE)]
    secrets = [base64.b64decode(value).decode().partition(":")[2] for value in basic]
    assert secrets[0] == client["client_secret"] and set(secrets[1:]) == {new_secret}


async def test_private_key_jwt_signs_a_fresh_assertion_for_each_request(
    server: AuthServer, verifier: TokenVerifier, tmp_path: Path
) -> None:
    """A second request with the same assertion would be refused as a replay (RFC 7523 §3): each request
    carries a new jti, aud = the token endpoint, iss = sub = client_id."""
    for private, kid in ((rsa_key(7), "rsa-1"), (ec_key(), "ec-1")):
        jwks = tmp_path / f"{kid}.json"
        jwks.write_text(json.dumps({"keys": [public_jwk(private, kid)]}))
        created = json.loads(
            server.cli(
                "clients", "create", "--name", "signer", "--grant-type", "client_credentials",
                "--scope", "orders.read", "--audience", API,
                "--token-endpoint-auth-method", "private_key_jwt", "--jwks-file", str(jwks),
            ).stdout
        )  # fmt: skip
        key_file = tmp_path / f"{kid}.pem"
        key_file.write_bytes(private_pem(private))
        settings = ClientSettings(created["client_id"], issuer=server.issuer, scope="orders.read")
        recorder = Recorder()
        async with AsyncTokenSource.from_settings(
            settings,
            private_key_file=key_file,
            kid=kid,
            resources=[API],
            http=async_recording_client(recorder),
        ) as source:
            assert isinstance(source.auth, PrivateKeyJwt)
            first = await source.token()
            source.invalidate(first)
            second = await source.token()
        assert first != second
        for token in (first, second):
            assert (await verifier.verify(token)).client_id == created["client_id"]
        assertions = [sent.form["client_assertion"][0] for sent in recorder.to(TOKEN_ROUTE)]
        assert len(assertions) == 2
        claims = [jwt.decode(value, options={"verify_signature": False}) for value in assertions]
        assert claims[0]["jti"] != claims[1]["jti"]
        for claim in claims:
            assert claim["iss"] == claim["sub"] == created["client_id"]
            assert claim["aud"] == f"{server.issuer}/token" and claim["exp"] - claim["iat"] <= 60
        assert {jwt.get_unverified_header(value)["kid"] for value in assertions} == {kid}
        assert recorder.to(TOKEN_ROUTE)[0].form["client_assertion_type"] == [JWT_BEARER]


class Clock:
    """The source's view of time, moved forward by a test (the server's tokens live on real time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


async def test_fifty_async_callers_make_one_token_request_at_each_refresh(
    server: AuthServer,
) -> None:
    client = register_service(server)
    clock, recorder = Clock(), Recorder()
    source = AsyncTokenSource.from_settings(
        secret_settings(server, client),
        http=async_recording_client(recorder),
        clock=clock,
    )
    async with source:
        before = token_requests_counted_by_server(server)
        # No token yet: all fifty wait for the same request.
        first = set(await asyncio.gather(*(source.token() for _ in range(50))))
        assert len(first) == 1 and len(recorder.to(TOKEN_ROUTE)) == 1
        lifetime = (await source.access_token()).lifetime
        # Past any jittered refresh point (at most 0.85 of the life), before the last tenth.
        clock.offset = 0.87 * lifetime
        served = set(await asyncio.gather(*(source.token() for _ in range(50))))
        assert served == first, "callers get the still-valid token at once while the refresh runs"
        await wait_for(lambda: source.stats.count("proactive", "success") == 1, timeout=10)
        fresh = set(await asyncio.gather(*(source.token() for _ in range(50))))
        assert len(fresh) == 1 and fresh != first
        assert len(recorder.to(TOKEN_ROUTE)) == 2
        assert source.stats.count() == 2 and source.stats.count("initial", "success") == 1
        assert source.stats.proactive_ratio() == 1.0
    await wait_for(lambda: token_requests_counted_by_server(server) - before == 2, timeout=10)


def test_fifty_threads_make_one_token_request_at_each_refresh(server: AuthServer) -> None:
    client = register_service(server)
    clock, recorder = Clock(), Recorder()
    settings = secret_settings(server, client)
    with (
        TokenSource.from_settings(settings, http=recording_client(recorder), clock=clock) as source,
        ThreadPoolExecutor(max_workers=50) as pool,
    ):
        first = set(pool.map(lambda _: source.token(), range(50)))
        assert len(first) == 1 and len(recorder.to(TOKEN_ROUTE)) == 1
        clock.offset = 0.87 * source.access_token().lifetime
        during = set(pool.map(lambda _: source.token(), range(50)))
        after = set(pool.map(lambda _: source.token(), range(50)))
    # The one caller that refreshed got the new token; the others the old one, never a third.
    assert first <= during and len(during) <= 2
    (new,) = after - first
    assert during <= first | {new}
    assert len(recorder.to(TOKEN_ROUTE)) == 2
    assert source.stats.count("proactive", "success") == 1 and source.stats.count() == 2
    labels = {"client_id": client["client_id"], "outcome": "success"}
    refreshes = "authyard_client_token_refreshes_total"
    assert REGISTRY.get_sample_value(refreshes, {**labels, "kind": "initial"}) == 1
    assert REGISTRY.get_sample_value(refreshes, {**labels, "kind": "proactive"}) == 1
    life_used = REGISTRY.get_sample_value(
        "authyard_client_token_life_used_at_refresh_ratio_sum", {"client_id": client["client_id"]}
    )
    assert life_used is not None and 0.87 <= life_used < 0.9


async def test_the_service_account_token_file_is_read_for_each_request(
    server: AuthServer, tmp_path: Path
) -> None:
    """Workload identity: the projected token is sent as the client assertion, read again for every
    request (the kubelet replaces it). This server trusts no issuer, so it answers invalid_client, which
    the source reports as the cause of TokenUnavailable."""
    token_file = tmp_path / "token"
    projected = [_projected_token("first"), _projected_token("second")]
    token_file.write_text(projected[0] + "\n")
    recorder = Recorder()
    settings = ClientSettings("orders-workload", token_endpoint=f"{server.issuer}/token")
    policy = RefreshPolicy(backoff_initial=0.05, backoff_max=0.1)
    async with AsyncTokenSource.from_settings(
        settings, "workload_identity", service_account_token_file=token_file, policy=policy,
        http=async_recording_client(recorder),
    ) as source:  # fmt: skip
        with pytest.raises(TokenUnavailable) as refused:
            await source.token()
        cause = refused.value.__cause__
        assert isinstance(cause, TokenRequestError) and cause.error == "invalid_client"
        assert "no token has been obtained" in str(refused.value)
        token_file.write_text(projected[1])

        async def sent_the_second() -> bool:
            with pytest.raises(TokenUnavailable):
                await source.token()
            return len(recorder.to(TOKEN_ROUTE)) >= 2

        await wait_for(sent_the_second, timeout=10)
    forms = [sent.form for sent in recorder.to(TOKEN_ROUTE)]
    assert [form["client_assertion"] for form in forms[:2]] == [[projected[0]], [projected[1]]]
    assert all(form["client_assertion_type"] == [JWT_BEARER] for form in forms)
    assert all(form["client_id"] == ["orders-workload"] for form in forms)
    assert source.stats.count("initial", "failure") == 1 and source.stats.count("emergency", "failure") >= 1


def _projected_token(marker: str) -> str:
    """Shaped like a projected service-account token (the kubernetes.io claims), signed by a key the
    server does not trust."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": "system:serviceaccount:shop:orders",
        "aud": ["authyard"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": marker,
        "kubernetes.io": {"namespace": "shop", "serviceaccount": {"name": "orders", "uid": marker}},
    }
    return jwt.encode(claims, ec_key(), algorithm="ES256", headers={"kid": "cluster"})


async def test_bearer_auth_retries_once_with_a_fresh_token_after_a_401(
    server: AuthServer, verifier: TokenVerifier
) -> None:
    """A resource server that stops accepting a token (it learned of a revocation) answers 401: the Auth
    gets one new token and repeats the request, body included; a second 401 is returned as it is."""
    refused_jtis: set[str] = set()
    refuse_all = False

    async def orders(request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        claims = (await verifier.verify(token)).claims
        if refuse_all or claims["jti"] in refused_jtis:
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return JSONResponse({"jti": claims["jti"], "body": (await request.body()).decode()})

    app = Starlette(routes=[Route("/orders", orders, methods=["POST"])])
    client = register_service(server)
    settings = secret_settings(server, client)
    async with (
        AsyncTokenSource.from_settings(settings, resources=[API]) as source,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=API, auth=BearerAuth(source)
        ) as api,
    ):
        first = await api.post("/orders", content=b"one")
        assert first.status_code == 200 and first.json()["body"] == "one"
        refused_jtis.add(first.json()["jti"])
        second = await api.post("/orders", content=b"two")
        assert second.status_code == 200 and second.json() == {"jti": second.json()["jti"], "body": "two"}
        assert second.json()["jti"] != first.json()["jti"]
        assert source.stats.count("rejected", "success") == 1
        refuse_all = True
        third = await api.post("/orders", content=b"three")
        assert third.status_code == 401 and source.stats.count("rejected", "success") == 2
    with pytest.raises(TypeError, match="AsyncTokenSource"):
        unused = httpx.MockTransport(lambda _: httpx.Response(200))
        httpx.Client(auth=BearerAuth(source), transport=unused).get(API)


def test_the_sync_bearer_auth_retries_once_after_a_401(server: AuthServer) -> None:
    """The same retry in a sync httpx.Client (the resource server here is a stand-in that refuses the first
    token it sees; the tokens come from the real server)."""
    client = register_service(server)
    seen: list[tuple[str, bytes]] = []

    def resource(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["authorization"].removeprefix("Bearer "), request.read()))
        return httpx.Response(401 if len(seen) == 1 else 200)

    with (
        TokenSource.from_settings(secret_settings(server, client)) as source,
        httpx.Client(transport=httpx.MockTransport(resource), auth=BearerAuth(source)) as api,
    ):
        assert api.post(f"{API}/orders", content=b"order").status_code == 200
    assert len(seen) == 2 and seen[0][0] != seen[1][0] and seen[0][1] == seen[1][1] == b"order"
    assert source.stats.count("rejected", "success") == 1
