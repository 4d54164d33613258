"""The e2e suite's own logic (e2e/support.py), exercised without a cluster: manifest loading, the bounded
poll, status reading, the kubectl/helm command lines, port-forward parsing, Secret decoding, and the
reachability check that makes the suite skip (never pass) without a cluster."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from e2e import support

ROOT = Path(__file__).resolve().parents[2]


# --- manifests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "authserver-embedded.yaml",
        "authserver-postgres-pgbouncer.yaml",
        "oauthclient-m2m.yaml",
        "oauthclient-spa.yaml",
    ],
)
def test_every_example_the_suite_applies_loads_and_validates_against_its_crd(name: str) -> None:
    obj = support.example(name)
    assert obj["apiVersion"] == "authyard.dev/v1alpha1"
    crd = yaml.safe_load((ROOT / "crds" / f"{obj['kind'].lower()}s.authyard.dev.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate({key: obj[key] for key in ("apiVersion", "kind", "spec")}, schema)


def test_load_manifests_handles_multiple_and_empty_documents(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n"
    )
    assert [obj["metadata"]["name"] for obj in support.load_manifests(path)] == ["a", "b"]
    path.write_text("just: data\n")
    with pytest.raises(ValueError, match="not a Kubernetes object"):
        support.load_manifests(path)


def test_rewrites_leave_the_example_untouched() -> None:
    original = support.example("authserver-embedded.yaml")
    allowed = support.allow_client_namespaces(original, ["team-b", "team-a"])
    assert allowed["spec"]["clientPolicy"]["allowedNamespaces"] == ["team-a", "team-b"]
    assert "clientPolicy" not in original["spec"]
    moved = support.in_namespace(original, "platform-pg")
    assert moved["metadata"]["namespace"] == "platform-pg" and original["metadata"]["namespace"] == "platform"
    client = support.pointed_at(support.example("oauthclient-m2m.yaml"), "auth", "elsewhere")
    assert client["spec"]["authServerRef"] == {"name": "auth", "namespace": "elsewhere"}
    assert yaml.safe_load(support.to_yaml([allowed])) == allowed


def test_the_embedded_example_needs_the_rewrite_for_the_client_examples() -> None:
    """The client examples live in team-a/team-b and point at platform/auth: without the rewrite the
    embedded example (its own namespace only) would refuse them."""
    server = support.example("authserver-embedded.yaml")
    for name in ("oauthclient-m2m.yaml", "oauthclient-spa.yaml"):
        client = support.example(name)
        assert client["spec"]["authServerRef"] == {"name": "auth", "namespace": "platform"}
        assert client["metadata"]["namespace"] != server["metadata"]["namespace"]


# --- status ----------------------------------------------------------------------------------------------


def _obj(generation: int, observed: int | None, ready: str | None) -> dict:
    status: dict = {}
    if observed is not None:
        status["observedGeneration"] = observed
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready, "reason": "R", "message": "m"}]
    return {"metadata": {"generation": generation}, "status": status}


@pytest.mark.parametrize(
    ("obj", "ready"),
    [
        (None, False),
        ({}, False),
        (_obj(2, 2, "True"), True),
        (_obj(2, 3, "True"), True),
        (_obj(3, 2, "True"), False),  # the operator has not seen the latest spec yet
        (_obj(2, None, "True"), False),
        (_obj(2, 2, "False"), False),
        (_obj(2, 2, "Unknown"), False),
        (_obj(2, 2, None), False),
    ],
)
def test_is_ready_requires_the_current_generation(obj: dict | None, ready: bool) -> None:
    assert support.is_ready(obj) is ready


def test_describe_status_names_what_is_missing() -> None:
    assert support.describe_status(None) == "absent"
    text = support.describe_status(_obj(3, 2, "False"))
    assert "generation=3" in text and "observedGeneration=2" in text and "Ready=False" in text


# --- poll ------------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_poll_returns_the_first_truthy_value() -> None:
    clock = FakeClock()
    values = iter([None, 0, {"ready": True}])
    assert support.poll(
        lambda: next(values), timeout=10, interval=1, clock=clock.clock, sleep=clock.sleep
    ) == {"ready": True}
    assert clock.sleeps == [1, 1]


def test_poll_is_bounded_and_reports_the_last_observation() -> None:
    clock = FakeClock()
    with pytest.raises(support.PollTimeout, match=r"Secret rotated: not true after 5s .*last: 'old'"):
        support.poll(
            lambda: "old" == "new" or "",
            timeout=5,
            interval=2,
            what="Secret rotated",
            describe=lambda _: "'old'",
            clock=clock.clock,
            sleep=clock.sleep,
        )
    assert clock.now == 5  # never sleeps past the deadline
    assert clock.sleeps == [2, 2, 1]


def test_poll_treats_errors_as_not_yet_and_reports_them() -> None:
    clock = FakeClock()
    attempts = []

    def probe() -> bool:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("API server restarting")
        return True

    assert support.poll(probe, timeout=10, interval=1, clock=clock.clock, sleep=clock.sleep) is True
    with pytest.raises(support.PollTimeout, match="ConnectionError: down"):
        support.poll(
            lambda: (_ for _ in ()).throw(ConnectionError("down")),
            timeout=1,
            interval=1,
            clock=clock.clock,
            sleep=clock.sleep,
        )


def test_poll_rejects_unbounded_use() -> None:
    with pytest.raises(ValueError):
        support.poll(lambda: True, timeout=0)
    with pytest.raises(ValueError):
        support.poll(lambda: True, timeout=1, interval=0)


# --- command lines ---------------------------------------------------------------------------------------


def test_kubectl_and_helm_commands() -> None:
    tools = support.Tools(
        kubectl="/usr/bin/kubectl", helm="tools/helm3/helm", kubeconfig="/k", context="kind-e2e"
    )
    assert tools.kubectl_cmd("get", "pods", namespace="platform") == [
        "/usr/bin/kubectl",
        "--kubeconfig",
        "/k",
        "--context",
        "kind-e2e",
        "--namespace",
        "platform",
        "get",
        "pods",
    ]
    assert tools.helm_cmd("list", namespace="ns") == [
        "tools/helm3/helm",
        "--kubeconfig",
        "/k",
        "--kube-context",
        "kind-e2e",
        "--namespace",
        "ns",
        "list",
    ]
    command = support.Tools().helm_install_cmd(
        "authyard",
        Path("charts/authyard-operator"),
        "authyard-system",
        [Path("examples/helm/values-kind.yaml")],
        {"image.tag": "dev"},
    )
    assert command == [
        "helm",
        "--namespace",
        "authyard-system",
        "upgrade",
        "--install",
        "authyard",
        "charts/authyard-operator",
        "--create-namespace",
        "--wait",
        "--timeout",
        "5m",
        "--values",
        "examples/helm/values-kind.yaml",
        "--set-string",
        "image.tag=dev",
    ]
    assert support.Tools().port_forward_cmd("svc/auth", 8080, "platform") == [
        "kubectl",
        "--namespace",
        "platform",
        "port-forward",
        "--address",
        "127.0.0.1",
        "svc/auth",
        ":8080",
    ]


def test_find_tool(tmp_path: Path) -> None:
    helm = tmp_path / "helm3" / "helm"
    helm.parent.mkdir()
    helm.write_text("#!/bin/sh\n")
    helm.chmod(0o755)
    assert support.find_tool("helm", {"AUTHYARD_HELM": "/opt/helm"}, [helm]) == "/opt/helm"
    assert support.find_tool("helm", {"PATH": ""}, [tmp_path / "missing", helm]) == str(helm)
    assert support.find_tool("helm", {"PATH": str(tmp_path / "nothing")}) is None


def test_values_kind_uses_local_images_only() -> None:
    values = yaml.safe_load((ROOT / "examples" / "helm" / "values-kind.yaml").read_text())
    assert values["image"] == {"repository": "authyard/operator", "tag": "0.1.0", "pullPolicy": "Never"}


# --- port-forward and URLs -------------------------------------------------------------------------------


def test_parse_port_forward_output() -> None:
    assert support.parse_port_forward("Forwarding from 127.0.0.1:43127 -> 8080\n") == 43127
    assert support.parse_port_forward("Forwarding from [::1]:43127 -> 8080") is None
    assert support.parse_port_forward("Handling connection for 43127") is None


def test_local_url_keeps_the_path() -> None:
    assert support.local_url("http://auth.platform.svc:8080/token", 4000) == "http://127.0.0.1:4000/token"
    assert support.local_url("https://auth.example.com", 4000) == "http://127.0.0.1:4000"
    with pytest.raises(ValueError):
        support.local_url("auth.platform.svc:8080/token", 4000)


# --- Secrets ---------------------------------------------------------------------------------------------


def test_decode_secret() -> None:
    encoded = {
        key: base64.b64encode(value.encode()).decode()
        for key, value in {"client_id": "team-a.orders-api", "client_secret": "s" * 43}.items()
    }
    secret = {"apiVersion": "v1", "kind": "Secret", "data": encoded, "stringData": {"issuer": "http://i"}}
    assert support.decode_secret(secret) == {
        "client_id": "team-a.orders-api",
        "client_secret": "s" * 43,
        "issuer": "http://i",
    }
    assert support.decode_secret({"kind": "Secret"}) == {}


# --- skip, never pass, without a cluster -----------------------------------------------------------------


def _runner(returncode: int, stderr: str = "") -> tuple[list[list[str]], object]:
    calls: list[list[str]] = []

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, returncode, "ok" if returncode == 0 else "", stderr)

    return calls, run


def test_no_kubeconfig_is_an_explicit_reason(tmp_path: Path) -> None:
    calls, run = _runner(0)
    reason = support.unreachable_reason({}, support.Tools(), run, home=tmp_path)  # type: ignore[arg-type]
    assert reason is not None and reason.startswith("no Kubernetes cluster: KUBECONFIG unset")
    assert calls == []
    reason = support.unreachable_reason({"KUBECONFIG": str(tmp_path / "x")}, support.Tools(), run)  # type: ignore[arg-type]
    assert reason is not None and "names no existing file" in reason


def test_unreachable_api_is_an_explicit_reason(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    calls, run = _runner(1, "The connection to the server 127.0.0.1:6443 was refused\n")
    reason = support.unreachable_reason({"KUBECONFIG": str(kubeconfig)}, support.Tools(), run)  # type: ignore[arg-type]
    assert (
        reason
        == "no Kubernetes cluster: API unreachable (The connection to the server 127.0.0.1:6443 was refused)"
    )
    assert calls == [["kubectl", "get", "--raw", "/readyz", "--request-timeout", "10s"]]
    assert support.unreachable_reason({"KUBECONFIG": str(kubeconfig)}, None, run) is not None  # type: ignore[arg-type]


def test_reachable_cluster(tmp_path: Path) -> None:
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("apiVersion: v1\nkind: Config\n")
    _, run = _runner(0)
    assert support.unreachable_reason({}, support.Tools(), run, home=tmp_path) is None  # type: ignore[arg-type]


def test_the_root_suite_does_not_collect_e2e() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert config["testpaths"] == ["tests"]
    assert (ROOT / "e2e" / "pytest.ini").is_file()


def test_the_e2e_suite_skips_with_its_reason_without_a_cluster(tmp_path: Path) -> None:
    """Run `pytest e2e` for real with no kubeconfig: every test skipped, with the reason, none passed."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": ""}
    completed = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "pytest"), "e2e", "-q", "-rs", "-p", "no:randomly"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    summary = [line for line in output.splitlines() if re.fullmatch(r"\d+ skipped.*", line.strip())]
    assert summary, output
    assert "passed" not in summary[-1] and "failed" not in summary[-1], output
    assert "no Kubernetes cluster: KUBECONFIG unset" in output


