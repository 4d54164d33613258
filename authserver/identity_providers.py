"""``AUTHSERVER_IDENTITY_PROVIDERS_FILE``: who may sign in, and how (local accounts, upstream providers).

The file is JSON, validated at startup with errors that name the field (never a secret's value); each
provider's client secret is read from its own mounted file, never written in this one. What it becomes is
``protocol.upstream_sign_in.IdentityProviders``.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from authserver.protocol.upstream_sign_in import ClaimMapping, IdentityProviders, OidcUpstream

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


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname)):
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
        if value is not None:
            try:
                ssl.create_default_context().load_verify_locations(cafile=str(value))
            except (OSError, ssl.SSLError):
                raise ValueError(f"{value}: not a readable PEM file of certificates") from None
        return value

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


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    local_accounts: bool = True
    providers: list[_OidcProvider] = []


def _known_types(raw: object) -> None:
    """One clear error for a provider kind this server does not sign in with (rather than one per field)."""
    providers = raw.get("providers") if isinstance(raw, dict) else None
    for index, entry in enumerate(providers if isinstance(providers, list) else []):
        kind = entry.get("type") if isinstance(entry, dict) else None
        if isinstance(kind, str) and kind not in _KINDS:
            known = ", ".join(_KINDS)
            raise ValueError(f"providers.{index}.type: {kind!r} is not a kind this server knows ({known})")


_KINDS = ("oidc",)


def parse_identity_providers(text: str | bytes, source: str = "identity providers") -> IdentityProviders:
    """The configuration the file's text describes; ``ValueError`` naming every problem otherwise."""
    try:
        raw = json.loads(text)
        _known_types(raw)
        document = _Document.model_validate(raw)
    except ValueError as error:
        if isinstance(error, ValidationError):
            problems = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or 'the document'}: {item['msg']}"
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
        providers = tuple(provider.provider() for provider in document.providers)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    return IdentityProviders(document.local_accounts, providers)


def load_identity_providers(path: Path | None) -> IdentityProviders:
    """The file's configuration; local accounts only when no file is configured."""
    if path is None:
        return IdentityProviders()
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror})") from None
    return parse_identity_providers(text, str(path))
