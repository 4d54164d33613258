"""What the user meets after a valid authorization request: sign in, consent, or straight back to the client.

The decisions of the login and consent pages, without the pages: ``prompt`` (OIDC Core §3.1.2.1), when to
ask for the password again, checking it, and the answer to the consent question. The web layer renders
each ``NextStep`` and keeps the ``LoginSession`` in a signed cookie.

Consent is asked on every request (nothing remembers a grant), so ``prompt=consent`` needs no handling of
its own and ``prompt=none`` can never be answered without the user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from authserver.crypto.passwords import KdfBusy, check_capacity, verify_password
from authserver.protocol.authorization import AuthorizationRequest, redirect_with
from authserver.protocol.code_issuance import CodeIssuer
from authserver.protocol.store import Store


@dataclass(frozen=True)
class LoginSession:
    """Who signed in on this browser, and when (the ID token's ``auth_time``, OIDC Core §2)."""

    user_id: str
    username: str
    auth_time: int

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "username": self.username, "auth_time": self.auth_time}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LoginSession | None:
        if not data:
            return None
        try:
            return cls(str(data["user_id"]), str(data["username"]), int(data["auth_time"]))
        except (KeyError, TypeError, ValueError):
            return None


class LoginProblem(StrEnum):
    WRONG_CREDENTIALS = "wrong_credentials"
    BUSY = "busy"  # too many sign-ins are waiting for the password hash: try again shortly
    SIGNED_OUT = "signed_out"  # the session ended between the consent page and its answer


@dataclass(frozen=True)
class ShowLogin:
    problem: LoginProblem | None = None


@dataclass(frozen=True)
class ShowConsent:
    session: LoginSession


@dataclass(frozen=True)
class ReturnToClient:
    """A redirect to the client's (validated) redirect URI, with a code or an error."""

    location: str


NextStep = ShowLogin | ShowConsent | ReturnToClient
_SIGN_IN = ShowLogin()


class AuthorizationFlow:
    def __init__(self, store: Store, codes: CodeIssuer) -> None:
        self.store = store
        self.codes = codes

    @property
    def issuer(self) -> str:
        return self.codes.policy.issuer

    def start(self, request: AuthorizationRequest, session: LoginSession | None) -> NextStep:
        """The first page for ``request``, given the browser's session (None: nobody signed in)."""
        if request.prompt == "none":
            # OIDC Core §3.1.2.6: no page may be shown, and consent is asked every time, so the answer is
            # always an error: which interaction would have been needed.
            error = "consent_required" if session else "login_required"
            return ReturnToClient(
                redirect_with(
                    request.redirect_uri, {"error": error, "state": request.state, "iss": self.issuer}
                )
            )
        if session is not None and request.prompt != "login":
            return ShowConsent(session)
        return _SIGN_IN  # nobody signed in, or prompt=login: the client wants the password asked again

    async def sign_in(self, username: str, password: str) -> LoginSession | LoginProblem:
        """The session for a correct username and password; what went wrong otherwise."""
        try:
            check_capacity()  # refuse before the database lookup when the KDF queue is already full
            user = await self.store.get_user_by_username(username) if username else None
            # An unknown user is checked against a dummy hash: a miss takes as long as a hit.
            valid = await verify_password(user.password_hash if user else None, password)
        except KdfBusy:
            return LoginProblem.BUSY
        if not valid or user is None:
            return LoginProblem.WRONG_CREDENTIALS
        return LoginSession(user.user_id, user.username, int(time.time()))

    async def answer_consent(
        self, request: AuthorizationRequest, session: LoginSession | None, allowed: bool
    ) -> NextStep:
        """The user's answer on the consent page: a code for the client, or ``access_denied``."""
        if session is None:
            return ShowLogin(LoginProblem.SIGNED_OUT)
        if not allowed:
            return ReturnToClient(
                redirect_with(
                    request.redirect_uri,
                    {
                        "error": "access_denied",
                        "error_description": "the user denied the request",
                        "state": request.state,
                        "iss": self.issuer,
                    },
                )
            )
        return ReturnToClient(await self.codes.issue(request, session.user_id, session.auth_time))
