"""The kit's exceptions: what went wrong getting a token, and why a resource server refuses one."""

from __future__ import annotations


class ClientKitError(Exception):
    """Any error of this package."""


class ConfigurationError(ClientKitError):
    """The settings cannot work (a missing key, an unreadable file, an unknown method)."""


class TokenRequestError(ClientKitError):
    """The token endpoint refused the request, or could not be reached.

    ``error`` is the RFC 6749 §5.2 error code when the server sent one (``invalid_client`` ...), else None
    (a transport failure or a response that is not a token response)."""

    def __init__(self, message: str, *, error: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.status_code = status_code


class TokenUnavailable(ClientKitError):
    """No unexpired token can be served: the last one expired (or there was none) and getting a new one
    failed. ``__cause__`` is the last :class:`TokenRequestError`."""


class BearerTokenError(ClientKitError):
    """A resource server refuses a request (RFC 6750 §3.1): ``error`` is the code for the
    ``WWW-Authenticate`` header, ``status_code`` the HTTP status it goes with."""

    error: str = "invalid_token"
    status_code: int = 401

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidRequest(BearerTokenError):
    """RFC 6750 §3.1 invalid_request: the request is malformed (e.g. two ways of sending the token)."""

    error = "invalid_request"
    status_code = 400


class InvalidToken(BearerTokenError):
    """RFC 6750 §3.1 invalid_token: expired, revoked, malformed, or not for this resource server."""

    error = "invalid_token"
    status_code = 401


class InsufficientScope(BearerTokenError):
    """RFC 6750 §3.1 insufficient_scope: a valid token without the scopes the request needs."""

    error = "insufficient_scope"
    status_code = 403

    def __init__(self, description: str, required: tuple[str, ...]) -> None:
        super().__init__(description)
        self.required = required


class VerifierUnavailable(ClientKitError):
    """The verifier has no keys to check a token with (the issuer's discovery or JWKS cannot be fetched):
    not the caller's fault, so not a 401."""
