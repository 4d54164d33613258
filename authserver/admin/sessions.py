"""Sign-in sessions as the admin API and the CLI show and end them: per user, by username, or one by id.

Ending a session revokes the refresh families it issued and their access tokens (``protocol.sessions``);
the browser signed in with it must sign in again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from authserver.protocol.models import SignInSession
from authserver.protocol.session_end import EndedSession, EndReason
from authserver.protocol.sessions import Sessions
from authserver.protocol.store import Store


class SessionView(BaseModel):
    session_id: str = Field(description="Also the sid of the ID tokens issued in the session")
    auth_time: int = Field(
        description="When the user signed in (seconds since the epoch); signing in again in the same browser "
        "keeps the session (and this time)"
    )
    created_at: datetime
    last_seen_at: datetime = Field(description="Updated at most once a minute")
    expires_at: datetime = Field(description="The end of its absolute lifetime")
    clients: list[str] = Field(description="The clients it signed into, in the order it first did")

    @classmethod
    def of(cls, session: SignInSession) -> SessionView:
        return cls(
            session_id=session.session_id,
            auth_time=session.auth_time,
            created_at=session.created_at,
            last_seen_at=session.last_seen_at,
            expires_at=session.expires_at,
            clients=list(session.client_ids),
        )


class UserSessions(BaseModel):
    username: str
    user_id: str
    sessions: list[SessionView]


async def user_sessions(store: Store, sessions: Sessions, username: str) -> UserSessions | None:
    """The user's live sessions, oldest first; None when there is no such user."""
    user = await store.get_user_by_username(username)
    if user is None:
        return None
    now = datetime.now(UTC)
    live = [s for s in await store.list_sessions(user.user_id) if sessions.is_live(s, now)]
    return UserSessions(
        username=user.username, user_id=user.user_id, sessions=[SessionView.of(s) for s in live]
    )


async def end_user_sessions(store: Store, sessions: Sessions, username: str) -> list[EndedSession] | None:
    """End every session of ``username``; None when there is no such user."""
    user = await store.get_user_by_username(username)
    if user is None:
        return None
    return await sessions.end_for_user(user.user_id, EndReason.REVOKED)
