"""Scope strings (RFC 6749 §3.3): space-delimited tokens, granted only within what the client may use."""

from __future__ import annotations

import re

from authserver.protocol.errors import InvalidScope

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
# OIDC Core §11: a grant with this scope is for use while the user is not signed in, so it outlives the
# sign-in session it came from (ending the session leaves it; revoking the user's grants does not).
OFFLINE_ACCESS = "offline_access"
OPENID_SCOPES = frozenset({"openid", "profile", "email", "address", "phone", OFFLINE_ACCESS})


def parse_scope(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    tokens = tuple(dict.fromkeys(part for part in text.split(" ") if part))
    for token in tokens:
        if not _SCOPE_TOKEN.match(token):
            raise InvalidScope("scope contains characters RFC 6749 §3.3 does not allow")
    return tokens


def grant_scope(requested: str | None, allowed: tuple[str, ...]) -> str:
    """The scope to grant: what was asked for (all of it allowed), or everything allowed when nothing was."""
    asked = parse_scope(requested)
    if not asked:
        return " ".join(allowed)
    refused = [scope for scope in asked if scope not in allowed]
    if refused:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(refused)}")
    return " ".join(asked)


def narrow_scope(requested: str | None, original: str) -> str:
    """On refresh, a client may ask for less than it was granted, never more (RFC 6749 §6)."""
    if requested is None:
        return original
    asked, granted = parse_scope(requested), set(original.split())
    widened = [scope for scope in asked if scope not in granted]
    if widened:
        raise InvalidScope(f"scope exceeds what was originally granted: {' '.join(widened)}")
    return " ".join(asked)
