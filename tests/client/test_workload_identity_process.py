"""The client kit as a pod uses it: a projected service-account token file (re-read for each request, as
the kubelet replaces it) is the client assertion, against a real ``authserver serve`` that trusts an
emulated cluster issuer (``tests.support.cluster_issuer``); the tokens it gets verify with the kit's own
verifier, and a token file the kubelet rotated is what the next request sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from authyard_client import AsyncTokenSource, ClientSettings, TokenVerifier
from harness.authserver import AuthServer
from tests.conftest import server_process
from tests.support.client_kit import API
from tests.support.cluster_issuer import ClusterIssuer, serving_cluster_issuer

NAMESPACE = "shop"
POD_TOKEN = "pod-token-" + "b" * 40


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterIssuer]:
    with serving_cluster_issuer({POD_TOKEN}) as served:
        yield served


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, cluster: ClusterIssuer
) -> Iterator[AuthServer]:
    folder = tmp_path_factory.mktemp("trusted")
    (folder / "token").write_text(POD_TOKEN)
    trusted = {"name": "kubernetes", "issuer": cluster.issuer, "bearer_token_file": str(folder / "token")}
    issuers = {"issuers": [trusted]}
    (folder / "issuers.json").write_text(json.dumps(issuers))
    with server_process(
        "sqlite", request, AUTHSERVER_TRUSTED_ISSUERS_FILE=str(folder / "issuers.json")
    ) as started:
        yield started


async def test_a_pod_gets_tokens_with_its_projected_service_account_token(
    server: AuthServer, cluster: ClusterIssuer, tmp_path: Path
) -> None:
    created = json.loads(
        server.cli(
            "clients", "create", "--name", "orders workload", "--grant-type", "client_credentials",
            "--scope", "orders.read", "--audience", API,
            "--token-endpoint-auth-method", "workload_identity", "--workload-issuer", "kubernetes",
            "--workload-subject", f"system:serviceaccount:{NAMESPACE}:orders",
        ).stdout
    )  # fmt: skip
    token_file = tmp_path / "token"
    token_file.write_text(cluster.token(NAMESPACE, "orders", server.issuer) + "\n")
    settings = ClientSettings(created["client_id"], issuer=server.issuer, scope="orders.read")
    source = AsyncTokenSource.from_settings(
        settings, "workload_identity", service_account_token_file=token_file
    )
    verifier = TokenVerifier(server.issuer, audience=API)
    async with source:
        first = await source.token()
        verified = await verifier.verify(first, required_scopes=("orders.read",))
        assert verified.claims["client_id"] == created["client_id"]
        # The kubelet rotates the file (the old token would still be valid): the next token request sends
        # the new projected token, and works.
        token_file.write_text(cluster.token(NAMESPACE, "orders", server.issuer))
        source.invalidate(first)
        second = await source.token()
        assert second != first
        await verifier.verify(second)
    await verifier.aclose()
