"""What the user meets after a valid authorization request: sign in, consent, or straight back to the client.

The decisions of the login and consent pages, without the pages: ``prompt``, ``max_age`` and
``id_token_hint`` (OIDC Core §3.1.2.1), when to ask for the password again, checking it, and the answer to
the consent question. The web layer renders each ``NextStep`` and keeps the ``LoginSession`` in a signed
cookie; the sign-in session it names is kept server-side (``protocol.sessions``) and checked on each request.

Consent is remembered per user, client and scope (the store's ``grant_consent``): it is asked again only
for a scope not granted yet, or always with ``prompt=consent``. A client registered with ``skip_consent`` (a
first-party application its operator trusts) is never asked unless the request says ``prompt=consent``, and
nothing is remembered for it. A sign-in the request demands (prompt=login,
max_age) must have happened after the request started: checked when the request arrives and again when
the consent answer comes back, so posting the signed request to the consent form with an older session
does not skip the login page.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from authserver.crypto.passwords import KdfBusy, check_capacity, verify_password
from authserver.protocol.authorization import AuthorizationRequest, redirect_with
from authserver.protocol.code_issuance import CodeIssuer
from authserver.protocol.login_throttle import LoginThrottle, Throttled, ThrottlePolicy
from authserver.protocol.models import User
from authserver.protocol.session_end import EndReason
from authserver.protocol.sessions import SessionPolicy, Sessions
from authserver.protocol.store import Store, UserDirectory
from authserver.protocol.upstream_sign_in import DirectoryUpstream, UpstreamIdentity, provision

# Asks a directory whether the password is the person's: who they are, or None for a wrong username or
# password (raises protocol.upstream_sign_in.UpstreamFailure when the directory cannot say, or refuses them).
DirectoryCheck = Callable[[str, str], Awaitable[UpstreamIdentity | None]]

_DEFAULT_SESSIONS = SessionPolicy(timedelta(hours=8), None, timedelta(minutes=15))


@dataclass(frozen=True)
class LoginSession:
    """Who signed in on this browser, and when (the ID token's ``auth_time``, OIDC Core §2)."""

    user_id: str
    username: str
    auth_time: int
    signed_in_at: float | None = None  # the same moment to the sub-second, to order it after a request
    session_id: str | None = None  # the server-side session (``protocol.sessions``); the ID tokens' sid

    @property
    def since(self) -> float:
        return self.auth_time if self.signed_in_at is None else self.signed_in_at

    def satisfies(self, request: AuthorizationRequest) -> bool:
        """Whether this sign-in is recent enough for ``request`` (prompt=login, max_age)."""
        bound = request.signed_in_since
        return bound is None or self.since >= bound

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "user_id": self.user_id,
            "username": self.username,
            "auth_time": self.auth_time,
        }
        if self.signed_in_at is not None:
            data["signed_in_at"] = self.signed_in_at
        if self.session_id is not None:
            data["sid"] = self.session_id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LoginSession | None:
        if not data:
            return None
        try:
            at = data.get("signed_in_at")
            sid = data.get("sid")
            return cls(
                str(data["user_id"]),
                str(data["username"]),
                int(data["auth_time"]),
                None if at is None else float(at),
                None if sid is None else str(sid),
            )
        except (KeyError, TypeError, ValueError):
            return None


class LoginProblem(StrEnum):
    WRONG_CREDENTIALS = "wrong_credentials"
    BUSY = "busy"  # too many sign-ins are waiting for the password hash: try again shortly
    SIGNED_OUT = "signed_out"  # the session ended between the consent page and its answer
    SIGN_IN_AGAIN = "sign_in_again"  # the request demands a sign-in newer than the browser's session


@dataclass(frozen=True)
class ShowLogin:
    problem: LoginProblem | None = None
    login_hint: str | None = None  # pre-fills the username (OIDC Core §3.1.2.1)


@dataclass(frozen=True)
class ShowConsent:
    session: LoginSession


@dataclass(frozen=True)
class ReturnToClient:
    """A redirect to the client's (validated) redirect URI, with a code or an error."""

    location: str


