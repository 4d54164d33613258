"""AuthServer spec.identityProviders rendered for the pods: the document the server reads names every
setting and only the paths of secrets; the secrets reach the pods as files of one projected volume; a change
of a referenced Secret's version rolls the pods; and nothing is rendered for the default (local accounts)."""

from __future__ import annotations

import json
from typing import Any

from authyard_operator.resources.bundle import Observed, unwanted_children
from authyard_operator.spec import AuthServerSpec

from tests.operator.support import CLUSTER_ISSUER, by_kind, render
from tests.operator.test_spec_rules import LDAP_UPSTREAM, OIDC_UPSTREAM

SECRET_VALUES = ("s3cr3t-client", "s3cr3t-bind")  # in no rendered object, whatever the spec
UPSTREAMS = {
    "identityProviders": {
        "localAccounts": False,
        "providers": [
            {
                "name": "corp",
                "displayName": "Corp SSO",
                "oidc": {
                    **OIDC_UPSTREAM,
                    "scopes": ["openid", "email", "groups"],
                    "claims": {"username": "email"},
                    "allowedEmailDomains": ["example.com"],
                    "trustEmailVerified": True,
                },
            },
            {
                "name": "directory",
                "displayName": "Directory",
                "ldap": {
                    **LDAP_UPSTREAM,
                    "caConfigMapRef": {"name": "ldap-ca", "key": "ca.crt"},
                    "userSearch": {
                        "baseDN": "ou=people,dc=example,dc=com",
                        "filter": "(&(objectClass=person)(!(employeeType=disabled)))",
                    },
                    "groupSearch": {"baseDN": "ou=groups,dc=example,dc=com", "memberValue": "Username"},
                    "allowedGroups": ["platform"],
                },
            },
        ],
    }
}


def _observed(versions: tuple[str, ...] = ()) -> Observed:
    return Observed(cluster_issuer=CLUSTER_ISSUER, identity_provider_versions=versions)


def _document(desired: Any) -> dict[str, Any]:
    configmap = by_kind(desired)[("ConfigMap", "auth-identity-providers")]
    loaded: dict[str, Any] = json.loads(configmap["data"]["identity-providers.json"])
    return loaded


def test_the_server_reads_every_setting_and_only_the_paths_of_secrets() -> None:
    desired = render(UPSTREAMS, _observed(("11", "12", "13")))
    document = _document(desired)
    assert document["local_accounts"] is False
    corp, directory = document["providers"]
    assert corp == {
        "name": "corp",
        "display_name": "Corp SSO",
        "type": "oidc",
        "issuer": "https://login.example.com",
        "client_id": "authyard",
        "client_secret_file": "/etc/authserver/identity-providers/corp/client-secret",
        "scopes": ["openid", "email", "groups"],
        "claims": {
            "subject": "sub",
            "username": "email",
            "email": "email",
            "name": "name",
            "groups": "groups",
        },
        "allowed_email_domains": ["example.com"],
        "allowed_groups": [],
        "trust_email_verified": True,
    }
    assert directory["type"] == "ldap" and directory["url"] == "ldaps://ldap.example.com"
    assert directory["bind_password_file"] == "/etc/authserver/identity-providers/directory/bind-password"
    assert directory["ca_file"] == "/etc/authserver/identity-providers/directory/ca.crt"
    assert directory["user_filter"] == "(&(objectClass=person)(!(employeeType=disabled)))"
    assert (directory["group_member_attribute"], directory["group_member_value"]) == ("member", "username")
    assert directory["allowed_groups"] == ["platform"] and directory["timeout_seconds"] == 5
    config = by_kind(desired)[("ConfigMap", "auth-config")]["data"]
    path = "/etc/authserver/identity-providers/identity-providers.json"
    assert config["AUTHSERVER_IDENTITY_PROVIDERS_FILE"] == path


def test_secrets_reach_the_pods_as_files_of_one_read_only_projected_volume() -> None:
    deployment = by_kind(render(UPSTREAMS, _observed()))[("Deployment", "auth")]
    pod = deployment["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "identity-providers"]
    assert volume["projected"]["defaultMode"] == 0o440
    assert volume["projected"]["sources"] == [
        {
            "configMap": {
                "name": "auth-identity-providers",
                "items": [{"key": "identity-providers.json", "path": "identity-providers.json"}],
            }
        },
        {"secret": {"name": "upstream", "items": [{"key": "secret", "path": "corp/client-secret"}]}},
        {"secret": {"name": "ldap", "items": [{"key": "password", "path": "directory/bind-password"}]}},
        {"configMap": {"name": "ldap-ca", "items": [{"key": "ca.crt", "path": "directory/ca.crt"}]}},
    ]
    [server] = [c for c in pod["containers"] if c["name"] == "authserver"]
    [mount] = [m for m in server["volumeMounts"] if m["name"] == "identity-providers"]
    assert mount == {
        "name": "identity-providers",
        "mountPath": "/etc/authserver/identity-providers",
        "readOnly": True,
    }
    # No secret value can be in any rendered object: the operator never read one into them.
    rendered = json.dumps(render(UPSTREAMS, _observed()).children)
    assert not any(value in rendered for value in SECRET_VALUES)
    referenced = [
        variable["valueFrom"]["secretKeyRef"]["name"]
        for variable in server.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    ]
    assert "upstream" not in referenced and "ldap" not in referenced  # files, not environment variables


def test_a_new_version_of_a_referenced_secret_or_a_changed_provider_rolls_the_pods() -> None:
    first = render(UPSTREAMS, _observed(("11", "12", "13")))
    rotated = render(UPSTREAMS, _observed(("11", "14", "13")))
    assert first.config_hash != rotated.config_hash
    renamed = json.loads(json.dumps(UPSTREAMS))
    renamed["identityProviders"]["providers"][0]["displayName"] = "Corp"
    changed = render(renamed, _observed(("11", "12", "13")))
    assert changed.config_hash != first.config_hash
    same = render(UPSTREAMS, _observed(("11", "12", "13")))
    assert same.config_hash == first.config_hash


def test_local_accounts_only_renders_nothing_and_removes_an_earlier_document() -> None:
    plain = render({}, _observed())
    assert ("ConfigMap", "auth-identity-providers") not in by_kind(plain)
    assert "AUTHSERVER_IDENTITY_PROVIDERS_FILE" not in by_kind(plain)[("ConfigMap", "auth-config")]["data"]
    pod = by_kind(plain)[("Deployment", "auth")]["spec"]["template"]["spec"]
    assert all(volume["name"] != "identity-providers" for volume in pod["volumes"])
    assert ("v1", "ConfigMap", "auth-identity-providers") in unwanted_children("auth", AuthServerSpec())
    with_upstreams = AuthServerSpec.model_validate(UPSTREAMS)
    assert ("v1", "ConfigMap", "auth-identity-providers") not in unwanted_children("auth", with_upstreams)
