"""The children of an AuthServer, renderer by renderer."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from authyard_operator.constants import CONFIG_HASH_ANNOTATION, DEFAULT_IMAGE
from authyard_operator.dburl import parse_database_url
from authyard_operator.resources.bundle import Observed, unwanted_children
from authyard_operator.resources.configmap import config_hash, render_configmap
from authyard_operator.resources.deployment import render_deployment
from authyard_operator.resources.hpa import render_hpa
from authyard_operator.resources.ownership import owned_by
from authyard_operator.resources.pdb import render_pdb
from authyard_operator.resources.pgbouncer import databases_ini, pgbouncer_ini, userlist
from authyard_operator.resources.service import render_service
from authyard_operator.resources.serviceaccount import render_service_account
from authyard_operator.resources.servicemonitor import render_service_monitor
from authyard_operator.resources.storage import render_data_claim
from authyard_operator.sizing import size_pools

from tests.operator.support import CLUSTER_ISSUER, DB, DB_URL, SPECS, by_kind, render, spec_of

LABELS = {
    "app.kubernetes.io/name": "authserver",
    "app.kubernetes.io/instance": "auth",
    "app.kubernetes.io/managed-by": "authyard-operator",
}


def deployment_of(raw: dict[str, Any]) -> dict[str, Any]:
    spec = spec_of(raw)
    return render_deployment("auth", "platform", spec, size_pools(spec), "abc123")


def server_container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_every_child_is_labelled_and_namespaced(spec_name: str) -> None:
    for child in render(SPECS[spec_name]).children:
        assert child["metadata"]["namespace"] == "platform"
        assert LABELS.items() <= child["metadata"]["labels"].items(), child["kind"]


def test_embedded_children() -> None:
    children = by_kind(render({}))
    assert set(children) == {
        ("ServiceAccount", "auth"),
        ("ConfigMap", "auth-config"),
        ("ConfigMap", "auth-trusted-issuers"),  # the cluster's own issuer, trusted by default
        ("Secret", "auth-signing-keys"),
        ("Secret", "auth-admin"),
        ("PersistentVolumeClaim", "auth-data"),
        ("Deployment", "auth"),
        ("Service", "auth"),
        ("PodDisruptionBudget", "auth"),
        ("ServiceMonitor", "auth"),
    }


def test_pgbouncer_and_hpa_children() -> None:
    children = by_kind(render(SPECS["pgbouncer"]))
    assert {
        ("HorizontalPodAutoscaler", "auth"),
        ("Deployment", "auth-pgbouncer"),
        ("Service", "auth-pgbouncer"),
        ("ConfigMap", "auth-pgbouncer"),
        ("Secret", "auth-pgbouncer"),
        ("PodDisruptionBudget", "auth-pgbouncer"),
    } <= set(children)
    assert ("PersistentVolumeClaim", "auth-data") not in children


def test_no_service_monitor_without_its_crd() -> None:
    desired = render({}, Observed(cluster_issuer=CLUSTER_ISSUER, service_monitor_available=False))
    assert "ServiceMonitor" not in {child["kind"] for child in desired.children}


def test_unwanted_children_follow_the_spec() -> None:
    assert ("autoscaling/v2", "HorizontalPodAutoscaler", "auth") in unwanted_children("auth", spec_of({}))
    assert ("apps/v1", "Deployment", "auth-pgbouncer") in unwanted_children("auth", spec_of({}))
    assert unwanted_children("auth", spec_of(SPECS["pgbouncer"])) == [
        ("v1", "ConfigMap", "auth-identity-providers")  # local accounts only: no upstream document
    ]


def test_rendering_refuses_a_spec_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match="embedded SQLite"):
        render({"replicas": 2})


def test_service_account_mounts_no_token() -> None:
    assert render_service_account("auth", "platform")["automountServiceAccountToken"] is False


def test_configmap_for_embedded_sqlite() -> None:
    spec = spec_of({})
    data = render_configmap("auth", "platform", spec, size_pools(spec))["data"]
    assert data == {
        "AUTHSERVER_ISSUER": "http://auth.platform.svc:8080",
        "AUTHSERVER_DB_POOL_MIN_SIZE": "1",
        "AUTHSERVER_DB_POOL_MAX_SIZE": "5",
        "AUTHSERVER_DB_STATEMENT_CACHE": "true",
        "AUTHSERVER_DB_AUTO_MIGRATE": "true",
        "AUTHSERVER_ACCESS_TOKEN_TTL": "15m",
        "AUTHSERVER_REFRESH_TOKEN_TTL": "720h",
        "AUTHSERVER_LOGIN_SESSION_TTL": "8h",
        "AUTHSERVER_SESSION_IDLE_TIMEOUT": "0s",
        "AUTHSERVER_LOGIN_MAX_FAILURES_PER_ACCOUNT": "5",
        "AUTHSERVER_LOGIN_MAX_FAILURES_PER_ADDRESS": "20",
        "AUTHSERVER_LOGIN_FAILURE_WINDOW": "15m",
        "AUTHSERVER_LOGIN_LOCKOUT": "1m",
        "AUTHSERVER_TRUSTED_PROXIES": "",
        "AUTHSERVER_TOKEN_RATE_PER_CLIENT": "200",
        "AUTHSERVER_TOKEN_BURST_PER_CLIENT": "400",
        "AUTHSERVER_TOKEN_RATE_PER_IP": "500",
        "AUTHSERVER_TOKEN_BURST_PER_IP": "1000",
        "AUTHSERVER_PASSWORD_MIN_LENGTH": "8",
        "AUTHSERVER_PASSWORD_MAX_LENGTH": "256",
        "AUTHSERVER_PASSWORD_REJECT_ACCOUNT_NAMES": "true",
        "AUTHSERVER_SIGNING_ALGORITHM": "ES256",
        "AUTHSERVER_ID_TOKEN_SIGNING_ALGORITHM": "ES256",
        "AUTHSERVER_SIGNING_KEYS_FILE": "/etc/authserver/keys/signing-keys.json",
        "AUTHSERVER_GENERATE_SIGNING_KEYS": "false",
        "AUTHSERVER_SHUTDOWN_DRAIN": "5s",
        "AUTHSERVER_SHUTDOWN_TIMEOUT": "20s",
        "AUTHSERVER_TRUSTED_ISSUERS_FILE": "/etc/authserver/trusted-issuers/trusted-issuers.json",
        "AUTHSERVER_DATABASE_URL": "sqlite+aiosqlite:////var/lib/authserver/authserver.db",
    }


def test_configmap_for_postgres_holds_no_secret() -> None:
    spec = spec_of(SPECS["direct-hpa"])
    data = render_configmap("auth", "platform", spec, size_pools(spec))["data"]
    assert "AUTHSERVER_DATABASE_URL" not in data and "AUTHSERVER_ADMIN_TOKEN" not in data
    assert data["AUTHSERVER_ISSUER"] == "https://auth.example.com"
    assert data["AUTHSERVER_DB_AUTO_MIGRATE"] == "false"
    # 90 usable connections / (20 pods x 2 workers) = 2 per worker
    assert (data["AUTHSERVER_DB_POOL_MAX_SIZE"], data["AUTHSERVER_DB_POOL_MIN_SIZE"]) == ("2", "1")
    assert data["AUTHSERVER_DB_WRITE_CONNECTIONS"] == "1"


def test_configmap_passes_write_connections_on_and_the_server_accepts_the_pool() -> None:
    from authserver.config import Settings

    spec = spec_of({"database": {**DB, "writeConnections": 3}, "replicas": 2})
    data = render_configmap("auth", "platform", spec, size_pools(spec))["data"]
    assert data["AUTHSERVER_DB_WRITE_CONNECTIONS"] == "3"
    settings = Settings(
        database_url="postgresql+asyncpg://authserver@db/authserver",
        db_pool_min_size=int(data["AUTHSERVER_DB_POOL_MIN_SIZE"]),
        db_pool_max_size=int(data["AUTHSERVER_DB_POOL_MAX_SIZE"]),
        db_write_connections=int(data["AUTHSERVER_DB_WRITE_CONNECTIONS"]),
    )
    assert settings.db_write_connections < settings.db_pool_max_size


def test_the_sign_in_defences_reach_the_server_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """spec.signIn rendered into the ConfigMap and read by the server's own settings, as a pod reads its
    environment: the throttle, the trusted proxies and the password policy."""
    from datetime import timedelta

    from authserver.config import Settings

    sign_in = {
        "maxFailuresPerAccount": 3,
        "maxFailuresPerAddress": 0,
        "failureWindow": "30m",
        "lockout": "2m",
        "trustedProxies": ["10.42.0.0/16", "fd00::1"],
        "passwordPolicy": {"minLength": 12, "maxLength": 128, "rejectAccountNames": False},
    }
    spec = spec_of({"signIn": sign_in})
    for name, value in render_configmap("auth", "platform", spec, size_pools(spec))["data"].items():
        if name != "AUTHSERVER_TRUSTED_ISSUERS_FILE":  # a file only a pod has (test_trusted_issuers.py)
            monkeypatch.setenv(name, value)
    settings = Settings()
    throttle = settings.throttle_policy
    assert (throttle.account_limit, throttle.address_limit) == (3, 0)
    assert (throttle.window, throttle.lockout) == (timedelta(minutes=30), timedelta(minutes=2))
    assert settings.trusted_proxies == ["10.42.0.0/16", "fd00::1"]
    policy = settings.password_policy
    assert (policy.min_length, policy.max_length, policy.reject_account_names) == (12, 128, False)


def test_configmap_behind_pgbouncer_turns_off_the_statement_cache() -> None:
    spec = spec_of(SPECS["pgbouncer"])
    data = render_configmap("auth", "platform", spec, size_pools(spec))["data"]
    assert data["AUTHSERVER_DB_STATEMENT_CACHE"] == "false"
    assert data["AUTHSERVER_DB_POOL_MAX_SIZE"] == "9"


def test_config_hash_is_stable_and_sensitive() -> None:
    assert config_hash({"a": "1", "b": "2"}) == config_hash({"b": "2", "a": "1"})
    assert config_hash({"a": "1"}) != config_hash({"a": "2"})
    first = render({"tokens": {"accessTokenTTL": "15m"}})
    second = render({"tokens": {"accessTokenTTL": "10m"}})
    annotation = {
        d.config_hash: by_kind(d)[("Deployment", "auth")]["spec"]["template"]["metadata"]["annotations"]
        for d in (first, second)
    }
    assert len(annotation) == 2
    for digest, pod_annotations in annotation.items():
        assert pod_annotations[CONFIG_HASH_ANNOTATION] == digest


def test_deployment_runs_the_server_contract() -> None:
    deployment = deployment_of(SPECS["direct"])
    pod = deployment["spec"]["template"]["spec"]
    server = server_container(deployment)
    assert server["image"] == DEFAULT_IMAGE
    assert server["command"] == "authserver serve --host 0.0.0.0 --port 8080 --workers 1".split()
    assert server["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert server["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert server["envFrom"] == [{"configMapRef": {"name": "auth-config"}}]
    (migrate,) = pod["initContainers"]
    assert migrate["command"] == ["authserver", "migrate"]
    assert migrate["image"] == server["image"] and migrate["env"] == server["env"]
    assert migrate["envFrom"] == server["envFrom"]
    env = env_of(server)
    assert env["AUTHSERVER_DATABASE_URL"] == {"secretKeyRef": {"name": "auth-db", "key": "url"}}
    assert env["AUTHSERVER_ADMIN_TOKEN"] == {"secretKeyRef": {"name": "auth-admin", "key": "token"}}
    assert env["AUTHSERVER_SESSION_SECRET"] == {
        "secretKeyRef": {"name": "auth-admin", "key": "session-secret"}
    }
    assert pod["serviceAccountName"] == "auth"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {CONFIG_HASH_ANNOTATION: "abc123"}


def test_deployment_is_hardened() -> None:
    deployment = deployment_of(SPECS["direct"])
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert mounts["/tmp"] == "tmp"
        assert mounts["/etc/authserver/keys"] == "signing-keys"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert volumes["signing-keys"]["secret"]["secretName"] == "auth-signing-keys"
    assert "items" not in volumes["signing-keys"]["secret"]  # whole-volume mount: rotations reach the pods
    assert all("subPath" not in mount for mount in server_container(deployment)["volumeMounts"])


def test_deployment_resources_default_and_override() -> None:
    assert server_container(deployment_of({}))["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }
    custom = server_container(deployment_of(SPECS["direct-hpa"]))["resources"]
    assert custom == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}


def test_deployment_leaves_replicas_to_the_hpa() -> None:
    deployment = deployment_of(SPECS["direct-hpa"])
    assert "replicas" not in deployment["spec"]
    assert server_container(deployment)["command"][-1] == "2"  # workers


def test_embedded_deployment_uses_the_claim_and_recreates() -> None:
    deployment = deployment_of({})
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "auth-data"}} in pod["volumes"]
    assert {"name": "data", "mountPath": "/var/lib/authserver"} in server_container(deployment)[
        "volumeMounts"
    ]
    assert "AUTHSERVER_DATABASE_URL" not in env_of(server_container(deployment))  # from the ConfigMap
    assert deployment["spec"]["replicas"] == 1


def test_rollout_surges_only_within_the_budget() -> None:
    roomy = deployment_of(
        {"database": DB, "replicas": 2, "workers": 1} | {"database": {**DB, "maxConnections": 1000}}
    )
    # 2 pods x 450 = 900 of 900 usable: no room for a third pod
    assert roomy["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    many = deployment_of(SPECS["direct-hpa"])  # 21 x 4 = 84 <= 90
    assert many["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_deployment_behind_pgbouncer_points_only_the_server_at_it() -> None:
    deployment = deployment_of(SPECS["pgbouncer"])
    server_env = env_of(server_container(deployment))
    assert server_env["AUTHSERVER_DATABASE_HOST_OVERRIDE"] == "auth-pgbouncer.platform.svc"
    assert server_env["AUTHSERVER_DATABASE_PORT_OVERRIDE"] == "6432"
    assert server_env["AUTHSERVER_DATABASE_SSL_OVERRIDE"] == "disable"
    assert server_env["AUTHSERVER_DATABASE_NAME_OVERRIDE"] == "authyard"  # PgBouncer's alias, a bare key
    migrate_env = env_of(deployment["spec"]["template"]["spec"]["initContainers"][0])
    assert "AUTHSERVER_DATABASE_HOST_OVERRIDE" not in migrate_env  # migrations need a real session


def test_image_override() -> None:
    assert server_container(deployment_of({"image": "registry.local/authserver:dev"}))["image"] == (
        "registry.local/authserver:dev"
    )


def test_service() -> None:
    service = render_service("auth", "platform")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": "authserver",
        "app.kubernetes.io/instance": "auth",
        "app.kubernetes.io/component": "server",
    }
    deployment = deployment_of({})
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_hpa() -> None:
    hpa = render_hpa("auth", "platform", spec_of(SPECS["direct-hpa"]))
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "auth"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    metrics = hpa["spec"]["metrics"]
    assert metrics[0]["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 70},
    }
    assert metrics[1]["resource"] == {
        "name": "memory",
        "target": {"type": "Utilization", "averageUtilization": 80},
    }
    assert metrics[2] == {
        "type": "Pods",
        "pods": {
            "metric": {"name": "http_requests_per_second"},
            "target": {"type": "AverageValue", "averageValue": "50"},
        },
    }
    without_rps = render_hpa("auth", "platform", spec_of(SPECS["pgbouncer"]))
    assert [metric["type"] for metric in without_rps["spec"]["metrics"]] == ["Resource", "Resource"]


def test_pdb() -> None:
    pdb = render_pdb("auth", "platform")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "server"


def test_service_monitor() -> None:
    monitor = render_service_monitor("auth", "platform")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert (
        monitor["spec"]["selector"]["matchLabels"] == render_service("auth", "platform")["spec"]["selector"]
    )


def test_data_claim() -> None:
    claim = render_data_claim(
        "auth", "platform", spec_of({"storage": {"size": "5Gi", "storageClassName": "fast"}})
    )
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "fast",
    }
    assert "storageClassName" not in render_data_claim("auth", "platform", spec_of({}))["spec"]


def test_pgbouncer_config() -> None:
    spec = spec_of(SPECS["pgbouncer"])
    database = parse_database_url(DB_URL)
    ini = pgbouncer_ini(size_pools(spec), database)
    lines = set(ini.splitlines())
    assert {
        "[pgbouncer]",
        "pool_mode = transaction",
        "listen_port = 6432",
        "default_pool_size = 45",
        "max_db_connections = 45",
        "max_client_conn = 180",
        "server_tls_sslmode = require",
        "auth_type = scram-sha-256",
    } <= lines
    assert "s3cr" not in ini  # the ConfigMap holds no password
    assert databases_ini(database) == "[databases]\nauthyard = host='pg.db.svc' port=5433 dbname='authyard'\n"
    assert userlist(database) == '"authyard" "s3cr@t"\n'


def test_pgbouncer_objects() -> None:
    children = by_kind(render(SPECS["pgbouncer"]))
    deployment = children[("Deployment", "auth-pgbouncer")]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["containers"][0]["command"] == ["pgbouncer", "/etc/pgbouncer/config/pgbouncer.ini"]
    assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "pgbouncer"
    service = children[("Service", "auth-pgbouncer")]
    assert service["spec"]["ports"][0]["port"] == 6432
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    secret = children[("Secret", "auth-pgbouncer")]
    assert base64.b64decode(secret["data"]["userlist.txt"]).decode() == '"authyard" "s3cr@t"\n'
    annotations = str(deployment["spec"]["template"]["metadata"]["annotations"])
    assert "s3cr" not in annotations


def test_pgbouncer_needs_the_database_url() -> None:
    with pytest.raises(ValueError, match="urlSecretRef"):
        render(SPECS["pgbouncer"], Observed(cluster_issuer=CLUSTER_ISSUER, database_url=None))
    with pytest.raises(ValueError, match="postgresql://"):
        render(SPECS["pgbouncer"], Observed(cluster_issuer=CLUSTER_ISSUER, database_url="mysql://u:p@h/db"))


OWNER = {
    "apiVersion": "authyard.dev/v1alpha1",
    "kind": "AuthServer",
    "metadata": {"name": "auth", "namespace": "platform", "uid": "1234"},
}


def test_owned_by_adds_one_controller_reference() -> None:
    service = render_service("auth", "platform")
    owned = owned_by(service, OWNER)
    assert owned["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "authyard.dev/v1alpha1",
            "kind": "AuthServer",
            "name": "auth",
            "uid": "1234",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert "ownerReferences" not in service["metadata"]  # the input is not modified
    assert owned_by(owned, OWNER) == owned  # idempotent


def test_owned_by_refuses_another_namespace() -> None:
    with pytest.raises(ValueError, match="namespace"):
        owned_by(render_service("auth", "elsewhere"), OWNER)


def test_server_pods_drain_before_they_stop_and_are_killed_only_after_both() -> None:
    """A rollout or a scale-down loses no request (test_rolling_replacement.py runs the same settings'
    behaviour behind a real load balancer): the drain and the in-flight timeout fit in the grace period."""
    children = by_kind(render(SPECS["direct"]))
    config = children[("ConfigMap", "auth-config")]["data"]
    drain = int(config["AUTHSERVER_SHUTDOWN_DRAIN"].removesuffix("s"))
    timeout = int(config["AUTHSERVER_SHUTDOWN_TIMEOUT"].removesuffix("s"))
    assert drain >= 5  # longer than a Service takes to drop a terminating pod's endpoint
    pod = children[("Deployment", "auth")]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > drain + timeout


def test_configmap_passes_the_session_settings_and_the_server_reads_them() -> None:
    from datetime import timedelta

    from authserver.config import Settings

    spec = spec_of({"sessions": {"lifetime": "12h", "idleTimeout": "30m"}})
    data = render_configmap("auth", "platform", spec, size_pools(spec))["data"]
    assert (data["AUTHSERVER_LOGIN_SESSION_TTL"], data["AUTHSERVER_SESSION_IDLE_TIMEOUT"]) == ("12h", "30m")
    settings = Settings(
        login_session_ttl=data["AUTHSERVER_LOGIN_SESSION_TTL"],
        session_idle_timeout=data["AUTHSERVER_SESSION_IDLE_TIMEOUT"],
    )
    assert settings.session_policy.lifetime == timedelta(hours=12)
    assert settings.session_policy.idle_timeout == timedelta(minutes=30)
    default = spec_of({}).sessions.idle_timeout
    assert Settings(session_idle_timeout=default).session_policy.idle_timeout is None


def _a_ca_certificate(common_name: str) -> str:
    """A self-signed CA certificate (PEM), made with cryptography as any PKI would."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_a_trusted_ca_for_back_channel_logout_is_mounted_named_to_the_server_and_rolls_the_pods() -> None:
    spec = {"backchannelLogout": {"trustedCA": {"name": "rp-ca", "key": "bundle.pem"}}}
    first = render(
        spec, Observed(cluster_issuer=CLUSTER_ISSUER, backchannel_ca=_a_ca_certificate("cluster CA"))
    )
    deployment = by_kind(first)[("Deployment", "auth")]
    pod = deployment["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "backchannel-ca"]
    assert volume["configMap"] == {"name": "rp-ca", "items": [{"key": "bundle.pem", "path": "ca.crt"}]}
    mounts = {m["name"]: m for m in server_container(deployment)["volumeMounts"]}
    assert mounts["backchannel-ca"] == {
        "name": "backchannel-ca",
        "mountPath": "/etc/authserver/backchannel-ca",
        "readOnly": True,
    }
    config = by_kind(first)[("ConfigMap", "auth-config")]["data"]
    assert config["AUTHSERVER_BACKCHANNEL_LOGOUT_CA_FILE"] == "/etc/authserver/backchannel-ca/ca.crt"
    # Another CA in the same ConfigMap key: the pods roll (the server reads the file when a worker starts).
    second = render(
        spec, Observed(cluster_issuer=CLUSTER_ISSUER, backchannel_ca=_a_ca_certificate("cluster CA, renewed"))
    )
    assert first.config_hash != second.config_hash
    # Without the field nothing is mounted or set.
    plain = render({})
    assert "AUTHSERVER_BACKCHANNEL_LOGOUT_CA_FILE" not in by_kind(plain)[("ConfigMap", "auth-config")]["data"]


def test_a_trusted_ca_that_is_not_pem_certificates_is_refused_before_any_pod_sees_it() -> None:
    spec = {"backchannelLogout": {"trustedCA": {"name": "rp-ca", "key": "ca.crt"}}}
    with pytest.raises(ValueError, match=r"spec.backchannelLogout.trustedCA is not PEM CA certificates"):
        render(
            spec,
            Observed(
                cluster_issuer=CLUSTER_ISSUER, backchannel_ca="-----BEGIN CERTIFICATE-----\nnot base64\n"
            ),
        )


@pytest.mark.parametrize("scale", [{"replicas": 1}, {"replicas": 6, "workers": 4}])
def test_configmap_passes_the_rate_limits_as_budgets_for_the_whole_server(scale: dict[str, int]) -> None:
    """The budgets reach the pods as written, whatever the replicas and workers: the server divides them by
    the workers it counts live (``authserver.ratelimit``), so the operator must not."""
    from authserver.config import Settings

    spec = spec_of(
        {
            "database": SPECS["pgbouncer"]["database"],
            **scale,
            "rateLimits": {"perClient": {"requestsPerSecond": 2.5, "burst": 5}, "perAddress": {"burst": 50}},
        }
    )
    data = render_configmap("auth", "platform", spec, size_pools(spec))["data"]
    assert {key: data[key] for key in data if key.startswith("AUTHSERVER_TOKEN_")} == {
        "AUTHSERVER_TOKEN_RATE_PER_CLIENT": "2.5",
        "AUTHSERVER_TOKEN_BURST_PER_CLIENT": "5",
        "AUTHSERVER_TOKEN_RATE_PER_IP": "500",
        "AUTHSERVER_TOKEN_BURST_PER_IP": "50",
    }
    settings = Settings(
        token_rate_per_client=data["AUTHSERVER_TOKEN_RATE_PER_CLIENT"],
        token_burst_per_client=data["AUTHSERVER_TOKEN_BURST_PER_CLIENT"],
        token_rate_per_ip=data["AUTHSERVER_TOKEN_RATE_PER_IP"],
        token_burst_per_ip=data["AUTHSERVER_TOKEN_BURST_PER_IP"],
    )
    assert (settings.token_rate_per_client, settings.token_burst_per_client) == (2.5, 5)
    assert (settings.token_rate_per_ip, settings.token_burst_per_ip) == (500.0, 50)
    defaults = render_configmap("auth", "platform", spec_of({}), size_pools(spec_of({})))["data"]
    assert (defaults["AUTHSERVER_TOKEN_RATE_PER_CLIENT"], defaults["AUTHSERVER_TOKEN_BURST_PER_CLIENT"]) == (
        "200",
        "400",
    )
