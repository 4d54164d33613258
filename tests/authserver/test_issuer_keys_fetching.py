"""Trusted issuers: the AUTHSERVER_TRUSTED_ISSUERS_FILE checks at startup, and fetching an issuer's keys
(``web/issuer_keys.py``) from an emulated cluster issuer on loopback: discovery (its issuer checked), the
JWKS, the bearer token read again for each fetch, the cache and its refresh on an unknown kid, failures
remembered, and the fetch metric."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from authserver.config import SettingsError, TrustedIssuerConfig, load_settings
from authserver.protocol.client_assertion import ClientKeysUnavailable
from authserver.protocol.models import Client, ClientType, TokenEndpointAuthMethod
from authserver.protocol.trusted_issuers import TrustedIssuer
from authserver.web.client_jwks import ClientKeySource
from authserver.web.issuer_keys import IssuerKeySource
from tests.support.client_assertions import ec_key, public_jwk
from tests.support.cluster_issuer import DISCOVERY_PATH, JWKS_PATH, ClusterIssuer, serving_cluster_issuer
from tests.support.jwks_server import serving_jwks
from tests.support.tls import server_context

POD_TOKEN = "the-servers-own-pod-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cluster() -> Iterator[ClusterIssuer]:
    with serving_cluster_issuer({POD_TOKEN}) as served:
        yield served


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(POD_TOKEN + "\n")
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Sources:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.made: list[IssuerKeySource] = []

    def __call__(self, name: str = "", **fields: Any) -> tuple[IssuerKeySource, TrustedIssuer]:
        name = name or f"c-{uuid.uuid4().hex[:8]}"
        config = TrustedIssuerConfig(name=name, **fields)
        source = IssuerKeySource([config], timeout=2, cache_seconds=300, refresh_interval=5, clock=self.clock)
        self.made.append(source)
        return source, TrustedIssuer(name, config.issuer, ("https://auth.example.com",))


@pytest.fixture
async def sources(clock: Clock) -> AsyncIterator[Sources]:
    made = Sources(clock)
    yield made
    for source in made.made:
        await source.close()


def _fetches(name: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "authserver_trusted_issuer_fetches_total", {"issuer": name, "outcome": outcome}
    )
    return value or 0.0


async def test_discovery_then_the_jwks_with_the_pods_token_cached(
    cluster: ClusterIssuer, token_file: Path, sources: Sources
) -> None:
    source, issuer = sources(issuer=cluster.issuer, bearer_token_file=token_file)
    keys = await source(issuer, False)
    assert [key["kid"] for key in keys] == [cluster.signing_kid]
    assert cluster.hits == {DISCOVERY_PATH: 1, JWKS_PATH: 1}
    assert cluster.authorizations == [f"Bearer {POD_TOKEN}"] * 2
    await source(issuer, False)
    await source(issuer, True)  # a refresh within the interval is declined
    assert cluster.hits == {DISCOVERY_PATH: 1, JWKS_PATH: 1}
    assert _fetches(issuer.name, "ok") == 1


async def test_an_unknown_kid_refetches_at_most_once_per_interval(
    cluster: ClusterIssuer, token_file: Path, sources: Sources, clock: Clock
) -> None:
    source, issuer = sources(issuer=cluster.issuer, bearer_token_file=token_file)
    await source(issuer, False)
    new_kid = cluster.rotate()
    clock.now += 6
    assert await source(issuer, False) and cluster.hits[JWKS_PATH] == 1  # cached: no refresh asked
    keys = await source(issuer, True)
    assert new_kid in [key["kid"] for key in keys] and cluster.hits[JWKS_PATH] == 2
    await source(issuer, True)
    assert cluster.hits[JWKS_PATH] == 2


async def test_the_bearer_token_file_is_read_for_each_fetch(
    cluster: ClusterIssuer, token_file: Path, sources: Sources, clock: Clock
) -> None:
    source, issuer = sources(issuer=cluster.issuer, bearer_token_file=token_file)
    await source(issuer, False)
    await asyncio.to_thread(token_file.write_text, "rotated-by-the-kubelet")
    cluster.accepted_tokens = {"rotated-by-the-kubelet"}
    clock.now += 6
    await source(issuer, True)
    assert cluster.authorizations[-1] == "Bearer rotated-by-the-kubelet"


async def test_without_the_token_the_api_server_refuses_and_the_failure_is_remembered(
    cluster: ClusterIssuer, sources: Sources, clock: Clock
) -> None:
    source, issuer = sources(issuer=cluster.issuer)
    with pytest.raises(ClientKeysUnavailable, match="its discovery document answered HTTP 401"):
        await source(issuer, False)
    with pytest.raises(ClientKeysUnavailable, match="HTTP 401"):
        await source(issuer, True)
    assert cluster.hits == {DISCOVERY_PATH: 1}  # remembered for the refresh interval
    assert cluster.authorizations == [None]
    assert _fetches(issuer.name, "http_status") == 1
    clock.now += 6
    cluster.accepted_tokens = set()  # anonymous discovery allowed now
    assert await source(issuer, False)


async def test_a_discovery_document_naming_another_issuer_is_refused(
    cluster: ClusterIssuer, token_file: Path, sources: Sources
) -> None:
    """OIDC Discovery §4.3: the document's issuer must be exactly the one it was fetched for."""
    cluster.issuer_in_document = "https://evil.example.com"
    source, issuer = sources(issuer=cluster.issuer, bearer_token_file=token_file)
    with pytest.raises(ClientKeysUnavailable, match="names another issuer"):
        await source(issuer, False)
    assert JWKS_PATH not in cluster.hits
    assert _fetches(issuer.name, "invalid") == 1


