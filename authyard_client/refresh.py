"""When to get a new token, shared by the async and the sync token source (no I/O here).

A token is refreshed once a random fraction (``refresh_fraction``, e.g. 0.75-0.85: the jitter spreads the
refreshes of many replicas) of its lifetime has passed. A failed refresh is retried after an exponential
backoff with jitter while the token in hand still serves; a token is never served once less than
``min_validity`` of its life is left, then callers get :class:`TokenUnavailable` until a refresh succeeds.
Times are on the source's clock (monotonic by default), from the moment the token request was sent, so a
slow response shortens the token's life here rather than lengthening it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from authyard_client.client_auth import ClientAuthentication
from authyard_client.errors import ClientKitError, ConfigurationError, TokenRequestError, TokenUnavailable

# A refresh that starts in the last tenth of the token's life (or after it) is an emergency one.
EMERGENCY_FRACTION = 0.1
CLIENT_CREDENTIALS = "client_credentials"


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    obtained_at: float  # the source's clock when the request was sent
    lifetime: float  # seconds, from expires_in
    scope: str | None

    @property
    def expires_at(self) -> float:
        return self.obtained_at + self.lifetime


@dataclass(frozen=True)
class RefreshPolicy:
    refresh_fraction: tuple[float, float] = (0.75, 0.85)
    min_validity: float = 1.0  # seconds of life a token must have left to be served
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        low, high = self.refresh_fraction
        if not 0 < low <= high < 1 - EMERGENCY_FRACTION:
            raise ConfigurationError("refresh_fraction must satisfy 0 < low <= high < 0.9")
        if self.min_validity < 0 or self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            raise ConfigurationError("min_validity >= 0 and 0 < backoff_initial <= backoff_max")


class Schedule:
    """The token in hand and when to replace it. Not thread-safe: its owner serialises access."""

    def __init__(self, policy: RefreshPolicy) -> None:
        self.policy = policy
        self.token: AccessToken | None = None
        self.refresh_at = 0.0
        self.retry_at = 0.0  # after a failure: no new attempt before this
        self.failures = 0
        self.last_error: ClientKitError | None = None
        self._rejected = False

    def usable(self, now: float) -> AccessToken | None:
        token = self.token
        if token is not None and now < token.expires_at - self.policy.min_validity:
            return token
        return None

    def due(self, now: float) -> bool:
        """A refresh should start now (the token in hand, if any, has reached its refresh time)."""
        return now >= self.refresh_at and now >= self.retry_at

    def may_attempt(self, now: float) -> bool:
        return now >= self.retry_at

    def kind(self, now: float) -> str:
        token = self.token
        if self._rejected:
            return "rejected"
        if token is None:
            return "initial" if self.failures == 0 and self.last_error is None else "emergency"
        if now >= token.expires_at - EMERGENCY_FRACTION * token.lifetime:
            return "emergency"
        return "proactive"

    def life_used(self, now: float) -> float | None:
        token = self.token
        return None if token is None else (now - token.obtained_at) / token.lifetime

    def succeeded(self, token: AccessToken) -> None:
        self.token = token
        low, high = self.policy.refresh_fraction
        self.refresh_at = token.obtained_at + token.lifetime * random.uniform(low, high)  # noqa: S311
        self.failures, self.retry_at, self.last_error, self._rejected = 0, 0.0, None, False

    def failed(self, error: ClientKitError, now: float) -> None:
        self.failures += 1
        self.last_error = error
        ceiling = min(self.policy.backoff_max, self.policy.backoff_initial * 2 ** (self.failures - 1))
        # "Equal jitter": at least half the backoff, so retries of many replicas spread without bunching.
        self.retry_at = now + ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311

    def reject(self, value: str) -> bool:
        """A resource server refused ``value``: drop it if it is still the token in hand (concurrent
        refusals of the same token then cause one refresh, not one each)."""
        if self.token is None or self.token.value != value:
            return False
        self.token, self.refresh_at, self.retry_at, self._rejected = None, 0.0, 0.0, True
        return True

    def unavailable(self, now: float) -> TokenUnavailable:
        token = self.token
        if token is None:
            state = "no token has been obtained yet"
        else:
            state = f"the last token expired {max(0.0, now - token.expires_at):.1f}s ago"
        wait = max(0.0, self.retry_at - now)
        error = TokenUnavailable(
            f"no valid access token: {state}; the last token request failed ({self.last_error}); "
            f"next attempt in {wait:.1f}s"
        )
        error.__cause__ = self.last_error
        return error


@dataclass(frozen=True)
class TokenRequest:
    """One client_credentials request (RFC 6749 §4.4.2), built anew for each attempt (a fresh assertion,
    the current service-account token file)."""

    url: str
    form: dict[str, Any]
    headers: dict[str, str]


def build_request(
    auth: ClientAuthentication, token_endpoint: str, scope: str, resources: tuple[str, ...]
) -> TokenRequest:
    form: dict[str, str] = {"grant_type": CLIENT_CREDENTIALS}
    if scope:
        form["scope"] = scope
    headers = {"Accept": "application/json"}
    auth.apply(form, headers, token_endpoint)
    data: dict[str, Any] = dict(form)
    if resources:
        data["resource"] = list(resources)  # RFC 8707 §2: one parameter per resource
    return TokenRequest(token_endpoint, data, headers)


def parse_token_response(response: httpx.Response, sent_at: float, min_validity: float) -> AccessToken:
    """The access token of a successful response (RFC 6749 §5.1), or TokenRequestError with the §5.2 error
    the server sent. The server's error_description is kept (it says which rule refused the client)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            description = body.get("error_description")
            detail = f": {description}" if isinstance(description, str) else ""
            raise TokenRequestError(
                f"the token endpoint refused the request ({response.status_code} {body['error']}{detail})",
                error=body["error"],
                status_code=response.status_code,
            )
        raise TokenRequestError(
            f"the token endpoint answered {response.status_code}", status_code=response.status_code
        )
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise TokenRequestError("the token endpoint's answer has no access_token", status_code=200)
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":  # RFC 6749 §7.1: case-insensitive
        raise TokenRequestError(f"unsupported token_type {token_type!r} (only Bearer)", status_code=200)
    lifetime = _lifetime(body)
    if lifetime <= min_validity:
        raise TokenRequestError(
            f"the token lives {lifetime:.0f}s, not longer than min_validity {min_validity:.0f}s",
            status_code=200,
        )
    scope = body.get("scope")
    return AccessToken(body["access_token"], sent_at, lifetime, scope if isinstance(scope, str) else None)


def _lifetime(body: dict[str, Any]) -> float:
    expires_in = body.get("expires_in")
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return float(expires_in)
    # expires_in is only RECOMMENDED (RFC 6749 §5.1); a JWT access token carries exp (RFC 9068 §2.2).
    try:
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    except jwt.PyJWTError:
        claims = {}
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp > time.time():
        return float(exp) - time.time()
    raise TokenRequestError("the token response has no expires_in and the token no exp", status_code=200)


def discovered_token_endpoint(document: Any, issuer: str) -> str:
    """The token endpoint of a discovery document whose issuer is the one configured (OIDC Discovery §4.3,
    RFC 8414 §3.3: they MUST be identical)."""
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        found = document.get("issuer") if isinstance(document, dict) else None
        raise TokenRequestError(f"the discovery document's issuer is {found!r}, not {issuer!r}")
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise TokenRequestError("the discovery document has no token_endpoint")
    return endpoint


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"
