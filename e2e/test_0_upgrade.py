"""`helm upgrade` from the previous chart version to this one, with an AuthServer and an OAuthClient in use.

Two acts, which the e2e workflow's upgrade job runs as two pytest invocations with a build in between (the
images of both versions may share a tag, so this commit's images are loaded only after the first act):

1. The previous commit's chart and images (a checkout named by AUTHYARD_E2E_UPGRADE_FROM, its operator
   image by AUTHYARD_E2E_UPGRADE_FROM_OPERATOR_IMAGE), an AuthServer and an OAuthClient from that commit's
   examples, both Ready, a token from the client's Secret. What must survive the upgrade is recorded: the
   objects' identities and generations, the signing key id, and a SHA-256 of the client secret (never the
   secret itself).
2. This chart's CRDs applied (Helm installs a chart's crds/ but never upgrades them), `helm upgrade` to this
   chart and this commit's images; then the operator has rolled out and a new replica leads, the objects
   are Ready again at their generation, the client's Secret is unchanged, a token is issued with the recorded
   secret and signed with the recorded key; finally a spec change on both objects is reconciled by the new
   operator (observedGeneration current) and the server pods of the previous release are replaced.

Without AUTHYARD_E2E_UPGRADE_FROM the tests skip with that reason (fail under AUTHYARD_E2E_REQUIRE_CLUSTER).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from e2e import support
from e2e.conftest import Cluster, cannot_run

pytestmark = pytest.mark.upgrade

NS = "upgrade"
SERVER, CLIENT = "auth", "orders-api"
OPERATOR_NS = support.OPERATOR_NAMESPACE
OPERATOR_SELECTOR = "app.kubernetes.io/name=authyard-operator"
RECORD = support.ROOT / "test-results" / "e2e-upgrade.json"


@pytest.fixture(scope="module")
def source(cluster: Cluster) -> support.UpgradeSource:
    try:
        found = support.upgrade_source(os.environ)
    except ValueError as error:
        pytest.fail(str(error), pytrace=False)
    if found is None:
        cannot_run(
            f"{support.UPGRADE_FROM} unset: no previous release to upgrade from (the e2e workflow's upgrade "
            "job sets it to a checkout of the previous commit)"
        )
    return found


@pytest.fixture
def cleanup(cluster: Cluster) -> Iterator[None]:
    """After the last act: the objects go while the operator still runs (their finalizers need it)."""
    yield
    if not os.environ.get("AUTHYARD_E2E_KEEP"):
        cluster.delete("oauthclient", CLIENT, NS, wait=True)
        cluster.delete("authserver", SERVER, NS, wait=True)
        cluster.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)
        cluster.uninstall_operator()


def _images(deployment: dict[str, Any]) -> set[str]:
    pod = deployment["spec"]["template"]["spec"]
    return {container["image"] for container in [*pod.get("initContainers", []), *pod["containers"]]}


def _selector(deployment: dict[str, Any]) -> str:
    labels = deployment["spec"]["selector"]["matchLabels"]
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _operator_rolled_out(cluster: Cluster, deployment: dict[str, Any]) -> dict[str, Any]:
    """The operator Deployment rolled out with every running replica on its current image, and one of
    those replicas holding the Lease; returns the Deployment."""
    name = deployment["metadata"]["name"]
    deployment = cluster.wait_rolled_out(name, OPERATOR_NS)
    (image,) = _images(deployment)

    def current_pods() -> set[str] | None:
        pods = cluster.running_pods(OPERATOR_NS, OPERATOR_SELECTOR)
        running = {container["image"] for pod in pods for container in pod["spec"]["containers"]}
        wanted = deployment["spec"]["replicas"]
        return (
            {pod["metadata"]["name"] for pod in pods} if running == {image} and len(pods) == wanted else None
        )

    pods = support.poll(current_pods, timeout=180, what=f"every operator replica runs {image}")
    support.poll(
        lambda: cluster.lease_holder(name, OPERATOR_NS) in pods,
        timeout=120,
        what=f"the Lease held by one of {sorted(pods)}",
    )
    return deployment


def _issue_token(
    cluster: Cluster, data: dict[str, str], audience: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A client_credentials token from the Secret's credentials, verified against the server's JWKS."""
    with cluster.port_forward(f"svc/{SERVER}", 8080, NS) as port:
        response = support.client_credentials_token(
            support.local_url(data["token_endpoint"], port), data["client_id"], data["client_secret"]
        )
        assert response.status_code == 200, response.text
        jwks = httpx.get(support.local_url(data["jwks_uri"], port), timeout=10).json()
    return support.verify_access_token(response.json()["access_token"], jwks, data["issuer"], audience)


