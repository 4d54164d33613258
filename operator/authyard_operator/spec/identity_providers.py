"""AuthServer ``spec.identityProviders``: the OpenID providers and LDAP directories people sign in with."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from authyard_operator.spec.common import (
    DNS_LABEL_PATTERN,
    ConfigMapKeyRef,
    Scope,
    SecretKeyRef,
    SpecModel,
)

# An upstream issuer is reached from the pods over https (OIDC Discovery §4: the issuer is an https URL).
UPSTREAM_ISSUER_PATTERN = r"^https://[^\s/?#]+(/[^\s?#]*[^\s?#/])?$"
LDAP_URL_PATTERN = r"^ldaps?://[^\s/?#]+$"
ProviderName = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=32)]
Attribute = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9-]*$", min_length=1, max_length=64)]
Claim = Annotated[str, Field(pattern=r"^[!-~]+$", min_length=1, max_length=128)]
# An RFC 4515 filter, parenthesised; the server escapes every value it puts in one.
Filter = Annotated[str, Field(pattern=r"^\(.*\)$", min_length=3, max_length=1024)]
DistinguishedName = Annotated[str, Field(pattern=r"^\S.*\S$|^\S$", min_length=1, max_length=512)]
EmailDomain = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]
GroupName = Annotated[str, Field(min_length=1, max_length=256)]


class OidcClaims(SpecModel):
    """Which upstream ID-token or userinfo claims become the person's attributes here."""

    subject: Claim = Field("sub", description="The stable identifier (linked to the local account).")
    username: Claim = Field("preferred_username", description="The username (preferred_username here).")
    email: Claim = Field("email", description="The email address.")
    name: Claim = Field("name", description="The display name.")
    groups: Claim = Field("groups", description="The groups (a list of strings).")


class OidcUpstream(SpecModel):
    """An OpenID Connect provider (Entra ID, Okta, Google, Keycloak, Dex...): Authyard is its relying party,
    with the authorization code flow, PKCE, state and nonce always."""

    issuer: str = Field(
        max_length=512,
        pattern=UPSTREAM_ISSUER_PATTERN,
        description="The upstream issuer (https); its discovery document is read from "
        "<issuer>/.well-known/openid-configuration.",
    )
    client_id: str = Field(min_length=1, max_length=256, description="Authyard's client id at the upstream.")
    client_secret_ref: SecretKeyRef = Field(
        description="The client secret: a Secret key, mounted into the pods as a file (never in a "
        "ConfigMap, an environment variable or the status)."
    )
    scopes: list[Scope] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Scopes requested upstream (openid is always sent).",
    )
    claims: OidcClaims = Field(default_factory=OidcClaims, description="Claim mappings.")
    allowed_email_domains: list[EmailDomain] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Only people whose (verified) email is in one of these domains may sign in. Empty: any.",
    )
    allowed_groups: list[GroupName] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Only members of one of these upstream groups may sign in. Empty: anyone.",
    )
    trust_email_verified: bool = Field(
        False,
        description="Take the upstream's email_verified as is. Off: the email is kept as unverified.",
    )


class LdapUserSearch(SpecModel):
    base_dn: DistinguishedName = Field(alias="baseDN", description="Where people are searched (subtree).")
    filter: Filter = Field(
        "(objectClass=person)",
        description="Selects the people who may sign in; exclude disabled accounts here, e.g. "
        "(&(objectClass=person)(!(employeeType=disabled))).",
    )
    username_attribute: Attribute = Field("uid", description="The attribute people type as their username.")


class LdapGroupSearch(SpecModel):
    base_dn: DistinguishedName = Field(alias="baseDN", description="Where groups are searched (subtree).")
    filter: Filter = Field("(objectClass=groupOfNames)", description="Selects the groups.")
    member_attribute: Attribute = Field("member", description="The group attribute that lists its members.")
    member_value: Literal["DN", "Username"] = Field(
        "DN", description="What that attribute holds: the person's DN (member) or username (memberUid)."
    )
    name_attribute: Attribute = Field("cn", description="The group's name, as it appears in tokens.")


class LdapAttributes(SpecModel):
    subject: Attribute = Field(
        "entryUUID",
        description="The stable identifier (RFC 4530 entryUUID; objectGUID on Active Directory). Absent on "
        "an entry: its DN.",
    )
    email: Attribute = Field("mail", description="The email address.")
    name: Attribute = Field("cn", description="The display name.")


class LdapUpstream(SpecModel):
    """An LDAP directory (OpenLDAP, Active Directory, FreeIPA): a read-only service account finds the person,
    the server binds as them with the password they typed, then reads their groups."""

    url: str = Field(
        max_length=512,
        pattern=LDAP_URL_PATTERN,
        description="ldaps://host[:port], or ldap://host[:port] with startTLS.",
    )
    start_tls: bool = Field(False, alias="startTLS", description="Upgrade ldap:// with StartTLS.")
    ca_config_map_ref: ConfigMapKeyRef | None = Field(
        None, description="PEM CA certificates the directory's certificate is verified with."
    )
    ca_secret_ref: SecretKeyRef | None = Field(
        None, description="The same, from a Secret. At most one of caConfigMapRef and caSecretRef."
    )
    bind_dn: DistinguishedName = Field(alias="bindDN", description="The read-only service account's DN.")
    bind_password_ref: SecretKeyRef = Field(
        description="The service account's password: a Secret key, mounted into the pods as a file."
    )
    user_search: LdapUserSearch = Field(description="How people are found.")
    group_search: LdapGroupSearch | None = Field(
        None, description="How their groups are found. Absent: no groups."
    )
    attributes: LdapAttributes = Field(default_factory=LdapAttributes, description="Attribute mappings.")
    allowed_groups: list[GroupName] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Only members of one of these groups may sign in. Empty: anyone the user filter selects.",
    )
    timeout_seconds: int = Field(5, ge=1, le=30, description="Bound on each connect and each answer.")


class IdentityProvider(SpecModel):
    """One upstream: exactly one of oidc and ldap."""

    name: ProviderName = Field(description="Names the upstream in URLs (/upstream/<name>/...) and links.")
    display_name: str = Field(min_length=1, max_length=64, description="The sign-in page's button label.")
    oidc: OidcUpstream | None = Field(None, description="An OpenID Connect provider.")
    ldap: LdapUpstream | None = Field(None, description="An LDAP directory.")


class IdentityProviders(SpecModel):
    """How people sign in: local accounts, upstream identity providers, or both."""

    local_accounts: bool = Field(
        True,
        description="Offer local accounts (authserver users ...) on the sign-in page. Turning them off "
        "needs at least one provider.",
    )
    providers: list[IdentityProvider] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Upstream identity providers, shown on the sign-in page in this order.",
    )
