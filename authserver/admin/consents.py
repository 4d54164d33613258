"""Remembered consent as the admin API shows and revokes it (OIDC Core §3.1.2.4): per user, by username.

Revoking a consent makes the user's next authorization for that client ask again; tokens already issued
are not touched here.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from authserver.protocol.models import Consent, User
from authserver.protocol.store import Store


class ConsentView(BaseModel):
    client_id: str
    scopes: list[str]
    granted_at: datetime  # the latest grant to this client

    @classmethod
    def of(cls, consent: Consent) -> ConsentView:
        return cls(client_id=consent.client_id, scopes=list(consent.scopes), granted_at=consent.granted_at)


class UserConsents(BaseModel):
    username: str
    user_id: str
    consents: list[ConsentView]


async def user_consents(store: Store, username: str) -> UserConsents | None:
    """What ``username`` has allowed, client by client; None when there is no such user."""
    user = await store.get_user_by_username(username)
    if user is None:
        return None
    consents = await store.list_consents(user.user_id)
    return UserConsents(
        username=user.username, user_id=user.user_id, consents=[ConsentView.of(c) for c in consents]
    )


async def revoke_user_consents(store: Store, username: str, client_id: str | None) -> User | bool | None:
    """Forget what ``username`` allowed ``client_id`` (every client when None). None: no such user;
    False: that client had no consent of the user's; otherwise the user."""
    user = await store.get_user_by_username(username)
    if user is None:
        return None
    revoked = await store.revoke_consents(user.user_id, client_id)
    return user if revoked or client_id is None else False