# --- rollouts, tokens, the upgrade scenario --------------------------------------------------------------


def _deployment(generation: int, observed: int, wanted: int, **counts: int) -> dict:
    status = {"observedGeneration": observed} | counts
    return {"metadata": {"generation": generation}, "spec": {"replicas": wanted}, "status": status}


@pytest.mark.parametrize(
    ("deployment", "done"),
    [
        (None, False),
        (_deployment(2, 2, 2, replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2), True),
        (_deployment(3, 2, 2, replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2), False),
        # a pod of the old ReplicaSet is still counted
        (_deployment(2, 2, 2, replicas=3, updatedReplicas=2, readyReplicas=3, availableReplicas=3), False),
        (_deployment(2, 2, 2, replicas=2, updatedReplicas=1, readyReplicas=2, availableReplicas=2), False),
        (_deployment(2, 2, 2, replicas=2, updatedReplicas=2, readyReplicas=1, availableReplicas=1), False),
        (_deployment(2, 2, 1, replicas=1, updatedReplicas=1, readyReplicas=1), False),  # not yet available
    ],
)
def test_rolled_out_means_every_replica_runs_the_current_spec(deployment: dict | None, done: bool) -> None:
    assert support.rolled_out(deployment) is done


def test_split_image() -> None:
    assert support.split_image("authyard/operator:previous") == ("authyard/operator", "previous")
    assert support.split_image("registry:5000/a/b:1.0") == ("registry:5000/a/b", "1.0")
    for bad in ("authyard/operator", "registry:5000/a/b", "a/b@sha256:" + "0" * 64, ":tag"):
        with pytest.raises(ValueError, match="not an image reference with a tag"):
            support.split_image(bad)


