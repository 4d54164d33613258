"""Client-secret rotation: a new secret works at once, and the one it replaces keeps working for a grace
period, so that every running instance of the client can pick up the new one before the old one stops.

One previous secret at most: a rotation during another's grace period ends that one's grace. Secrets are
kept as SHA-256 hashes (``crypto.client_secrets``); a newly generated secret is shown once, in the response
that generated it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from authserver.crypto.client_secrets import generate_client_secret, hash_secret, secret_matches
from authserver.protocol.errors import InvalidRequest
from authserver.protocol.models import RegisteredClient, RegistrationChange
from authserver.protocol.store import ClientRegistry


def with_new_secret(
    registered: RegisteredClient, secret: str, grace: timedelta | None, now: datetime
) -> RegisteredClient:
    """``registered`` with ``secret`` as its secret. With a grace period the current secret stays valid
    until ``now + grace``; without one only ``secret`` works from now on: the current secret and one still
    in an earlier rotation's grace period both stop (a replacement without grace is what an administrator
    does after a leak, and the older secret may have leaked too)."""
    current_hash = registered.client.secret_hash
    if grace is not None and current_hash:
        previous_hash, previous_expiry = current_hash, now + grace
    else:
        previous_hash, previous_expiry = None, None
    client = replace(
        registered.client,
        secret_hash=hash_secret(secret),
        previous_secret_hash=previous_hash,
        previous_secret_expires_at=previous_expiry,
    )
    return replace(registered, client=client, secret_rotated_at=now)


def rotate_secret(
    registered: RegisteredClient, secret: str | None, grace: timedelta, now: datetime
) -> RegistrationChange:
    """Rotate to ``secret`` (or a generated one); the current secret works for ``grace`` more.

    Idempotent when the caller supplies the secret: sending the one already current changes nothing, so a
    retry after a lost response does not push the previous secret out of its grace period."""
    if registered.client.is_public:
        raise InvalidRequest("public clients have no secret to rotate")
    if not registered.client.uses_secret:
        raise InvalidRequest("this client authenticates with private_key_jwt: it has no secret to rotate")
    if secret and secret_matches(secret, registered.client.secret_hash):
        return RegistrationChange(registered)
    new_secret = secret or generate_client_secret()
    rotated = replace(with_new_secret(registered, new_secret, grace, now), updated_at=now)
    return RegistrationChange(rotated, None if secret else new_secret, changed=True)


async def rotate_client_secret(
    registry: ClientRegistry, client_id: str, secret: str | None, grace: timedelta
) -> RegistrationChange | None:
    """``rotate_secret`` on the registered client, atomically; None if there is no such client."""
    decided: RegistrationChange | None = None

    def change(current: RegisteredClient | None) -> RegisteredClient | None:
        nonlocal decided
        if current is None:
            return None
        decided = rotate_secret(current, secret, grace, datetime.now(UTC))
        return decided.registered

    await registry.change_registered_client(client_id, change)
    return decided
