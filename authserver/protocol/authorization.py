"""The authorization request (RFC 6749 §4.1.1 + PKCE + OIDC): validate it before any user sees a page.

Two kinds of failure (RFC 6749 §4.1.2.1): while the client or its redirect URI is unknown, the user gets an
error page and is never redirected (no open redirect); once the redirect URI is trusted, errors go back to
the client as ``error`` parameters on it.

OpenID Connect's parameters (Core §3.1.2.1) are read here too: ``prompt`` as a list, ``max_age``,
``id_token_hint`` (verified against this server's own keys), ``login_hint``; ``request`` and ``request_uri``
are refused as unsupported (§6); ``claims`` (§5.5) is checked and kept (``protocol.claims``); ``display``,
``ui_locales``, ``claims_locales``, ``acr_values`` and any parameter this server does not know are accepted
and ignored. What they change is decided in
``authorization_flow``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt

from authserver.crypto.keyset import KeySet
from authserver.protocol.audience import choose_audience
from authserver.protocol.claims import check_satisfiable, parse_claims_request, required_subject
from authserver.protocol.client_authentication import ClientLookup
from authserver.protocol.errors import (
    InvalidRequest,
    OAuthError,
    RequestNotSupported,
    RequestUriNotSupported,
    UnauthorizedClient,
)
from authserver.protocol.models import Client, GrantType
from authserver.protocol.params import Params, check_no_duplicates, single
from authserver.protocol.pkce import check_challenge
from authserver.protocol.scopes import grant_scope
from authserver.protocol.tokens import audience_text


class AuthorizationPageError(Exception):
    """Shown to the user; never redirected."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    client_name: str
    redirect_uri: str
    scope: str
    audience: str
    code_challenge: str | None
    state: str | None = None
    nonce: str | None = None
    prompt: str | None = None  # the values, space-separated, each once
    max_age: int | None = None
    started_at: float = 0.0  # when the request arrived (epoch seconds): a sign-in it demands comes after
    id_token_hint_sub: str | None = None  # the subject of a verified id_token_hint
    login_hint: str | None = None
    skip_consent: bool = False  # the client's, when the request arrived: a trusted first-party client
    claims: str | None = None  # the ``claims`` request, normalised (``protocol.claims.parse_claims_request``)

    @property
    def required_subject(self) -> str | None:
        """The user a ``claims`` request's ``sub`` value names: no code for anyone else (OIDC Core §5.5.1)."""
        return required_subject(self.claims)

    @property
    def prompts(self) -> frozenset[str]:
        return frozenset(self.prompt.split()) if self.prompt else frozenset()

    @property
    def signed_in_since(self) -> float | None:
        """The earliest sign-in that satisfies this request (None: any). ``prompt=login`` (and
        ``select_account``, which this server answers with its login page) demands one after the request
        started; ``max_age`` one at most that many seconds before it (OIDC Core §3.1.2.1)."""
        bounds = []
        if self.prompts & _LOGIN_PROMPTS:
            bounds.append(self.started_at)
        if self.max_age is not None:
            bounds.append(self.started_at - self.max_age)
        return max(bounds, default=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuthorizationRequest:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})  # type: ignore[arg-type]  # data is a signed to_dict()


# OIDC Core §3.1.2.1: the prompt values; select_account is answered with the login page (this server keeps one
# account per browser session: choosing another one is signing in as it).
PROMPT_VALUES = ("none", "login", "consent", "select_account")
_LOGIN_PROMPTS = frozenset({"login", "select_account"})
_MAX_AGE = re.compile(r"^[0-9]{1,10}$")


def parse_prompt(text: str | None) -> str | None:
    if text is None:
        return None
    values = tuple(dict.fromkeys(value for value in text.split(" ") if value))
    unknown = [value for value in values if value not in PROMPT_VALUES]
    if unknown:
        raise InvalidRequest(f"unsupported prompt value: {' '.join(unknown)}")
    if "none" in values and len(values) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values")  # OIDC Core §3.1.2.1
    return " ".join(values) or None


def parse_max_age(text: str | None) -> int | None:
    if text is None:
        return None
    if not _MAX_AGE.match(text):
        raise InvalidRequest("max_age must be a non-negative number of seconds")
    return int(text)


def hinted_subject(hint: str | None, keys: Callable[[], KeySet], issuer: str) -> str | None:
    """The ``sub`` of an ID token this server issued (OIDC Core §3.1.2.1 id_token_hint): its signature is
    checked with the server's own keys; it may have expired, and need not be addressed to this client."""
    if hint is None:
        return None
    try:
        claims = keys().verify(
            hint,
            typ="JWT",  # an ID token's; an access token (at+jwt) is no hint
            issuer=issuer,
            options={"verify_aud": False, "verify_exp": False, "require": ("sub",)},
        )
    except jwt.PyJWTError:  # every failure of jws.verify, an unknown kid included
        raise InvalidRequest("id_token_hint is not an ID token issued by this server") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidRequest("id_token_hint has no subject")
    return subject


