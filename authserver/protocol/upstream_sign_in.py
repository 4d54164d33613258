"""Sign-in through an upstream identity provider: this server as an OpenID Connect relying party.

The decisions of OIDC Core §3.1 on the relying party's side, without HTTP: the authorization request sent
upstream (``state``, ``nonce`` and PKCE S256 always, RFC 9700 §2.1.1 and §4.5.3), the ID token's checks
(§3.1.3.7), the claims mapped to a local user, the provider's allow-lists, and the user provisioned just in
time with a stable link (provider name + upstream ``sub``, §2: only iss + sub identify a person; an e-mail
address is never enough to link to an existing account). ``web/upstream_oidc.py`` does the HTTP (discovery,
the token request, the JWK Set) and ``web/routers/upstream.py`` the browser's side.

Upstream tokens are used here and dropped: never stored, logged or forwarded to a client.

A provider is one ``UpstreamProvider``: an OpenID provider (``OidcUpstream``) or an LDAP directory
(``DirectoryUpstream``: the person types their directory password on this server's login page,
``authserver.ldap`` asks the directory), both behind the same ``IdentityProviders`` and the same just-in-time
users.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt

from authserver.protocol.models import User
from authserver.protocol.revocation_list import CLOCK_LEEWAY_SECONDS
from authserver.protocol.store import UserDirectory

# The ID token's signature: asymmetric algorithms only. HS* would use the client secret as the key (OIDC Core
# §10.1), which this server keeps only to authenticate; "none" is never acceptable for a code-flow ID token.
ID_TOKEN_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
MAX_GROUPS = 256
_MAX_VALUE_CHARS = 255
_MAX_GROUP_CHARS = 256  # as the operator's allowedGroups entries
_USERNAME_ALLOWED = re.compile(r"[^\s/\x00-\x1f\x7f]+")  # as the admin API's usernames (a path segment)
_PROVISIONING_ATTEMPTS = 8


@dataclass(frozen=True)
class ClaimMapping:
    """Which upstream claim gives each attribute of the local user."""

    subject: str = "sub"
    username: str = "preferred_username"
    email: str = "email"
    name: str = "name"
    groups: str = "groups"


@dataclass(frozen=True)
class OidcUpstream:
    """An upstream OpenID provider, as configured (``AUTHSERVER_IDENTITY_PROVIDERS_FILE``)."""

    name: str  # in URLs (/upstream/<name>/...) and in the stable link of its users
    display_name: str  # on the login page and the error pages
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    claims: ClaimMapping = ClaimMapping()
    allowed_email_domains: tuple[str, ...] = ()  # empty: any (or no) e-mail address
    allowed_groups: tuple[str, ...] = ()  # empty: any groups; otherwise at least one of these
    trust_email_verified: bool = False  # every e-mail address it gives counts as verified
    ca_file: str | None = None  # PEM file of CAs trusted for its endpoints, beside the public ones

    kind = "oidc"


@dataclass(frozen=True)
class DirectoryUpstream:
    """An LDAP directory people sign in to with their directory username and password (on this server's
    login page; the directory checks the password)."""

    name: str  # in the login form and in the stable link of its users
    display_name: str

    kind = "ldap"


UpstreamProvider = OidcUpstream | DirectoryUpstream


@dataclass(frozen=True)
class IdentityProviders:
    """Who may sign in, and how: local accounts (username and password) and the upstream providers."""

    local_accounts: bool = True
    providers: tuple[UpstreamProvider, ...] = ()

    def get(self, name: str) -> UpstreamProvider | None:
        return next((provider for provider in self.providers if provider.name == name), None)


class Failure(StrEnum):
    """What went wrong, as the person signing in is told it (the provider is named by the page)."""

    UNAVAILABLE = "unavailable"  # down, refused the connection, an HTTP error
    TIMEOUT = "timeout"
    INVALID_RESPONSE = "invalid_response"  # discovery, the token response or the ID token is not acceptable
    REFUSED = "refused"  # the provider answered the sign-in with an error (the person declined...)
    NOT_ALLOWED = "not_allowed"  # an allow-list (e-mail domain, groups) refuses the person
    DISABLED = "disabled"  # the local user linked to the person is disabled


class UpstreamFailure(Exception):
    """An upstream sign-in that cannot go on. ``message`` is for the person (no detail of the exchange);
    ``detail`` for the server's log (never a token)."""

    def __init__(self, failure: Failure, message: str, detail: str = "") -> None:
        super().__init__(detail or message)
        self.failure = failure
        self.message = message
        self.detail = detail or message


