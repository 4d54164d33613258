"""``spec.identityProviders`` for the pods: one JSON document the server reads
(``AUTHSERVER_IDENTITY_PROVIDERS_FILE``) in a ConfigMap of its own, and one projected volume beside it that
carries the document and every secret it names as files.

The document holds no secret: a client secret, a bind password or a CA is a path under the same volume,
projected from the Secret or ConfigMap key the spec references. Nothing secret is ever in a ConfigMap, an
environment variable, an annotation or the status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from authyard_operator.resources.meta import Names, object_meta
from authyard_operator.spec.authserver import AuthServerSpec
from authyard_operator.spec.common import ConfigMapKeyRef, SecretKeyRef
from authyard_operator.spec.identity_providers import IdentityProvider, LdapUpstream, OidcUpstream

IDENTITY_PROVIDERS_DIR = "/etc/authserver/identity-providers"
DOCUMENT_NAME = "identity-providers.json"
VOLUME = "identity-providers"


def wanted(spec: AuthServerSpec) -> bool:
    """The server needs the document only when it differs from its default (local accounts only)."""
    providers = spec.identity_providers
    return bool(providers.providers) or not providers.local_accounts


@dataclass(frozen=True)
class Reference:
    """A Secret or ConfigMap key the pods read as a file: where it comes from and the spec field naming it."""

    kind: str  # "Secret" or "ConfigMap"
    name: str
    key: str
    path: str  # relative to IDENTITY_PROVIDERS_DIR
    field: str

    @property
    def file(self) -> str:
        return f"{IDENTITY_PROVIDERS_DIR}/{self.path}"


def references(spec: AuthServerSpec) -> list[Reference]:
    found: list[Reference] = []
    for provider in spec.identity_providers.providers:
        field = f"spec.identityProviders.providers[{provider.name}]"
        if provider.oidc is not None:
            secret = provider.oidc.client_secret_ref
            path = f"{provider.name}/client-secret"
            found.append(_secret(secret, path, f"{field}.oidc.clientSecretRef"))
        if provider.ldap is not None:
            ldap = provider.ldap
            path = f"{provider.name}/bind-password"
            found.append(_secret(ldap.bind_password_ref, path, f"{field}.ldap.bindPasswordRef"))
            ca_path = f"{provider.name}/ca.crt"
            if ldap.ca_config_map_ref is not None:
                found.append(_config_map(ldap.ca_config_map_ref, ca_path, f"{field}.ldap.caConfigMapRef"))
            if ldap.ca_secret_ref is not None:
                found.append(_secret(ldap.ca_secret_ref, ca_path, f"{field}.ldap.caSecretRef"))
    return found


def _secret(ref: SecretKeyRef, path: str, field: str) -> Reference:
    return Reference("Secret", ref.name, ref.key, path, field)


def _config_map(ref: ConfigMapKeyRef, path: str, field: str) -> Reference:
    return Reference("ConfigMap", ref.name, ref.key, path, field)


def document(spec: AuthServerSpec) -> dict[str, Any]:
    """What the server reads: every setting, and the paths of the secrets (never their values)."""
    return {
        "local_accounts": spec.identity_providers.local_accounts,
        "providers": [_provider(provider) for provider in spec.identity_providers.providers],
    }


def _provider(provider: IdentityProvider) -> dict[str, Any]:
    base = {"name": provider.name, "display_name": provider.display_name}
    directory = f"{IDENTITY_PROVIDERS_DIR}/{provider.name}"
    if provider.oidc is not None:
        return {**base, **_oidc(provider.oidc, directory)}
    assert provider.ldap is not None  # the spec rules: exactly one of oidc and ldap
    return {**base, **_ldap(provider.ldap, directory)}


def _oidc(oidc: OidcUpstream, directory: str) -> dict[str, Any]:
    return {
        "type": "oidc",
        "issuer": oidc.issuer,
        "client_id": oidc.client_id,
        "client_secret_file": f"{directory}/client-secret",
        "scopes": list(oidc.scopes),
        "claims": oidc.claims.model_dump(),
        "allowed_email_domains": list(oidc.allowed_email_domains),
        "allowed_groups": list(oidc.allowed_groups),
        "trust_email_verified": oidc.trust_email_verified,
    }


def _ldap(ldap: LdapUpstream, directory: str) -> dict[str, Any]:
    has_ca = ldap.ca_config_map_ref is not None or ldap.ca_secret_ref is not None
    groups = ldap.group_search
    return {
        "type": "ldap",
        "url": ldap.url,
        "start_tls": ldap.start_tls,
        "ca_file": f"{directory}/ca.crt" if has_ca else None,
        "bind_dn": ldap.bind_dn,
        "bind_password_file": f"{directory}/bind-password",
        "user_base": ldap.user_search.base_dn,
        "user_filter": ldap.user_search.filter,
        "username_attribute": ldap.user_search.username_attribute,
        "subject_attribute": ldap.attributes.subject,
        "email_attribute": ldap.attributes.email,
        "name_attribute": ldap.attributes.name,
        "group_base": groups.base_dn if groups else None,
        "group_filter": groups.filter if groups else None,
        "group_member_attribute": groups.member_attribute if groups else None,
        "group_member_value": groups.member_value.lower() if groups else None,
        "group_name_attribute": groups.name_attribute if groups else None,
        "allowed_groups": list(ldap.allowed_groups),
        "timeout_seconds": ldap.timeout_seconds,
    }


def render_configmap(name: str, namespace: str, spec: AuthServerSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(Names(name).identity_providers, namespace, name),
        "data": {DOCUMENT_NAME: json.dumps(document(spec), indent=2, sort_keys=True) + "\n"},
    }


def volume(name: str, spec: AuthServerSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The projected volume (the document and every referenced key) and its read-only mount."""
    sources: list[dict[str, Any]] = [
        {
            "configMap": {
                "name": Names(name).identity_providers,
                "items": [{"key": DOCUMENT_NAME, "path": DOCUMENT_NAME}],
            }
        }
    ]
    for reference in references(spec):
        kind = "secret" if reference.kind == "Secret" else "configMap"
        items = [{"key": reference.key, "path": reference.path}]
        sources.append({kind: {"name": reference.name, "items": items}})
    projected = {"name": VOLUME, "projected": {"sources": sources, "defaultMode": 0o440}}
    mount = {"name": VOLUME, "mountPath": IDENTITY_PROVIDERS_DIR, "readOnly": True}
    return projected, mount
