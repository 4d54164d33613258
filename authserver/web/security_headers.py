"""The security headers every response carries, built once as bytes.

The edge adds them: to a fast route's response before it is sent, and to the framework's responses through
the ``send`` it hands the framework. A page may set its own ``Content-Security-Policy`` (the sign-in pages
add ``form-action``); a header a response sets itself is kept.
"""

from __future__ import annotations

# Pages that post forms set their own policy with form-action: browsers enforce it on the redirect that
# answers the POST, and the consent page's answer redirects to the client (another origin).
DEFAULT_CSP = "default-src 'none'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"content-security-policy", DEFAULT_CSP.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_SECURITY_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` plus every security header it does not set itself, as a new list."""
    present = [name for name, _ in headers if name in _SECURITY_NAMES]
    if not present:
        return [*headers, *SECURITY_HEADERS]
    return [*headers, *(header for header in SECURITY_HEADERS if header[0] not in present)]