def _assert_secret_unchanged(cluster: Cluster, before: dict[str, Any]) -> dict[str, str]:
    secret = cluster.get("secret", before["secret"]["name"], NS)
    assert secret is not None, "the client's Secret is gone"
    data = support.decode_secret(secret)
    assert secret["metadata"]["uid"] == before["secret"]["uid"], "the client's Secret was recreated"
    assert data["client_id"] == before["secret"]["client_id"]
    assert support.fingerprint(data["client_secret"]) == before["secret"]["client_secret_sha256"], (
        "the client secret was regenerated"
    )
    return data


def _other_duration(current: str, choices: tuple[str, str]) -> str:
    return choices[0] if current != choices[0] else choices[1]


def test_the_previous_release_installs_and_serves(cluster: Cluster, source: support.UpgradeSource) -> None:
    assert not cluster.release_history(), (
        f"release {support.RELEASE} is already installed: the previous release needs a cluster without it"
    )
    deployment = cluster.install_operator(source.chart, source.values_files(), source.image_values())
    deployment = _operator_rolled_out(cluster, deployment)
    assert _images(deployment) == {source.operator_image}

    cluster.ensure_namespace(NS)
    server = support.in_namespace(source.example("authserver-embedded.yaml"), NS)
    client = support.pointed_at(support.in_namespace(source.example("oauthclient-m2m.yaml"), NS), SERVER, NS)
    cluster.apply([server])
    cluster.apply([client])
    server_deployment = support.poll(
        lambda: cluster.get("deployment", SERVER, NS), timeout=120, what="the server Deployment rendered"
    )
    assert source.authserver_image in _images(server_deployment), (
        f"the previous operator runs {sorted(_images(server_deployment))}, but the workflow loaded "
        f"{source.authserver_image} for it"
    )

    server = cluster.wait_ready("authserver", SERVER, NS, timeout=420)
    client = cluster.wait_ready("oauthclient", CLIENT, NS, timeout=180)
    secret_name = client["spec"]["secret"]["name"]
    secret = cluster.get("secret", secret_name, NS)
    assert secret is not None
    data = support.decode_secret(secret)
    audience = client["spec"]["audiences"][0]
    header, _ = _issue_token(cluster, data, audience)
    active_kid = server["status"]["signingKeys"]["activeKid"]
    assert header["kid"] == active_kid

    server_deployment = cluster.wait_rolled_out(SERVER, NS)
    server_pods = cluster.running_pods(NS, _selector(server_deployment))
    record = {
        "revision": cluster.release_history()[-1]["revision"],
        "operator_image": source.operator_image,
        "server": {
            "uid": server["metadata"]["uid"],
            "generation": server["metadata"]["generation"],
            "access_token_ttl": server["spec"]["tokens"]["accessTokenTTL"],
            "active_kid": active_kid,
            "pods": sorted(pod["metadata"]["uid"] for pod in server_pods),
        },
        "client": {
            "uid": client["metadata"]["uid"],
            "generation": client["metadata"]["generation"],
            "access_token_ttl": client["spec"]["accessTokenTTL"],
            "audience": audience,
        },
        "secret": {
            "name": secret_name,
            "uid": secret["metadata"]["uid"],
            "client_id": data["client_id"],
            "client_secret_sha256": support.fingerprint(data["client_secret"]),
        },
    }
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(record, indent=2) + "\n")


