"""The Helm chart, checked with real Helm binaries (3.17 and 4.1, from scripts/get-helm.sh).

`helm lint --strict` and `helm template` for the default values and every examples/helm/values-*.yaml; every
rendered object validated against the Kubernetes 1.32 schemas (kubernetes-validate, strict); values that
violate values.schema.json rejected with a message naming the field; the Deployment's hardening and its
configuration read back through the operator's own settings class.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from authyard_operator.settings import OperatorSettings

from tests.packaging.helm_support import (
    CHART,
    EXAMPLES,
    MAJORS,
    NAMESPACE,
    ROOT,
    VALUES_EXAMPLES,
    by_kind,
    one,
    render,
    run_helm,
    template_args,
    values_examples,
)

VALUES_CASES = [None, *values_examples()]
VALUES_IDS = ["default", *(path.stem for path in values_examples())]
# Custom resources of the Prometheus Operator: kubernetes-validate has no schema for them (it knows only
# built-in kinds), and their CRDs are not ours to ship; their content is checked by the tests below.
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule"}
KUBERNETES_VERSION = "1.32"


def _load_sync_crds():  # type: ignore[no-untyped-def]
    """charts/sync_crds.py is a script, not a package module: load it from its file."""
    spec = importlib.util.spec_from_file_location("sync_crds", ROOT / "charts" / "sync_crds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync_crds = _load_sync_crds()


def _values(case: Path | None) -> tuple[Path, ...]:
    return () if case is None else (case,)


def test_values_examples_exist() -> None:
    names = {path.name for path in values_examples()}
    assert {"values-namespaced.yaml", "values-monitoring.yaml", "values-kind.yaml"} <= names


# --- CRDs: one source ------------------------------------------------------------------------------------


def test_chart_crds_are_the_repository_crds() -> None:
    assert sync_crds.differences() == [], "run: python charts/sync_crds.py"
    assert sync_crds.snippet_is_current(), "run: python charts/sync_crds.py"
    assert sync_crds.main(["--check"]) == 0


def test_sync_detects_and_repairs_drift(tmp_path: Path) -> None:
    target = tmp_path / "crds"
    assert sync_crds.sync(target=target)  # everything was missing
    assert sync_crds.differences(target=target) == []
    first = sorted(target.iterdir())[0]
    first.write_text(first.read_text() + "# edited by hand\n")
    (target / "stale.yaml").write_text("kind: Nothing\n")
    problems = sync_crds.differences(target=target)
    assert any(first.name in problem and "differs" in problem for problem in problems)
    assert any("stale.yaml" in problem for problem in problems)
    sync_crds.sync(target=target)
    assert sync_crds.differences(target=target) == []


# --- helm lint / helm template ---------------------------------------------------------------------------


@pytest.mark.parametrize("major", MAJORS)
@pytest.mark.parametrize("case", VALUES_CASES, ids=VALUES_IDS)
def test_helm_lint_strict(major: int, case: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    for path in _values(case):
        args += ["--values", str(path)]
    result = run_helm(major, *args)
    assert result.returncode == 0, result.output
    assert "0 chart(s) failed" in result.output


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("major", MAJORS)
@pytest.mark.parametrize("case", VALUES_CASES, ids=VALUES_IDS)
def test_rendered_objects_validate_against_kubernetes_schemas(major: int, case: Path | None) -> None:
    objects = render(major, _values(case), include_crds=True)
    kinds = {obj["kind"] for obj in objects}
    assert {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Deployment"} <= kinds
    validated = 0
    for obj in objects:
        if obj["kind"] in MONITORING_KINDS:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        try:
            _validate(obj)
        except kubernetes_validate.ValidationError as error:  # pragma: no cover - the failure message
            pytest.fail(f"{obj['kind']} {obj['metadata'].get('name')}: {error}")
        validated += 1
    assert validated >= len(objects) - len(MONITORING_KINDS)


@pytest.mark.parametrize("major", MAJORS)
def test_rendered_crds_are_the_source_crds(major: int) -> None:
    rendered = {
        obj["metadata"]["name"]: obj
        for obj in by_kind(render(major, include_crds=True), "CustomResourceDefinition")
    }
    source = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        source[crd["metadata"]["name"]] = crd
    assert rendered == source


def test_both_helm_majors_render_the_same_objects() -> None:
    for case in VALUES_CASES:
        assert render(3, _values(case), include_crds=True) == render(4, _values(case), include_crds=True)


def test_no_registry_host_anywhere_in_the_chart() -> None:
    hosts = re.compile(r"\b(ghcr\.io|docker\.io|quay\.io|gcr\.io|registry\.k8s\.io|public\.ecr\.aws)\b")
    files = [path for path in [*CHART.rglob("*"), *values_examples()] if path.is_file()]
    offenders = [str(path) for path in files if hosts.search(path.read_text(errors="replace"))]
    assert offenders == []


# --- the operator Deployment -----------------------------------------------------------------------------


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_deployment_defaults_are_hardened_and_highly_available() -> None:
    objects = render()
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(objects)
    assert deployment["spec"]["replicas"] == 2
    assert container["image"] == "authyard/operator:0.1.0"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": 8081, "metrics": 8082}
    # Replicas spread over nodes (preferred) and zones (ScheduleAnyway): never unschedulable on one node.
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": deployment["spec"]["selector"]}
    service = one(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_hard_anti_affinity_and_custom_affinity() -> None:
    hard = one(render(sets=('podAntiAffinity="hard"',)), "Deployment")["spec"]["template"]["spec"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard["affinity"]["podAntiAffinity"]
    custom = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}}  # fmt: skip
    pod = one(render(sets=(f"affinity={json.dumps(custom)}",)), "Deployment")["spec"]["template"]["spec"]
    assert pod["affinity"] == custom
    assert (
        "affinity"
        not in one(render(sets=('podAntiAffinity="none"',)), "Deployment")["spec"]["template"]["spec"]
    )


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container["env"]}


def test_every_operator_variable_is_a_setting_the_operator_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(_container(render(values_files=(VALUES_EXAMPLES / "values-namespaced.yaml",))))
    fields = {f"AUTHYARD_{name.upper()}" for name in OperatorSettings.model_fields}
    ours = {name for name in env if name.startswith("AUTHYARD_")}
    assert ours <= fields, f"not OperatorSettings fields: {ours - fields}"
    # Downward API: the Lease lives in the release namespace, and each replica is named after its pod.
    assert env["AUTHYARD_LEASE_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["AUTHYARD_IDENTITY"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # The literal values parse with the operator's own settings class, as they will in the pod.
    for name, item in env.items():
        if "value" in item:
            monkeypatch.setenv(name, item["value"])
    monkeypatch.setenv("AUTHYARD_LEASE_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("AUTHYARD_IDENTITY", "authyard-authyard-operator-abc-123")
    settings = OperatorSettings()
    assert settings.watch_namespaces == ["platform", "team-a", "team-b"]
    assert settings.leader_election is True
    assert settings.lease_namespace == NAMESPACE
    assert settings.lease_name == "authyard-authyard-operator"
    assert (settings.health_port, settings.metrics_port) == (8081, 8082)
    assert settings.resync_interval.total_seconds() == 60
    assert settings.client_resync_interval.total_seconds() == 300
    assert settings.lease_duration.total_seconds() == 15
    assert settings.admin_url_template == "http://{name}.{namespace}.svc:8080"


def test_cluster_wide_watching_is_an_empty_namespace_list(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(_container(render()))
    assert env["AUTHYARD_WATCH_NAMESPACES"]["value"] == ""
    monkeypatch.setenv("AUTHYARD_WATCH_NAMESPACES", "")
    assert OperatorSettings().watch_namespaces == []


def test_metrics_off_disables_the_port_and_the_service() -> None:
    objects = render(sets=("metrics.enabled=false",))
    assert _env(_container(objects))["AUTHYARD_METRICS_PORT"]["value"] == "0"
    assert by_kind(objects, "Service") == []
    assert [port["name"] for port in _container(objects)["ports"]] == ["health"]


def test_single_replica_without_leader_election() -> None:
    objects = render(sets=("replicaCount=1", 'leaderElection={"enabled": false}'))
    assert _env(_container(objects))["AUTHYARD_LEADER_ELECTION"]["value"] == "false"
    assert [role["metadata"]["name"] for role in by_kind(objects, "Role")] == []


def test_pdb_min_available() -> None:
    pdb = one(
        render(sets=('podDisruptionBudget={"enabled": true, "minAvailable": 1}',)), "PodDisruptionBudget"
    )
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"]
    assert by_kind(render(sets=('podDisruptionBudget={"enabled": false}',)), "PodDisruptionBudget") == []


# --- values.schema.json ----------------------------------------------------------------------------------

SCHEMA = json.loads((CHART / "values.schema.json").read_text())

# (--set-json assignment, a word the error must contain)
BAD_VALUES = [
    ('replicaCount=0', "replicaCount"),
    ('replicaCount="2"', "replicaCount"),
    ('replicaCount=50', "replicaCount"),
    ('image={"repository": "authyard/operator", "pullPolicy": "Sometimes"}', "pullPolicy"),
    ('image={"repository": "", "pullPolicy": "IfNotPresent"}', "repository"),
    ('image={"repository": "authyard/operator", "pullPolicy": "Always", "tag": "has space"}', "tag"),
    ('imageTag="0.1.0"', "imageTag"),
    ('watchNamespaces="team-a"', "watchNamespaces"),
    ('watchNamespaces=["Team_A"]', "watchNamespaces"),
    ('watchNamespaces=["team-a", "team-a"]', "watchNamespaces"),
    ('logLevel="verbose"', "logLevel"),
    ('leaderElection={"enabled": "yes"}', "enabled"),
    ('leaderElection={"enabled": false}', "replicaCount"),
    ('leaderElection={"enabled": true, "leaseDuration": "15 seconds"}', "leaseDuration"),
    ('resyncInterval="1 minute"', "resyncInterval"),
    ('adminUrlTemplate="http://auth.platform.svc:8080"', "adminUrlTemplate"),
    ('securityContext={"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": false}',
     "readOnlyRootFilesystem"),
    ('securityContext={"allowPrivilegeEscalation": true, "readOnlyRootFilesystem": true}',
     "allowPrivilegeEscalation"),
    ('podSecurityContext={"runAsNonRoot": false}', "runAsNonRoot"),
    ('podSecurityContext={"runAsNonRoot": true, "runAsUser": 0}', "runAsUser"),
    ('healthPort=70000', "healthPort"),
    ('metrics={"enabled": "true"}', "enabled"),
    ('metrics={"enabled": true, "serviceMonitor": {"enabled": true, "interval": "often"}}', "interval"),
    ('metrics={"enabled": true, "serviceMonitor": {"enabled": true, "labels": {"release": 1}}}', "release"),
    ('prometheusRule={"enabled": true, "tokenEndpoint": {"errorRatio": 5}}', "errorRatio"),
    ('prometheusRule={"enabled": true, "dbPool": {"saturationRatio": 0}}', "saturationRatio"),
    ('prometheusRule={"enabled": true, "thresholds": {}}', "thresholds"),
    ('grafanaDashboard={"enabled": true, "labels": {"grafana_dashboard": 1}}', "grafana_dashboard"),
    ('podDisruptionBudget={"enabled": true, "maxUnavailable": 1, "minAvailable": 1}', "podDisruptionBudget"),
    ('podDisruptionBudget={"enabled": true, "maxUnavailable": "half"}', "maxUnavailable"),
    ('podAntiAffinity="sometimes"', "podAntiAffinity"),
    ('topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}]',
     "whenUnsatisfiable"),
    ('extraEnv=[{"name": "9BAD"}]', "name"),
]  # fmt: skip


@pytest.mark.parametrize("major", MAJORS)
@pytest.mark.parametrize(
    ("assignment", "field"),
    BAD_VALUES,
    ids=[case[0].split("=")[0] + f"-{i}" for i, case in enumerate(BAD_VALUES)],
)
def test_bad_values_fail_with_a_message_naming_the_field(major: int, assignment: str, field: str) -> None:
    result = run_helm(major, *template_args(sets=(assignment,)))
    assert result.returncode != 0, f"helm {major} accepted {assignment}"
    assert field in result.output, result.output
    assert "schema" in result.output.lower() or "values don't meet" in result.output.lower(), result.output


@pytest.mark.parametrize("case", VALUES_CASES, ids=VALUES_IDS)
def test_values_validate_against_the_schema_without_helm(case: Path | None) -> None:
    """The same schema, checked independently of Helm (jsonschema, draft 7), on the merged values."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in _values(case):
        values = _merge(values, yaml.safe_load(path.read_text()))
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(values)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _merge(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


def test_the_schema_covers_every_default_value() -> None:
    """additionalProperties: false at the top: every key of values.yaml must be declared."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert SCHEMA["additionalProperties"] is False
    assert set(values) <= set(SCHEMA["properties"])


# --- monitoring ------------------------------------------------------------------------------------------


def _defined_metric_names() -> set[str]:
    """Every metric the auth server and the operator export, with the histogram/counter series suffixes."""
    from authyard_operator import metrics as operator_metrics

    import authserver.observability.metrics as server_metrics

    names: set[str] = set()
    for module in (server_metrics, operator_metrics):
        for value in vars(module).values():
            describe = getattr(value, "describe", None)
            if describe is None or not hasattr(value, "_name"):
                continue
            for family in describe():
                names.add(family.name)
                for sample_suffix in ("_total", "_bucket", "_count", "_sum", "_created"):
                    names.add(family.name + sample_suffix)
    return names


def _ksm_metric_names() -> set[str]:
    config = yaml.safe_load((CHART / "files" / "kube-state-metrics-authyard.yaml").read_text())
    return {
        f"{resource['metricNamePrefix']}_{metric['name']}"
        for resource in config["spec"]["resources"]
        for metric in resource["metrics"]
    }


METRIC = re.compile(r"\b(authserver_[a-z_]+|authyard_[a-z_]+)\b")


def _used_metrics(expressions: list[str]) -> set[str]:
    return {name for expression in expressions for name in METRIC.findall(expression)}


NEXT_ROTATION = "authyard_authserver_signing_keys_next_rotation_timestamp_seconds"


def test_prometheus_rule_alerts_on_what_a_platform_team_needs() -> None:
    objects = render(values_files=(VALUES_EXAMPLES / "values-monitoring.yaml",))
    rule = one(objects, "PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    expected = {
        "AuthyardTokenEndpointErrorRate": 'authserver_http_requests_total{route="/token", status=~"5.."}',
        "AuthyardTokenEndpointLatencyHigh": 'authserver_http_request_duration_seconds_bucket{route="/token"}',
        "AuthyardDatabasePoolSaturated": "authserver_db_pool_max_size",
        "AuthyardOperatorReconcileFailures": 'authyard_operator_reconciles_total{result=~"failure|error"}',
        "AuthyardSigningKeyRotationOverdue": NEXT_ROTATION,
        "AuthyardSigningKeyNearExpiry": NEXT_ROTATION,
        "AuthyardSigningKeysNextKeyMissing": "authserver_signing_keys_published",
        "AuthyardOperatorNoLeader": "authyard_operator_leader",
    }
    for alert, fragment in expected.items():
        assert fragment in alerts[alert]["expr"], alert
    assert "histogram_quantile(0.95" in alerts["AuthyardTokenEndpointLatencyHigh"]["expr"]
    assert "authserver_db_pool_connections_in_use" in alerts["AuthyardDatabasePoolSaturated"]["expr"]
    # Each pool on its own: a saturated token_writes pool must not hide behind an idle engine pool.
    assert "sum by (namespace, service, pool)" in alerts["AuthyardDatabasePoolSaturated"]["expr"]
    # Thresholds come from the values file.
    assert "> 0.02" in alerts["AuthyardTokenEndpointErrorRate"]["expr"]
    assert "> 0.25" in alerts["AuthyardTokenEndpointLatencyHigh"]["expr"]
    assert "> 7200" in alerts["AuthyardSigningKeyRotationOverdue"]["expr"]  # overdueAfter: 2h
    assert "< 172800" in alerts["AuthyardSigningKeyNearExpiry"]["expr"]  # nearExpiryWindow: 48h
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["labels"]["team"] == "platform"
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # Every metric an alert reads exists: exported by the server or the operator, or configured for
    # kube-state-metrics in the chart's files/.
    used = _used_metrics([alert["expr"] for alert in alerts.values()])
    assert used - _defined_metric_names() - _ksm_metric_names() == set()


def test_kube_state_metrics_config_reads_fields_the_crds_define() -> None:
    config = yaml.safe_load((CHART / "files" / "kube-state-metrics-authyard.yaml").read_text())
    crds = {}
    for path in (ROOT / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        crds[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for resource in config["spec"]["resources"]:
        assert resource["groupVersionKind"]["group"] == "authyard.dev"
        schema = crds[resource["groupVersionKind"]["kind"]]
        for metric in resource["metrics"]:
            node = schema
            for part in metric["each"]["gauge"]["path"]:
                node = node["properties"][part]
            if node.get("type") == "array":
                for part in metric["each"]["gauge"]["valueFrom"]:
                    assert part in node["items"]["properties"], metric["name"]
                    node = node["items"]["properties"][part]
    objects = render(sets=('kubeStateMetrics={"customResourceStateConfig": {"enabled": true}}',))
    configmap = one(objects, "ConfigMap")
    assert yaml.safe_load(configmap["data"]["config.yaml"]) == config


def test_grafana_dashboard_configmap() -> None:
    objects = render(values_files=(VALUES_EXAMPLES / "values-monitoring.yaml",))
    (configmap,) = [
        cm for cm in by_kind(objects, "ConfigMap") if cm["metadata"]["name"].endswith("-dashboard")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["authyard.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "authyard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = _used_metrics(expressions)
    assert {
        "authserver_http_requests_total",
        "authserver_http_request_duration_seconds_bucket",
        "authserver_db_pool_connections_in_use",
        "authserver_db_write_batch_size_bucket",
        "authserver_db_write_batch_size_sum",
        "authyard_operator_reconciles_total",
    } <= used
    assert used - _defined_metric_names() - _ksm_metric_names() == set()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_service_monitor_scrapes_the_metrics_port() -> None:
    objects = render(values_files=(VALUES_EXAMPLES / "values-monitoring.yaml",))
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = one(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_monitoring_is_off_by_default() -> None:
    kinds = {obj["kind"] for obj in render()}
    assert not kinds & MONITORING_KINDS
    assert "ConfigMap" not in kinds


# --- NOTES.txt -------------------------------------------------------------------------------------------


def test_notes_tell_what_to_apply_next() -> None:
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    for path in re.findall(r"examples/[\w.-]+\.yaml", notes):
        assert (ROOT / path).is_file(), path
    for needle in (
        "examples/authserver-embedded.yaml",
        "examples/oauthclient-m2m.yaml",
        "kubectl get authservers",
        "base64 -d",
        "authyard.dev/rotate-secret",
    ):
        assert needle in notes
    # The Secret named in NOTES is the one the example OAuthClient produces.
    m2m = yaml.safe_load((EXAMPLES / "oauthclient-m2m.yaml").read_text())
    assert f"get secret {m2m['spec']['secret']['name']}" in notes