def invalid(detail: str) -> UpstreamFailure:
    return UpstreamFailure(Failure.INVALID_RESPONSE, "its answer could not be accepted", detail)


@dataclass(frozen=True)
class ProviderMetadata:
    """What this server uses of the provider's discovery document (OIDC Discovery §3)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    token_endpoint_auth_methods: tuple[str, ...] = ("client_secret_basic",)  # RFC 8414 §2's default
    id_token_algorithms: tuple[str, ...] = ("RS256",)  # OIDC Discovery §3: RS256 MUST be included

    @classmethod
    def parse(cls, document: Any, upstream: OidcUpstream) -> ProviderMetadata:
        if not isinstance(document, dict):
            raise invalid("the discovery document is not a JSON object")
        # OIDC Discovery §4.3: the issuer in the document MUST be identical to the one it was fetched for.
        if document.get("issuer") != upstream.issuer:
            raise invalid(f"the discovery document names another issuer: {document.get('issuer')!r}")
        urls = {}
        for member in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(member)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("https", "http"):
                raise invalid(f"the discovery document has no usable {member}")
            urls[member] = value
        userinfo = document.get("userinfo_endpoint")
        methods = _strings(document.get("token_endpoint_auth_methods_supported")) or ("client_secret_basic",)
        algorithms = _strings(document.get("id_token_signing_alg_values_supported")) or ("RS256",)
        return cls(
            issuer=upstream.issuer,
            userinfo_endpoint=userinfo if isinstance(userinfo, str) else None,
            token_endpoint_auth_methods=methods,
            id_token_algorithms=algorithms,
            **urls,
        )

    def client_authentication(self) -> str:
        """client_secret_basic unless the provider offers only client_secret_post (RFC 8414 §2)."""
        methods = self.token_endpoint_auth_methods
        if "client_secret_basic" not in methods and "client_secret_post" in methods:
            return "client_secret_post"
        return "client_secret_basic"


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


# --- The authorization request sent upstream --------------------------------------------------------------


def new_state() -> str:
    """An unguessable ``state`` (RFC 6749 §10.12), bound to the browser by the caller's cookie."""
    return secrets.token_urlsafe(32)