NextStep = ShowLogin | ShowConsent | ReturnToClient


class AuthorizationFlow:
    def __init__(
        self,
        store: Store,
        codes: CodeIssuer,
        throttle: LoginThrottle | None = None,
        sessions: Sessions | None = None,
    ) -> None:
        self.store = store
        self.codes = codes
        self.throttle = throttle or LoginThrottle(store, ThrottlePolicy(account_limit=0, address_limit=0))
        self.sessions = sessions or Sessions(store, _DEFAULT_SESSIONS)

    @property
    def issuer(self) -> str:
        return self.codes.policy.issuer

    async def signed_in(self, cookie: LoginSession | None) -> LoginSession | None:
        """Who is signed in, given the browser's cookie: its session must be live server-side (a cookie from
        before server-side sessions names none: nobody)."""
        if cookie is None or cookie.session_id is None:
            return None
        session = await self.sessions.current(cookie.session_id)
        if session is None or session.user_id != cookie.user_id:
            return None
        return cookie

    async def start(self, request: AuthorizationRequest, session: LoginSession | None) -> NextStep:
        """The first page for ``request``, given the browser's session (None: nobody signed in)."""
        if "none" in request.prompts:
            return await self._without_interaction(request, session)
        if session is None or not self._is_sign_in_for(request, session):
            return ShowLogin(login_hint=request.login_hint)
        return await self.after_sign_in(request, session)

    @staticmethod
    def _is_sign_in_for(request: AuthorizationRequest, session: LoginSession) -> bool:
        """The session may serve ``request`` without asking for the password: recent enough, and the user
        the client's id_token_hint names, if it names one (OIDC Core §3.1.2.1)."""
        if request.id_token_hint_sub is not None and request.id_token_hint_sub != session.user_id:
            return False
        if request.required_subject is not None and request.required_subject != session.user_id:
            return False
        return session.satisfies(request)

    async def _without_interaction(
        self, request: AuthorizationRequest, session: LoginSession | None
    ) -> ReturnToClient:
        """prompt=none (OIDC Core §3.1.2.6): no page may be shown. A code when the session and the
        remembered consent suffice; otherwise the error naming the interaction that would be needed."""
        if session is None or not self._is_sign_in_for(request, session):
            return self._error(request, "login_required")
        if not request.skip_consent and not await self._consented(request, session):
            return self._error(request, "consent_required")
        return await self._issue(request, session)

    async def after_sign_in(self, request: AuthorizationRequest, session: LoginSession) -> NextStep:
        """With the user signed in: the consent page, unless the client is trusted or what it asks was
        allowed before. prompt=consent always shows it (OIDC Core §3.1.2.1: the OP MUST prompt)."""
        if "consent" in request.prompts:
            return ShowConsent(session)
        if not request.skip_consent and not await self._consented(request, session):
            return ShowConsent(session)
        return await self._issue(request, session)

    async def _issue(self, request: AuthorizationRequest, session: LoginSession) -> ReturnToClient:
        # OIDC Core §5.5.1: a sub value requested in ``claims`` names the only user an ID token may be
        # issued for; whoever signed in instead gets no code.
        if request.required_subject is not None and request.required_subject != session.user_id:
            return self._error(request, "access_denied")
        return ReturnToClient(
            await self.codes.issue(request, session.user_id, session.auth_time, session_id=session.session_id)
        )

    async def _consented(self, request: AuthorizationRequest, session: LoginSession) -> bool:
        # A request for no scope at all has nothing to compare with what was granted: it is asked.
        requested = set(request.scope.split())
        granted = await self.store.granted_scopes(session.user_id, request.client_id)
        return bool(requested) and requested <= granted

    def _error(self, request: AuthorizationRequest, error: str) -> ReturnToClient:
        return ReturnToClient(
            redirect_with(request.redirect_uri, {"error": error, "state": request.state, "iss": self.issuer})
        )

    async def sign_in(
        self,
        username: str,
        password: str,
        address: str | None = None,
        current: LoginSession | None = None,
    ) -> LoginSession | LoginProblem | Throttled:
        """The session for a correct username and password; what went wrong otherwise. ``address``: the
        client's, for the per-address throttle. ``current``: the browser's live session, if any: the same
        user signing in again (prompt=login, max_age) keeps it, so the relying parties' sid stays valid;
        another user's ends (the browser is someone else's now).

        Every failure looks the same to the browser (no account enumeration, OWASP ASVS V2.2): an unknown
        username, a wrong password, a disabled user and a user with no password set each cost one password
        verification and give the same answer; a throttled attempt costs none, known username or not."""
        now = datetime.now(UTC)
        try:
            check_capacity()  # refuse before the database lookup when the KDF queue is already full
            checked = await self.throttle.check(username, address, now)
            if checked.throttled is not None:
                return checked.throttled
            user = await self.store.get_user_by_username(username) if username else None
            usable = user is not None and user.password_set and not user.disabled
            # An unknown user (or one without a password) is checked against a dummy hash: a miss takes as
            # long as a hit.
            valid = await verify_password(user.password_hash if usable and user else None, password)
        except KdfBusy:
            return LoginProblem.BUSY
        if not valid or not usable or user is None:
            await self.throttle.failed(username, address, now)
            return LoginProblem.WRONG_CREDENTIALS
        await self.throttle.succeeded(username, checked)
        return await self.signed_in_as(user, current)

    async def sign_in_through_directory(
        self,
        upstream: DirectoryUpstream,
        check: DirectoryCheck,
        users: UserDirectory,
        username: str,
        password: str,
        address: str | None = None,
        current: LoginSession | None = None,
    ) -> LoginSession | LoginProblem | Throttled:
        """The session of the directory user whose password ``check`` confirms (provisioned just in time and
        linked to the directory's stable identifier, like an upstream provider's users). The sign-in throttle
        counts failures per directory account (its own namespace: the directory's "alice" is not the local
        "alice") and per address, so the directory is not a free password oracle either. Raises
        UpstreamFailure when the directory cannot answer, or refuses the person (groups, a disabled link)."""
        now = datetime.now(UTC)
        account = f"{upstream.name}:{username}"
        checked = await self.throttle.check(account, address, now)
        if checked.throttled is not None:
            return checked.throttled
        identity = await check(username, password)
        if identity is None:
            await self.throttle.failed(account, address, now)
            return LoginProblem.WRONG_CREDENTIALS
        await self.throttle.succeeded(account, checked)
        user = await provision(users, upstream, identity)
        return await self.signed_in_as(user, current)

    async def signed_in_as(self, user: User, current: LoginSession | None) -> LoginSession:
        """The session of ``user``, who just proved who they are (a password, an upstream provider): the
        browser's current one if it is theirs (its sid stays valid for the relying parties), else a new one
        (another user's current session ends: the browser is someone else's now)."""
        at = time.time()
        if current is not None and current.session_id is not None:
            if current.user_id == user.user_id:
                return LoginSession(user.user_id, user.username, int(at), at, current.session_id)
            await self.sessions.end(current.session_id, EndReason.SIGNED_OUT)
        created = await self.sessions.begin(user.user_id, int(at))
        return LoginSession(user.user_id, user.username, int(at), at, created.session_id)

    async def answer_consent(
        self, request: AuthorizationRequest, session: LoginSession | None, allowed: bool
    ) -> NextStep:
        """The user's answer on the consent page: a code for the client (the scopes remembered as allowed),
        or ``access_denied``."""
        if session is None:
            return ShowLogin(LoginProblem.SIGNED_OUT, request.login_hint)
        if not session.satisfies(request):
            # The sign-in this request demands (prompt=login, max_age) did not happen: a consent form
            # posted with an older session must not skip it.
            return ShowLogin(LoginProblem.SIGN_IN_AGAIN, request.login_hint)
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
        if not request.skip_consent:  # a trusted client is never asked, so nothing is remembered for it
            await self.store.grant_consent(
                session.user_id, request.client_id, request.scope.split(), datetime.now(UTC)
            )
        return await self._issue(request, session)