def test_helm_upgrade_to_this_chart_keeps_everything(
    cluster: Cluster, source: support.UpgradeSource, cleanup: None
) -> None:
    assert RECORD.is_file(), (
        f"{RECORD} missing: test_the_previous_release_installs_and_serves installs the previous release first"
    )
    before = json.loads(RECORD.read_text())
    history = cluster.release_history()
    assert history and history[-1]["revision"] == before["revision"], history
    assert history[-1]["status"] == "deployed", history
    for kind, name, recorded in (
        ("authserver", SERVER, before["server"]),
        ("oauthclient", CLIENT, before["client"]),
    ):
        obj = cluster.get(kind, name, NS)
        assert obj is not None and obj["metadata"]["uid"] == recorded["uid"], (
            f"{kind} {name} is not the recorded one"
        )

    cluster.apply_file(support.CHART / "crds", force_conflicts=True)
    deployment = cluster.install_operator()

    history = cluster.release_history()
    chart_version = yaml.safe_load((support.CHART / "Chart.yaml").read_text())["version"]
    assert history[-1]["revision"] == before["revision"] + 1, history
    assert history[-1]["status"] == "deployed", history
    assert history[-1]["chart"] == f"authyard-operator-{chart_version}", history
    deployment = _operator_rolled_out(cluster, deployment)
    assert _images(deployment) != {before["operator_image"]}, "the upgrade kept the previous operator image"

    # The objects the previous release made are Ready again, their specs untouched by the upgrade.
    server = cluster.wait_ready("authserver", SERVER, NS, timeout=420)
    client = cluster.wait_ready("oauthclient", CLIENT, NS, timeout=180)
    assert server["metadata"]["generation"] == before["server"]["generation"]
    assert client["metadata"]["generation"] == before["client"]["generation"]
    _assert_secret_unchanged(cluster, before)

    # A spec change on each: this release's operator reconciles what the previous one created. A new token
    # lifetime changes the server's configuration, so its pods are replaced by ones this operator renders.
    server_ttl = _other_duration(before["server"]["access_token_ttl"], ("20m", "25m"))
    client_ttl = _other_duration(before["client"]["access_token_ttl"], ("7m", "9m"))
    for kind, name, patch in (
        ("authserver", SERVER, {"spec": {"tokens": {"accessTokenTTL": server_ttl}}}),
        ("oauthclient", CLIENT, {"spec": {"accessTokenTTL": client_ttl}}),
    ):
        result = cluster.patch(kind, name, NS, patch)
        assert result.returncode == 0, result.stderr
    server = cluster.wait_ready("authserver", SERVER, NS, timeout=420)
    # The client's registration may have been retried while the server pod was being replaced.
    client = cluster.wait_ready("oauthclient", CLIENT, NS, timeout=300)
    assert server["metadata"]["generation"] == before["server"]["generation"] + 1
    assert client["metadata"]["generation"] == before["client"]["generation"] + 1
    server_deployment = cluster.wait_rolled_out(SERVER, NS, timeout=420)
    server_pods = {pod["metadata"]["uid"] for pod in cluster.running_pods(NS, _selector(server_deployment))}
    assert server_pods and not server_pods & set(before["server"]["pods"]), (
        "the previous server pods still run"
    )

    # Nothing regenerated: the recorded secret gets a token, signed with the key the previous release made.
    data = _assert_secret_unchanged(cluster, before)
    assert server["status"]["signingKeys"]["activeKid"] == before["server"]["active_kid"]
    header, claims = _issue_token(cluster, data, before["client"]["audience"])
    assert header["kid"] == before["server"]["active_kid"]
    assert claims["client_id"] == before["secret"]["client_id"]
    assert claims["exp"] - claims["iat"] == {"7m": 420, "9m": 540}[client_ttl]