class RedirectError(Exception):
    """An OAuth error to send back to the client on its (already validated) redirect URI."""

    def __init__(
        self, redirect_uri: str, error: str, description: str, state: str | None, issuer: str
    ) -> None:
        super().__init__(description)
        self.location = redirect_with(
            redirect_uri, {"error": error, "error_description": description, "state": state, "iss": issuer}
        )


def redirect_with(redirect_uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({key: value for key, value in params.items() if value is not None})
    return f"{redirect_uri}{'&' if urlsplit(redirect_uri).query else '?'}{query}"


def redirect_uri_is_registered(requested: str, registered: Sequence[str]) -> bool:
    """Exact string comparison (OAuth 2.1 §4.1.1.2; RFC 9700 §4.1.3): no prefix, wildcard or normalisation;
    except that a registered loopback IP URI matches the same URI on any port (RFC 8252 §7.3: a native app
    listens on a port the OS picks at run time). The code is bound to the URI as requested, port included,
    so the token request must repeat that one."""
    if requested in registered:
        return True
    portless = _loopback_without_port(requested)
    return portless is not None and any(_loopback_without_port(uri) == portless for uri in registered)


# http, the loopback IP literal (RFC 8252 §7.3 names 127.0.0.1 and [::1]; not "localhost", §8.3), a port
# or none, nothing else in the authority (no user information).
_LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?(?=[/?]|$)")


def _loopback_without_port(uri: str) -> str | None:
    match = _LOOPBACK.match(uri)
    if match is None or int(match[2] or 0) > 65535:
        return None
    return f"http://{match[1]}{uri[match.end() :]}"


def _pkce_challenge(params: Params, client: Client) -> str | None:
    """The request's S256 challenge. Only a confidential client registered without require_pkce may leave it
    out, and only from an OpenID Connect request (``openid`` scope): such a client protects its codes with the
    ``nonce`` instead, which it checks in the ID token (RFC 9700 §2.1.1). The server does not demand the
    nonce: whether the client checks one is its own to know, and a request without one is legal OIDC
    (Core §3.1.2.1; conformance module oidcc-ensure-request-without-nonce-succeeds-for-code-flow). A
    challenge that is sent is always checked and enforced at redemption."""
    challenge, method = single(params, "code_challenge"), single(params, "code_challenge_method")
    if challenge is None and method is None and not client.require_pkce and not client.is_public:
        if "openid" in (single(params, "scope") or "").split():
            return None
    return check_challenge(challenge, method)


async def validate_authorization_request(
    params: Params,
    lookup: ClientLookup,
    issuer: str,
    default_audience: str,
    keys: Callable[[], KeySet],
    *,
    now: float | None = None,
) -> AuthorizationRequest:
    try:
        check_no_duplicates(params)
        client_id = single(params, "client_id")
        redirect_uri = single(params, "redirect_uri")
    except OAuthError as error:
        raise AuthorizationPageError(error.description) from None
    if not client_id:
        raise AuthorizationPageError("The request has no client_id.")
    client = await lookup(client_id[:512])
    if client is None:
        raise AuthorizationPageError("The application that sent you here is not registered.")
    if redirect_uri is None and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    if redirect_uri is None or not redirect_uri_is_registered(redirect_uri, client.redirect_uris):
        raise AuthorizationPageError("The redirect_uri is not registered for this application.")

    state = single(params, "state")
    try:
        # OIDC Core §6 / §3.1.2.6: request objects are not supported, by value or by reference.
        if single(params, "request") is not None:
            raise RequestNotSupported("request objects are not supported")
        if single(params, "request_uri") is not None:
            raise RequestUriNotSupported("request_uri is not supported")
        if single(params, "response_type") != "code":
            raise InvalidRequest("response_type must be 'code'")
        if GrantType.AUTHORIZATION_CODE not in client.grant_types:
            raise UnauthorizedClient("this client may not use the authorization_code grant")
        challenge = _pkce_challenge(params, client)
        scope = grant_scope(single(params, "scope"), client.scopes)
        audience = choose_audience(params.get("resource") or (), client, default_audience)
        prompt = parse_prompt(single(params, "prompt"))
        max_age = parse_max_age(single(params, "max_age"))
        hint_subject = hinted_subject(single(params, "id_token_hint"), keys, issuer)
        login_hint = single(params, "login_hint")
        nonce = single(params, "nonce")
        claims = parse_claims_request(single(params, "claims"))
        required_subject(claims)  # a malformed sub value is refused here, not at the first page
        check_satisfiable(claims)
    except OAuthError as error:
        raise RedirectError(redirect_uri, error.error, error.description, state, issuer) from None
    return AuthorizationRequest(
        client_id=client.client_id,
        client_name=client.name,
        redirect_uri=redirect_uri,
        scope=scope,
        audience=audience_text(audience),
        code_challenge=challenge,
        state=state,
        nonce=nonce,
        prompt=prompt,
        max_age=max_age,
        started_at=time.time() if now is None else now,
        id_token_hint_sub=hint_subject,
        login_hint=login_hint[:255] if login_hint else None,
        skip_consent=client.skip_consent,
        claims=claims,
    )
