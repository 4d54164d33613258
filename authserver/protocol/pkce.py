"""PKCE (RFC 7636), S256 only: OAuth 2.1 requires it for every client and forbids 'plain'."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from authserver.protocol.errors import InvalidGrant, InvalidRequest

_VERIFIER_OR_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def check_challenge(challenge: str | None, method: str | None) -> str:
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE with S256)")
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not _VERIFIER_OR_CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge is malformed")
    return challenge


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def verifier_challenge(verifier: str | None) -> str | None:
    """The S256 challenge a well-formed verifier answers, or None (check_verifier says what is wrong)."""
    if not verifier or not _VERIFIER_OR_CHALLENGE.match(verifier):
        return None
    return s256(verifier)


def check_verifier(verifier: str | None, challenge: str) -> None:
    if not verifier:
        raise InvalidRequest("code_verifier is required")
    if not _VERIFIER_OR_CHALLENGE.match(verifier):
        raise InvalidRequest("code_verifier is malformed")
    if not hmac.compare_digest(s256(verifier), challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")
