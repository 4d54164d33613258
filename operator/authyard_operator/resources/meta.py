"""Names and labels of an AuthServer's children: every renderer takes them from here, so that a selector,
a Service and a Deployment can never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authyard_operator.constants import FIELD_MANAGER

SERVER = "server"
PGBOUNCER = "pgbouncer"


@dataclass(frozen=True)
class Names:
    """The children's names, derived from the AuthServer's name."""

    instance: str

    @property
    def server(self) -> str:  # Deployment, Service, ServiceAccount, HPA, PDB, ServiceMonitor
        return self.instance

    @property
    def config(self) -> str:
        return f"{self.instance}-config"

    @property
    def signing_keys(self) -> str:
        return f"{self.instance}-signing-keys"

    @property
    def admin(self) -> str:
        return f"{self.instance}-admin"

    @property
    def data(self) -> str:
        return f"{self.instance}-data"

    @property
    def trusted_issuers(self) -> str:
        return f"{self.instance}-trusted-issuers"

    @property
    def pgbouncer(self) -> str:
        return f"{self.instance}-pgbouncer"

    @property
    def identity_providers(self) -> str:  # ConfigMap: spec.identityProviders for the server
        return f"{self.instance}-identity-providers"


def selector_labels(instance: str, component: str = SERVER) -> dict[str, str]:
    """The immutable part: what Deployments select and Services route to."""
    return {
        "app.kubernetes.io/name": "authserver",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
    }


def labels(instance: str, component: str = SERVER) -> dict[str, str]:
    return {
        **selector_labels(instance, component),
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        "app.kubernetes.io/part-of": "authyard",
    }


def object_meta(
    name: str,
    namespace: str,
    instance: str,
    component: str = SERVER,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels(instance, component)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta
