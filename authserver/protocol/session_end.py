"""A sign-in session's end, announced to whatever must hear of it.

A session ends when its user signs out (OpenID Connect RP-Initiated Logout 1.0), an administrator revokes
it, or it expires. The sessions code announces each end here and knows nothing of who listens; back-channel
logout (OpenID Connect Back-Channel Logout 1.0 §2.5) is one listener. Listeners must return at once and
never raise: a user's sign-out never waits on a relying party.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


class EndReason(enum.StrEnum):
    SIGNED_OUT = "signed_out"  # the user, through the end-session endpoint
    REVOKED = "revoked"  # an administrator (or the user's disabling or deletion)
    EXPIRED = "expired"  # its lifetime or idle timeout passed


@dataclass(frozen=True)
class EndedSession:
    session_id: str  # the ``sid`` of the ID tokens it issued
    user_id: str  # their ``sub``
    client_ids: tuple[str, ...]  # every client the session signed into, in the order it first did
    reason: EndReason


class SessionEndListener(Protocol):
    def session_ended(self, ended: EndedSession) -> None:
        """Take note of ``ended`` without blocking or raising (queue any slow work)."""


def announce(listeners: Iterable[SessionEndListener], ended: Iterable[EndedSession]) -> None:
    for session in ended:
        for listener in listeners:
            listener.session_ended(session)