async def test_a_configured_jwks_uri_skips_discovery(
    cluster: ClusterIssuer, token_file: Path, sources: Sources
) -> None:
    source, issuer = sources(
        issuer=cluster.issuer, jwks_uri=f"{cluster.issuer}{JWKS_PATH}", bearer_token_file=token_file
    )
    assert await source(issuer, False)
    assert cluster.hits == {JWKS_PATH: 1}


async def test_an_unreachable_issuer_is_a_reason_not_an_error(sources: Sources) -> None:
    source, issuer = sources(issuer="http://127.0.0.1:1")
    with pytest.raises(ClientKeysUnavailable, match="could not be fetched"):
        await source(issuer, False)


async def test_an_issuer_behind_a_private_ca_needs_its_ca_file(tmp_path: Path, sources: Sources) -> None:
    """The cluster's API server presents a certificate of the cluster CA: trusted only with ca_file."""
    tls, ca = server_context(tmp_path)
    with serving_cluster_issuer(tls=tls) as cluster:
        untrusting, issuer = sources(issuer=cluster.issuer)
        with pytest.raises(ClientKeysUnavailable, match="could not be fetched"):
            await untrusting(issuer, False)
        trusting, issuer = sources(issuer=cluster.issuer, ca_file=ca)
        keys = await trusting(issuer, False)
    assert [key["kid"] for key in keys] == [cluster.signing_kid]


async def test_a_client_jwks_uri_behind_a_private_ca_needs_the_ca_file_setting(tmp_path: Path) -> None:
    """AUTHSERVER_CLIENT_JWKS_CA_FILE: a private_key_jwt client's jwks_uri served with a private CA."""
    tls, ca = server_context(tmp_path)
    with serving_jwks(tls) as served:
        served.documents["/jwks"] = {"keys": [public_jwk(ec_key(), "k1")]}
        client = Client(
            client_id="pk-tls",
            name="signer",
            client_type=ClientType.CONFIDENTIAL,
            grant_types=("client_credentials",),
            scopes=(),
            token_endpoint_auth_method=TokenEndpointAuthMethod.PRIVATE_KEY_JWT,
            jwks_uri=served.uri("/jwks"),
        )
        for ca_file, expected in ((None, None), (ca, "k1")):
            source = ClientKeySource(ca_file=ca_file)
            try:
                if expected is None:
                    with pytest.raises(ClientKeysUnavailable, match="could not be fetched"):
                        await source(client, False)
                else:
                    assert [key["kid"] for key in await source(client, False)] == [expected]
            finally:
                await source.close()


# The file, checked at startup


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, document: object) -> str:
    path = tmp_path / f"issuers-{uuid.uuid4().hex[:6]}.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    monkeypatch.setenv("AUTHSERVER_TRUSTED_ISSUERS_FILE", str(path))
    try:
        settings = load_settings()
    except SettingsError as error:
        return str(error)
    return repr(settings.trusted_issuers)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "AUTHSERVER_TRUSTED_ISSUERS_FILE"),
        ({"issuers": [{"name": "k"}]}, "issuers.0.issuer: Field required"),
        ({"issuers": [{"name": "k", "issuer": "http://cluster.example.com"}]}, "issuers.0.issuer"),
        ({"issuers": [{"name": "K8s", "issuer": "https://a.example.com"}]}, "issuers.0.name"),
        (
            {"issuers": [{"name": "k", "issuer": "https://a.example.com", "audience": "x"}]},
            "issuers.0.audience",
        ),
        (
            {"issuers": [{"name": "k", "issuer": "https://a.example.com", "audiences": [""]}]},
            "issuers.0.audiences",
        ),
        (
            {"issuers": [{"name": "k", "issuer": "https://a.example.com", "ca_file": "/nonexistent.pem"}]},
            "issuers.0.ca_file",
        ),
        (
            {"issuers": [{"name": "k", "issuer": "https://a.example.com", "bearer_token_file": "/no/token"}]},
            "issuers.0.bearer_token_file",
        ),
        (
            {
                "issuers": [
                    {"name": "k", "issuer": "https://a.example.com"},
                    {"name": "k", "issuer": "https://b.example.com"},
                ]
            },
            "two entries have the same name",
        ),
    ],
)
def test_a_broken_file_stops_the_start_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, document: object, message: str
) -> None:
    error = _load(tmp_path, monkeypatch, document)
    assert error.startswith("invalid configuration: AUTHSERVER_TRUSTED_ISSUERS_FILE"), error
    assert message in error


def test_a_good_file_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token_file: Path) -> None:
    document = {
        "issuers": [
            {
                "name": "kubernetes",
                "issuer": "https://kubernetes.default.svc.cluster.local",
                "bearer_token_file": str(token_file),
            },
            {
                "name": "ci",
                "issuer": "https://token.actions.example.com",
                "audiences": ["https://auth.example"],
            },
        ]
    }
    loaded = _load(tmp_path, monkeypatch, document)
    assert "name='kubernetes'" in loaded and "audiences=('https://auth.example',)" in loaded
    monkeypatch.setenv("AUTHSERVER_TRUSTED_ISSUERS_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings()
