"""Server-side sign-in sessions: what the browser's cookie names, and what ending one does.

A successful sign-in creates a session (an unguessable id, 256 bits from ``secrets``) with an absolute
lifetime; the signed cookie carries its id. Each /authorize reads it by primary key: an ended, expired or
idle one is nobody signed in. ``last_seen_at`` is written at most once per ``touch_interval`` (not on every
request), so the idle timeout may end a session up to that much early.

Ending a session (sign-out, an administrator, the user's disabling or deletion, expiry) revokes the
refresh-token families it issued and their access tokens, and is announced to the listeners
(``session_end``) with every client the session signed into. Expiry is not checked on the token path: a
sweep (``Services``, every ``SWEEP_INTERVAL`` with jitter) ends expired and idle sessions, so their refresh
tokens keep working at most that long (1.5 times ``SWEEP_INTERVAL``) after the session's end.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from authserver.protocol.models import SignInSession
from authserver.protocol.session_end import EndedSession, EndReason, SessionEndListener, announce
from authserver.protocol.store import Store

SWEEP_INTERVAL = timedelta(minutes=1)
_MOST_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class SessionPolicy:
    lifetime: timedelta  # absolute: from sign-in to the end, however active the session is
    idle_timeout: timedelta | None  # None: no idle timeout
    access_token_ttl: timedelta  # the server's default, for the revocation of a client without its own

    @property
    def touch_interval(self) -> timedelta:
        """How stale ``last_seen_at`` may be: a minute, or a tenth of a shorter idle timeout."""
        if self.idle_timeout is None:
            return _MOST_TOUCH_INTERVAL
        return min(_MOST_TOUCH_INTERVAL, self.idle_timeout / 10)


def new_session_id() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


class Sessions:
    def __init__(
        self, store: Store, policy: SessionPolicy, listeners: Sequence[SessionEndListener] = ()
    ) -> None:
        self.store = store
        self.policy = policy
        self.listeners = listeners

    async def begin(self, user_id: str, auth_time: int, now: datetime | None = None) -> SignInSession:
        at = now or datetime.now(UTC)
        session = SignInSession(
            session_id=new_session_id(),
            user_id=user_id,
            auth_time=auth_time,
            created_at=at,
            last_seen_at=at,
            expires_at=at + self.policy.lifetime,
        )
        await self.store.create_session(session)
        return session

    def is_live(self, session: SignInSession, now: datetime) -> bool:
        if session.ended_at is not None or session.expires_at <= now:
            return False
        idle = self.policy.idle_timeout
        return idle is None or session.last_seen_at > now - idle

    async def current(self, session_id: str | None, now: datetime | None = None) -> SignInSession | None:
        """The live session ``session_id`` names (None: nobody is signed in), seen now."""
        if not session_id:
            return None
        at = now or datetime.now(UTC)
        session = await self.store.get_session(session_id)
        if session is None or not self.is_live(session, at):
            return None
        if at - session.last_seen_at >= self.policy.touch_interval:
            await self.store.touch_session(session_id, at)
        return session

    async def signed_into(self, session_id: str, client_id: str, now: datetime | None = None) -> None:
        await self.store.add_session_client(session_id, client_id, now or datetime.now(UTC))

    async def end(self, session_id: str, reason: EndReason) -> EndedSession | None:
        """End one session (None when it had ended already or is unknown) and announce it."""
        ended = await self.store.end_session(
            session_id, reason, datetime.now(UTC), self.policy.access_token_ttl
        )
        announce(self.listeners, [ended] if ended else [])
        return ended

    async def end_for_user(self, user_id: str, reason: EndReason) -> list[EndedSession]:
        ended = await self.store.end_user_sessions(
            user_id, reason, datetime.now(UTC), self.policy.access_token_ttl
        )
        announce(self.listeners, ended)
        return ended

    async def sweep(self, now: datetime | None = None) -> list[EndedSession]:
        """End the sessions whose lifetime or idle timeout has passed."""
        ended = await self.store.end_expired_sessions(
            now or datetime.now(UTC), self.policy.idle_timeout, self.policy.access_token_ttl
        )
        announce(self.listeners, ended)
        return ended
