"""OpenID Connect Back-Channel Logout 1.0, the OP's side: what a logout token says, who is sent one, how a
relying party's answer is judged and when a delivery is tried again.

When a sign-in session ends (``session_end``), every client it signed into that registered a
``backchannel_logout_uri`` (§2.2) is POSTed a logout token (§2.5). The HTTP sending and the queue live in
``web/backchannel_delivery.py``; everything decided about them is here, without HTTP and without a clock of
its own (the caller passes times and randomness, so tests need no sleeps).
"""

from __future__ import annotations

import enum
import secrets
import time
from dataclasses import dataclass
from typing import Any

from authserver.protocol.models import Client
from authserver.protocol.tokens import TokenMinter

# §2.4: the JWT typ header that tells a logout token from an ID token.
LOGOUT_TOKEN_TYP = "logout+jwt"  # noqa: S105 - a JOSE header value
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# §2.4: exp should be short, at most about two minutes, so that a captured token cannot be replayed for
# long. Every attempt of a delivery carries a fresh token (new jti and iat), so retries never need a longer
# life: two minutes covers one attempt's transit and the RP's clock skew.
LOGOUT_TOKEN_LIFETIME_SECONDS = 120


def logout_token(
    minter: TokenMinter, client: Client, *, subject: str, session_id: str, now: int | None = None
) -> str:
    """A logout token for ``client`` (§2.4): signed like its ID tokens (§2.4: the same keys; the algorithm
    of its ``id_token_signed_response_alg``, which its RP validates ID tokens with), with both ``sub`` and
    ``sid`` (§2.4 allows both; every session here has an id, so ``backchannel_logout_session_required``
    is always met) and never a ``nonce`` (§2.4: MUST NOT, so it cannot pass as an ID token)."""
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": minter.policy.issuer,
        "sub": subject,
        "aud": client.client_id,
        "iat": issued,
        "exp": issued + LOGOUT_TOKEN_LIFETIME_SECONDS,
        "jti": secrets.token_urlsafe(16),  # §2.4: unique, so that the RP can refuse a replay
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        "sid": session_id,
    }
    return minter.id_token_key(client).sign(claims, LOGOUT_TOKEN_TYP)


class Verdict(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GIVE_UP = "give_up"


# Statuses that say "not now" rather than "never": the request timed out at the RP, or it is rate limiting.
_TRANSIENT_CLIENT_ERRORS = frozenset({408, 425, 429})


def judge(status: int | None) -> Verdict:
    """What the RP's answer means for the delivery; ``status`` None: no answer (connection refused or
    reset, timeout), tried again.

    §2.8: 200 is success, and 204 too (frameworks answer an empty 200 so). 400 means the RP refused the
    token (it will refuse it again): given up, as any other 4xx but the transient ones. 5xx: tried again.
    A redirect is never followed (§2.5: the RP must not rely on redirects being followed) and a redirecting
    URI is a misregistration: given up, as any other status.
    """
    if status in (200, 204):
        return Verdict.DELIVERED
    if status is None or status >= 500 or status in _TRANSIENT_CLIENT_ERRORS:
        return Verdict.RETRY
    return Verdict.GIVE_UP


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded both in attempts and in total time.

    Defaults: at most 6 attempts, waiting about 1, 2, 4, 8 and 16 s (each ±50 %) between them, and no
    attempt starting more than 2 minutes after the first: an RP down for longer than that is given up (the
    user's session at the RP then lasts until its own expiry). ``max_delay`` caps a single wait.
    """

    max_attempts: int = 6
    first_delay: float = 1.0
    max_delay: float = 30.0
    deadline: float = 120.0

    def delay_before(self, attempt: int, elapsed: float, jitter: float) -> float | None:
        """Seconds to wait before attempt number ``attempt`` (2 is the first retry), ``elapsed`` seconds after
        the first one started; None: give up. ``jitter`` in [0, 1) spreads the retries of the many
        deliveries that one RP's outage fails at the same moment (equal jitter: half fixed, half random)."""
        if attempt > self.max_attempts:
            return None
        delay: float = min(self.max_delay, self.first_delay * 2.0 ** (attempt - 2)) * (0.5 + jitter)
        if elapsed + delay > self.deadline:
            return None
        return delay
