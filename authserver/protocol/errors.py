"""RFC 6749 §5.2 errors (and their RFC 7009 / 6750 relatives) as exceptions the HTTP layer renders."""

from __future__ import annotations


class OAuthError(Exception):
    error = "invalid_request"
    status_code = 400
    # The registered client a failed token request named, once one was found: usage counts its errors.
    client_id: str | None = None

    def __init__(self, description: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed: 401 with a challenge for the scheme the client tried (RFC 6749 §5.2)."""

    error = "invalid_client"
    status_code = 401

    def __init__(self, description: str = "client authentication failed") -> None:
        super().__init__(description, headers={"WWW-Authenticate": 'Basic realm="authyard", charset="UTF-8"'})


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """RFC 8707: the requested resource is not one this client may get tokens for."""

    error = "invalid_target"


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class RequestNotSupported(OAuthError):
    """OIDC Core §3.1.2.6: the ``request`` parameter (a request object) is not supported."""

    error = "request_not_supported"


class RequestUriNotSupported(OAuthError):
    """OIDC Core §3.1.2.6: the ``request_uri`` parameter is not supported."""

    error = "request_uri_not_supported"


class AccessDenied(OAuthError):
    error = "access_denied"
    status_code = 403


class InvalidToken(OAuthError):
    """RFC 6750 §3.1: a bearer token that is missing, expired, revoked or malformed."""

    error = "invalid_token"
    status_code = 401

    def __init__(self, description: str = "the access token is invalid") -> None:
        super().__init__(description, headers=_bearer_challenge(self.error, description))


class MissingBearerToken(InvalidToken):
    """RFC 6750 §3.1: a request with no authentication at all gets a bare challenge, no error code."""

    def __init__(self, description: str = "a bearer access token is required") -> None:
        super().__init__(description)
        self.headers = {"WWW-Authenticate": 'Bearer realm="authyard"'}


class InvalidBearerRequest(InvalidRequest):
    """RFC 6750 §3.1 invalid_request at a protected resource: 400 with the Bearer challenge naming it."""

    def __init__(self, description: str) -> None:
        super().__init__(description, headers=_bearer_challenge(self.error, description))


def _bearer_challenge(error: str, description: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer error="{error}", error_description="{description}"'}


class InsufficientScope(OAuthError):
    """RFC 6750 §3.1: the token is valid but lacks the scope the resource needs."""

    error = "insufficient_scope"
    status_code = 403

    def __init__(self, description: str, scope: str) -> None:
        super().__init__(
            description, headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'}
        )


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str, retry_after_seconds: int = 1) -> None:
        super().__init__(description, headers={"Retry-After": str(retry_after_seconds)})


class SlowDown(OAuthError):
    """Rate limited (429); the error code follows RFC 8628's convention for 'back off'."""

    error = "slow_down"
    status_code = 429

    def __init__(self, description: str, retry_after_seconds: int) -> None:
        super().__init__(description, headers={"Retry-After": str(retry_after_seconds)})