def code_challenge(verifier: str) -> str:
    """RFC 7636 §4.2, S256."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorization_url(
    metadata: ProviderMetadata,
    upstream: OidcUpstream,
    redirect_uri: str,
    state: str,
    nonce: str,
    verifier: str,
) -> str:
    """OIDC Core §3.1.2.1 with PKCE S256 (RFC 9700 §2.1.1: always, also for a confidential client) and a
    nonce (RFC 9700 §4.5.3.2), added to the endpoint's own query (which it may have, §3.1.2.1)."""
    parts = urlsplit(metadata.authorization_endpoint)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [
        ("response_type", "code"),
        ("client_id", upstream.client_id),
        ("redirect_uri", redirect_uri),
        ("scope", " ".join(upstream.scopes)),
        ("state", state),
        ("nonce", nonce),
        ("code_challenge", code_challenge(verifier)),
        ("code_challenge_method", "S256"),
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- The ID token -----------------------------------------------------------------------------------------


def check_id_token(
    token: str,
    keys: Sequence[Mapping[str, Any]],
    metadata: ProviderMetadata,
    upstream: OidcUpstream,
    nonce: str,
) -> dict[str, Any]:
    """The ID token's claims once OIDC Core §3.1.3.7 holds: signed by a key of the provider's JWK Set with
    an asymmetric algorithm (6-8), ``iss`` the configured issuer exactly (2), ``aud`` containing our client id
    (3) and, with several audiences, ``azp`` our client id (4-5), not expired (9), ``iat`` present (10),
    ``nonce`` the one sent (11). Raises ``UpstreamFailure`` naming the broken rule for the log."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise invalid("the ID token is not a JWS") from None
    algorithm = header.get("alg")
    if algorithm not in ID_TOKEN_ALGORITHMS or algorithm not in metadata.id_token_algorithms:
        raise invalid(f"the ID token is signed with {algorithm!r}, not an algorithm accepted here")
    key = _signing_key(keys, header.get("kid"), algorithm)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=upstream.client_id,
            issuer=upstream.issuer,
            leeway=CLOCK_LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "iat"], "verify_iat": False},
        )
    except jwt.InvalidAudienceError:
        raise invalid("the ID token is for another audience") from None
    except jwt.InvalidIssuerError:
        raise invalid("the ID token is from another issuer") from None
    except jwt.ExpiredSignatureError:
        raise invalid("the ID token has expired") from None
    except jwt.PyJWTError as error:
        raise invalid(f"the ID token is not acceptable: {error}") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != upstream.client_id:
        raise invalid("the ID token has several audiences and another authorized party (azp)")
    if "azp" in claims and claims["azp"] != upstream.client_id:
        raise invalid("the ID token was issued to another authorized party (azp)")
    received = claims.get("nonce")
    if not isinstance(received, str) or not secrets.compare_digest(received, nonce):
        raise invalid("the ID token's nonce is not the one this sign-in sent")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise invalid("the ID token has no subject")
    return claims


def _signing_key(keys: Sequence[Mapping[str, Any]], kid: Any, algorithm: str) -> Any:
    """The key the header names by kid, or the one key that fits the algorithm when it names none."""
    candidates = []
    for jwk in keys:
        if jwk.get("use", "sig") != "sig" or (kid is not None and jwk.get("kid") != kid):
            continue
        if jwk.get("alg") not in (None, algorithm):
            continue
        try:
            candidates.append(jwt.PyJWK(dict(jwk), algorithm).key)
        except jwt.PyJWTError:
            continue  # another key type, or a key PyJWT cannot use for this algorithm
    if len(candidates) != 1:
        raise UnknownSigningKey(
            f"no key of the provider's JWK Set fits the ID token (kid {kid!r}, {algorithm})"
        )
    return candidates[0]


class UnknownSigningKey(UpstreamFailure):
    """No key fits: the provider may have rotated its keys since its JWK Set was fetched."""

    def __init__(self, detail: str) -> None:
        super().__init__(Failure.INVALID_RESPONSE, "its answer could not be accepted", detail)


# --- Claims → the local user ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamIdentity:
    """The person, as the provider describes them (mapped claims)."""

    subject: str
    username: str | None
    email: str | None
    email_verified: bool
    name: str | None
    groups: tuple[str, ...]


def map_claims(upstream: OidcUpstream, claims: Mapping[str, Any]) -> UpstreamIdentity:
    mapping = upstream.claims
    subject = claims.get(mapping.subject)
    if not isinstance(subject, str) or not subject or len(subject) > _MAX_VALUE_CHARS:
        raise invalid(f"the claim {mapping.subject!r} (the subject) is missing or not a short string")
    email = _text(claims.get(mapping.email), 320)
    if email is not None and "@" not in email:
        email = None
    # Only a verified address may pass an e-mail domain rule or be shown as verified (OIDC Core §5.1:
    # email_verified says whether the provider checked it); a trusted provider vouches for every address.
    verified = email is not None and (upstream.trust_email_verified or claims.get("email_verified") is True)
    return UpstreamIdentity(
        subject=subject,
        username=_username(claims.get(mapping.username)),
        email=email,
        email_verified=verified,
        name=_text(claims.get(mapping.name), _MAX_VALUE_CHARS),
        groups=_groups(claims.get(mapping.groups)),
    )


def needs_userinfo(upstream: OidcUpstream, claims: Mapping[str, Any]) -> bool:
    """Whether a mapped claim is missing from the ID token (OIDC Core §5.4: a provider may return the scope's
    claims only from userinfo when an access token is issued)."""
    mapping = upstream.claims
    return any(name not in claims for name in (mapping.username, mapping.email, mapping.name, mapping.groups))


def merge_userinfo(id_token_claims: Mapping[str, Any], userinfo: Any) -> dict[str, Any]:
    """The ID token's claims completed by userinfo's. OIDC Core §5.3.2: userinfo's ``sub`` MUST be the ID
    token's, or its claims MUST NOT be used. The ID token's own claims win."""
    if not isinstance(userinfo, dict):
        raise invalid("the userinfo response is not a JSON object")
    if userinfo.get("sub") != id_token_claims.get("sub"):
        raise invalid("the userinfo response is about another subject")
    return {**userinfo, **id_token_claims}


def _text(value: Any, limit: int) -> str | None:
    return value.strip()[:limit] or None if isinstance(value, str) else None


def _username(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= _MAX_VALUE_CHARS and _USERNAME_ALLOWED.fullmatch(value) else None


def _groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    names = [item.strip() for item in value if isinstance(item, str) and item.strip()]
    return tuple(dict.fromkeys(name[:_MAX_GROUP_CHARS] for name in names))[:MAX_GROUPS]


def check_allowed(upstream: OidcUpstream, identity: UpstreamIdentity) -> None:
    """The provider's allow-lists: a verified e-mail address in an allowed domain, and a group among the
    allowed ones, when the configuration names any."""
    if upstream.allowed_email_domains:
        domain = identity.email.rsplit("@", 1)[1].lower() if identity.email else None
        if domain is None or not identity.email_verified:
            raise UpstreamFailure(
                Failure.NOT_ALLOWED,
                "it gave no verified e-mail address, and only some e-mail domains may sign in here",
            )
        if domain not in upstream.allowed_email_domains:
            raise UpstreamFailure(
                Failure.NOT_ALLOWED, f"people of the e-mail domain {domain} may not sign in here"
            )
    if upstream.allowed_groups and not set(identity.groups) & set(upstream.allowed_groups):
        raise UpstreamFailure(Failure.NOT_ALLOWED, "you are not in a group that may sign in here")


# --- Provisioning ----------------------------------------------------------------------------------------


def _refreshed(identity: UpstreamIdentity) -> Any:
    def change(user: User) -> User:
        # The provider is the source of these attributes: each sign-in takes them as they are now. The
        # username stays (it may be in use elsewhere, and a rename could collide).
        return replace(
            user,
            email=identity.email,
            email_verified=identity.email_verified,
            name=identity.name,
            groups=identity.groups,
        )

    return change


def _usernames(upstream: UpstreamProvider, identity: UpstreamIdentity) -> list[str]:
    """The usernames to try for a new user, best first. A name taken (by a local account, or by someone of
    another provider) is never reused: the person gets the name qualified by the provider, then numbered."""
    base = identity.username or (identity.email.split("@", 1)[0] if identity.email else None)
    qualified = (
        f"{base}@{upstream.name}" if base else f"{upstream.name}-{identity.subject}"[:_MAX_VALUE_CHARS]
    )
    names = [base] if base else []
    names += [qualified] + [f"{qualified}-{index}" for index in range(2, _PROVISIONING_ATTEMPTS)]
    names.append(f"{upstream.name}-{uuid.uuid4().hex[:12]}")
    return [name for name in names if _username(name) == name]


async def provision(directory: UserDirectory, upstream: UpstreamProvider, identity: UpstreamIdentity) -> User:
    """The local user linked to the person: found by the stable link and refreshed, or created with it."""
    linked = await directory.federated_sign_in(upstream.name, identity.subject, _refreshed(identity))
    if linked is None:
        for username in _usernames(upstream, identity):
            user = User(
                user_id=str(uuid.uuid4()),
                username=username,
                password_hash="",  # no local password: this person signs in through the provider only
                email=identity.email,
                email_verified=identity.email_verified,
                name=identity.name,
                groups=identity.groups,
            )
            if await directory.add_federated_user(upstream.name, identity.subject, user):
                linked = user
                break
            # The name is taken, or a concurrent first sign-in of the same person made the link.
            linked = await directory.federated_sign_in(upstream.name, identity.subject, _refreshed(identity))
            if linked is not None:
                break
    if linked is None:
        raise UpstreamFailure(Failure.UNAVAILABLE, "no account could be created for you", "no free username")
    if linked.disabled:
        raise UpstreamFailure(Failure.DISABLED, "your account here is disabled")
    return linked
