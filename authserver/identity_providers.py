"""``AUTHSERVER_IDENTITY_PROVIDERS_FILE``: who may sign in, and how (local accounts, upstream providers).

The file is JSON, validated at startup with errors that name the field (never a secret's value); each
provider's client secret is read from its own mounted file, never written in this one. What it becomes is
``protocol.upstream_sign_in.IdentityProviders``.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from authserver.ldap.directory import LdapSettings
from authserver.loopback import is_loopback
from authserver.protocol.upstream_sign_in import (
    ClaimMapping,
    DirectoryUpstream,
    IdentityProviders,
    OidcUpstream,
    UpstreamProvider,
)

ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
ClaimName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
EmailDomain = Annotated[str, StringConstraints(pattern=r"^[^@\s.][^@\s]*$", max_length=253)]
_MAX_SECRET_BYTES = 4096


class _Claims(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: ClaimName = "sub"
    username: ClaimName = "preferred_username"
    email: ClaimName = "email"
    name: ClaimName = "name"
    groups: ClaimName = "groups"


def _readable_ca(value: Path | None) -> Path | None:
    if value is not None:
        try:
            ssl.create_default_context().load_verify_locations(cafile=str(value))
        except (OSError, ssl.SSLError):
            raise ValueError(f"{value}: not a readable PEM file of certificates") from None
    return value


class _OidcProvider(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ProviderName
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    type: Literal["oidc"]
    issuer: str
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    client_secret_file: Path
    scopes: list[Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]+$")]] = Field(
        default_factory=lambda: ["openid", "profile", "email"]
    )
    claims: _Claims = Field(default_factory=_Claims)
    allowed_email_domains: list[
        Annotated[str, StringConstraints(pattern=r"^[^@\s.][^@\s]*$", max_length=253)]
    ] = []
    allowed_groups: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = []
    trust_email_verified: bool = False
    ca_file: Path | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer_is_a_url(cls, value: str) -> str:
        # OIDC Discovery §2: an https URL without query or fragment; plain http only on loopback (tests).
        parts = urlsplit(value)
        if parts.query or parts.fragment or not parts.netloc:
            raise ValueError("must be an https URL without query or fragment")
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname)):
            raise ValueError("must be an https URL (http only for a loopback address)")
        return value

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        # Always sent: the ID token is how the provider says who signed in (OIDC Core §3.1.2.1).
        return list(dict.fromkeys(["openid", *value]))

    @field_validator("allowed_email_domains")
    @classmethod
    def _lower_case(cls, value: list[str]) -> list[str]:
        return [domain.lower() for domain in value]

    @field_validator("ca_file")
    @classmethod
    def _ca_file_loads(cls, value: Path | None) -> Path | None:
        return _readable_ca(value)

    def provider(self) -> OidcUpstream:
        try:
            secret = self.client_secret_file.read_bytes()
        except OSError as error:
            raise ValueError(
                f"provider {self.name}: client_secret_file {self.client_secret_file} cannot be read "
                f"({error.strerror})"
            ) from None
        text = secret[:_MAX_SECRET_BYTES].decode("utf-8", "replace").strip()
        if not text:
            raise ValueError(f"provider {self.name}: client_secret_file {self.client_secret_file} is empty")
        return OidcUpstream(
            name=self.name,
            display_name=self.display_name,
            issuer=self.issuer,
            client_id=self.client_id,
            client_secret=text,
            scopes=tuple(self.scopes),
            claims=ClaimMapping(**self.claims.model_dump()),
            allowed_email_domains=tuple(self.allowed_email_domains),
            allowed_groups=tuple(self.allowed_groups),
            trust_email_verified=self.trust_email_verified,
            ca_file=None if self.ca_file is None else str(self.ca_file),
        )


LdapAttribute = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9-]*$", max_length=64)]
LdapFilter = Annotated[str, StringConstraints(pattern=r"^\(.*\)$", max_length=1024)]


class _LdapProvider(BaseModel):
    """An LDAP directory (the operator's spec.identityProviders[].ldap, rendered)."""

    model_config = ConfigDict(extra="forbid")

    name: ProviderName
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    type: Literal["ldap"]
    url: Annotated[str, StringConstraints(pattern=r"^ldaps?://[^\s/?#]+$", max_length=512)]
    start_tls: bool = False
    ca_file: Path | None = None
    bind_dn: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    bind_password_file: Path
    user_base: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    user_filter: LdapFilter = "(objectClass=person)"
    username_attribute: LdapAttribute = "uid"
    subject_attribute: LdapAttribute = "entryUUID"
    email_attribute: LdapAttribute = "mail"
    name_attribute: LdapAttribute = "cn"
    group_base: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    group_filter: LdapFilter | None = None
    group_member_attribute: LdapAttribute | None = None
    group_member_value: Literal["dn", "username"] | None = None
    group_name_attribute: LdapAttribute | None = None
    allowed_groups: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = []
    timeout_seconds: float = Field(5.0, gt=0, le=30)

    @field_validator("ca_file")
    @classmethod
    def _ca_file_loads(cls, value: Path | None) -> Path | None:
        return _readable_ca(value)

    def provider(self) -> DirectoryUpstream:
        return DirectoryUpstream(name=self.name, display_name=self.display_name)

    def settings(self) -> LdapSettings:
        """The directory client's settings, with the service account's password read from its file."""
        try:
            secret = self.bind_password_file.read_bytes()
        except OSError as error:
            raise ValueError(
                f"provider {self.name}: bind_password_file {self.bind_password_file} cannot be read "
                f"({error.strerror})"
            ) from None
        password = secret[:_MAX_SECRET_BYTES].decode("utf-8", "replace").rstrip("\r\n")
        if not password:
            raise ValueError(f"provider {self.name}: bind_password_file {self.bind_password_file} is empty")
        groups: dict[str, Any] = {
            "group_filter": self.group_filter,
            "group_member_attribute": self.group_member_attribute,
            "group_member_value": self.group_member_value,
            "group_name_attribute": self.group_name_attribute,
        }
        return LdapSettings(
            name=self.name,
            url=self.url,
            bind_dn=self.bind_dn,
            bind_password=password,
            user_base=self.user_base,
            start_tls=self.start_tls,
            ca_file=self.ca_file,
            user_filter=self.user_filter,
            username_attribute=self.username_attribute,
            subject_attribute=self.subject_attribute,
            email_attribute=self.email_attribute,
            name_attribute=self.name_attribute,
            group_base=self.group_base,
            allowed_groups=frozenset(self.allowed_groups),
            timeout_seconds=self.timeout_seconds,
            **{name: value for name, value in groups.items() if value is not None},  # absent: the defaults
        )


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    local_accounts: bool = True
    providers: list[Annotated[_OidcProvider | _LdapProvider, Field(discriminator="type")]] = []


def _known_types(raw: object) -> None:
    """One clear error for a provider kind this server does not sign in with (rather than one per field)."""
    providers = raw.get("providers") if isinstance(raw, dict) else None
    for index, entry in enumerate(providers if isinstance(providers, list) else []):
        kind = entry.get("type") if isinstance(entry, dict) else None
        if isinstance(kind, str) and kind not in _KINDS:
            known = ", ".join(_KINDS)
            raise ValueError(f"providers.{index}.type: {kind!r} is not a kind this server knows ({known})")


_KINDS = ("oidc", "ldap")


def _location(loc: tuple[int | str, ...]) -> list[int | str]:
    """The field as the file names it: without the provider kind pydantic adds after the index."""
    parts = list(loc)
    if len(parts) > 2 and parts[0] == "providers" and parts[2] in _KINDS:
        del parts[2]
    return parts


def parse_identity_providers(text: str | bytes, source: str = "identity providers") -> IdentityProviders:
    """The configuration the file's text describes; ``ValueError`` naming every problem otherwise."""
    return parse_sign_in(text, source)[0]


def parse_sign_in(
    text: str | bytes, source: str = "identity providers"
) -> tuple[IdentityProviders, dict[str, LdapSettings]]:
    """The configuration the file's text describes, and each LDAP directory's client settings by provider
    name; ``ValueError`` naming every problem otherwise."""
    try:
        raw = json.loads(text)
        _known_types(raw)
        document = _Document.model_validate(raw)
    except ValueError as error:
        if isinstance(error, ValidationError):
            problems = "; ".join(
                f"{'.'.join(str(part) for part in _location(item['loc'])) or 'the document'}: {item['msg']}"
                for item in error.errors(include_input=False, include_url=False)
            )
        elif isinstance(error, json.JSONDecodeError):
            problems = f"not valid JSON ({error})"
        else:
            problems = str(error)
        raise ValueError(f"{source}: {problems}") from None
    names = [provider.name for provider in document.providers]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{source}: provider names must be unique: {', '.join(duplicates)}")
    if not document.local_accounts and not document.providers:
        raise ValueError(
            f"{source}: local_accounts is false and no provider is configured: nobody could sign in"
        )
    try:
        providers: tuple[UpstreamProvider, ...] = tuple(entry.provider() for entry in document.providers)
        directories = {
            provider.name: provider.settings()
            for provider in document.providers
            if isinstance(provider, _LdapProvider)
        }
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    return IdentityProviders(document.local_accounts, providers), directories


def load_sign_in(path: Path | None) -> tuple[IdentityProviders, dict[str, LdapSettings]]:
    """The file's configuration and its LDAP directories' settings; local accounts only without a file."""
    if path is None:
        return IdentityProviders(), {}
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror})") from None
    return parse_sign_in(text, str(path))