def test_fingerprint_tells_secrets_apart_without_keeping_them() -> None:
    assert support.fingerprint("s3cret") == support.fingerprint("s3cret")
    assert support.fingerprint("s3cret") != support.fingerprint("s3cret ")
    assert "s3cret" not in support.fingerprint("s3cret") and len(support.fingerprint("x")) == 64


def test_verify_access_token_checks_signature_issuer_audience_and_algorithm() -> None:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks = {"keys": [public | {"kid": "k1", "alg": "ES256", "use": "sig"}]}
    claims = {"iss": "http://auth.upgrade.svc:8080", "aud": "https://orders.example.com", "client_id": "c"}
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1", "typ": "at+jwt"})
    header, decoded = support.verify_access_token(token, jwks, claims["iss"], claims["aud"])
    assert header["kid"] == "k1" and decoded["client_id"] == "c"
    with pytest.raises(jwt.InvalidAudienceError):
        support.verify_access_token(token, jwks, claims["iss"], "https://elsewhere.example.com")
    with pytest.raises(jwt.InvalidIssuerError):
        support.verify_access_token(token, jwks, "http://other", claims["aud"])
    other = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, other, algorithm="ES256", headers={"kid": "k1"})
    with pytest.raises(jwt.InvalidSignatureError):
        support.verify_access_token(forged, jwks, claims["iss"], claims["aud"])
    with pytest.raises(jwt.InvalidAlgorithmError):  # the verifier picks the algorithm, not the token
        support.verify_access_token(token, jwks, claims["iss"], claims["aud"], algorithms=["RS256"])


