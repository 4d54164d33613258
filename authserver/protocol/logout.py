"""The end-session endpoint's decisions (OpenID Connect RP-Initiated Logout 1.0), without the pages.

A request is validated first: an ``id_token_hint`` must be an ID token this server signed (an expired one is
accepted, §2), ``client_id`` must agree with its ``aud`` (§2), and a ``post_logout_redirect_uri`` must exactly
match one registered for the client the hint or ``client_id`` names (§3); a request failing any of these
gets an error page and is never redirected (§4). Then: a request the browser can be trusted with (a valid
hint for the browser's own session, or for a session that is already gone) signs out at once; any other
(no hint, or a hint for another session than the browser's) is confirmed by the user first (§2: the OP
MUST ask). After sign-out the browser goes back to the post-logout URI (with ``state``) when the client was
identified, or sees a "you are signed out" page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import jwt

from authserver.crypto.keyset import KeySet
from authserver.protocol.authorization import redirect_with
from authserver.protocol.client_authentication import ClientLookup
from authserver.protocol.errors import OAuthError
from authserver.protocol.params import Params, check_no_duplicates, single

# §2: the request's parameters; ``ui_locales`` and ``logout_hint`` are accepted and not used (one language,
# and the hint or the browser's session already says who).
_KNOWN = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales", "logout_hint")


class LogoutRequestError(Exception):
    """A request the end-session endpoint refuses with an error page, redirecting nowhere (§4)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class LogoutRequest:
    """A validated end-session request."""

    hint_subject: str | None = None  # the ``sub`` of a valid id_token_hint (None: no hint)
    hint_session_id: str | None = None  # its ``sid`` (None: no hint, or an ID token without one)
    client_id: str | None = None  # the client the hint or client_id names
    return_to: str | None = None  # the post-logout redirect, ``state`` added; None: the signed-out page

    @property
    def has_hint(self) -> bool:
        return self.hint_subject is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogoutRequest | None:
        try:
            return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})
        except TypeError:
            return None


async def validate_logout_request(
    params: Params, lookup_client: ClientLookup, keys: Callable[[], KeySet], issuer: str
) -> LogoutRequest:
    try:
        check_no_duplicates(params)
        hint = single(params, "id_token_hint")
        client_id = single(params, "client_id")
        target = single(params, "post_logout_redirect_uri")
        state = single(params, "state")
    except OAuthError as error:
        raise LogoutRequestError(error.description) from None

    subject = session_id = None
    if hint:
        claims = _verified_hint(hint, keys, issuer)
        subject, session_id = claims["sub"], claims.get("sid")
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
        # §2: when both are present, the client_id MUST be the one the ID token was issued to.
        if client_id and client_id not in audiences:
            raise LogoutRequestError("client_id does not match the id_token_hint's audience.")
        if not client_id and len(audiences) == 1:
            client_id = audiences[0]
        if not isinstance(session_id, str):
            session_id = None
    return_to = None
    if target:
        # §3: a post_logout_redirect_uri needs the client identified (id_token_hint or client_id) and MUST
        # exactly match one it registered; otherwise no redirect at all, to anywhere.
        if not client_id:
            raise LogoutRequestError("post_logout_redirect_uri needs an id_token_hint or a client_id.")
        client = await lookup_client(client_id)
        if client is None:
            raise LogoutRequestError("Unknown client.")
        if target not in client.post_logout_redirect_uris:
            raise LogoutRequestError("The post_logout_redirect_uri is not registered for this application.")
        return_to = target if state is None else redirect_with(target, {"state": state})  # §3: as given
    elif client_id and await lookup_client(client_id) is None:
        raise LogoutRequestError("Unknown client.")
    return LogoutRequest(subject, session_id, client_id, return_to)


def _verified_hint(hint: str, keys: Callable[[], KeySet], issuer: str) -> dict[str, Any]:
    """The claims of an ID token this server signed (§2: the OP MUST validate it was the issuer; an expired
    one SHOULD be accepted)."""
    try:
        claims = keys().verify(
            hint,
            typ="JWT",  # an ID token's; an access token (at+jwt) is no hint
            issuer=issuer,
            options={"verify_aud": False, "verify_exp": False, "require": ("sub", "aud")},
        )
    except jwt.PyJWTError:  # a forged, altered or foreign token, alg none, an unknown kid
        raise LogoutRequestError("The id_token_hint is not an ID token issued by this server.") from None
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise LogoutRequestError("The id_token_hint has no subject.")
    return claims


def needs_confirmation(request: LogoutRequest, browser_session_id: str | None) -> bool:
    """§2: the OP MUST ask the user unless the request carries a valid id_token_hint that belongs to the
    browser's current session. A browser with no live session has nothing to be asked about: a hint's session
    ends (the RP's user is signed out either way), or nothing does."""
    if browser_session_id is None:
        return False
    return not request.has_hint or request.hint_session_id != browser_session_id


def sessions_to_end(request: LogoutRequest, browser_session_id: str | None) -> list[str]:
    """The browser's session and the one the hint names (the same one, usually), each once."""
    return list(dict.fromkeys(sid for sid in (browser_session_id, request.hint_session_id) if sid))
