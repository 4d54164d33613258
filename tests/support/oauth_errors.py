"""The error codes the server may answer, by where each is defined; an error naming anything else is a bug."""

from __future__ import annotations

# RFC 6749 §5.2 (the token endpoint), RFC 8707 §2 (invalid_target), RFC 7009 §2.2.1 (revocation), and the
# codes the server documents for overload (temporarily_unavailable) and rate limits (slow_down).
TOKEN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
        "unsupported_token_type",
        "slow_down",
        "temporarily_unavailable",
    }
)
# RFC 6750 §3.1: a protected resource's answers (userinfo).
BEARER_ERRORS = frozenset({"invalid_request", "invalid_token", "insufficient_scope"})
# RFC 6749 §4.1.2.1 and OIDC Core §3.1.2.6: errors returned on the redirect URI.
AUTHORIZE_ERRORS = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "invalid_target",
        "login_required",
        "consent_required",
        "interaction_required",
        "invalid_request_uri",
        "invalid_request_object",
        "request_not_supported",
        "request_uri_not_supported",
    }
)
# Every code a JSON error body of any endpoint may carry: the above, access_denied (403) and the admin API's
# not_found (404) and conflict (409: a user that exists already).
JSON_ERRORS = TOKEN_ERRORS | BEARER_ERRORS | {"access_denied", "not_found", "conflict"}