def _checkout(tmp_path: Path, with_examples: bool) -> Path:
    checkout = tmp_path / "previous"
    (checkout / "charts" / "authyard-operator").mkdir(parents=True)
    (checkout / "charts" / "authyard-operator" / "Chart.yaml").write_text("name: authyard-operator\n")
    if with_examples:
        (checkout / "examples" / "helm").mkdir(parents=True)
        (checkout / "examples" / "helm" / "values-kind.yaml").write_text("replicaCount: 2\n")
        (checkout / "examples" / "oauthclient-m2m.yaml").write_text(
            "apiVersion: authyard.dev/v1alpha1\nkind: OAuthClient\nmetadata: {name: old, namespace: a}\n"
        )
    return checkout


def test_upgrade_source_from_the_environment(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path, with_examples=True)
    env = {
        support.UPGRADE_FROM: str(checkout),
        support.UPGRADE_FROM_OPERATOR_IMAGE: "authyard/operator:previous",
        support.UPGRADE_FROM_AUTHSERVER_IMAGE: "authyard/authserver:0.1.0",
    }
    source = support.upgrade_source(env)
    assert source is not None
    assert source.chart == checkout / "charts" / "authyard-operator"
    assert source.values_files() == [checkout / "examples" / "helm" / "values-kind.yaml"]
    assert source.image_values() == {
        "image.repository": "authyard/operator",
        "image.tag": "previous",
        "image.pullPolicy": "Never",
    }
    assert source.example("oauthclient-m2m.yaml")["metadata"]["name"] == "old"  # the previous commit's own
    assert source.example("authserver-embedded.yaml") == support.example("authserver-embedded.yaml")


def test_upgrade_source_unset_is_none_and_half_set_is_an_error(tmp_path: Path) -> None:
    assert support.upgrade_source({}) is None
    checkout = _checkout(tmp_path, with_examples=False)
    with pytest.raises(ValueError, match="AUTHYARD_E2E_UPGRADE_FROM_OPERATOR_IMAGE"):
        support.upgrade_source({support.UPGRADE_FROM: str(checkout)})
    with pytest.raises(ValueError, match=r"holds no charts/authyard-operator/Chart\.yaml"):
        support.upgrade_source({support.UPGRADE_FROM: str(tmp_path / "nothing")})
    env = {
        support.UPGRADE_FROM: str(checkout),
        support.UPGRADE_FROM_OPERATOR_IMAGE: "authyard/operator",
        support.UPGRADE_FROM_AUTHSERVER_IMAGE: "authyard/authserver:0.1.0",
    }
    with pytest.raises(ValueError, match="not an image reference with a tag"):
        support.upgrade_source(env)
    source = support.upgrade_source(env | {support.UPGRADE_FROM_OPERATOR_IMAGE: "authyard/operator:previous"})
    assert source is not None and source.values_files() == []
