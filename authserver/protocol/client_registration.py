"""Client registration as the admin API (and so the operator) drives it: an idempotent upsert.

Sending the same registration again changes nothing, and never the secret: an operator restart or a lost
response creates no duplicate and no new secret. A confidential client gets a secret when it is created
(the caller's, or a generated one shown once); a different secret sent later replaces it, with a grace
period if one is given (``client_secret_rotation``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from authserver.crypto.client_secrets import generate_client_secret, hash_secret, secret_matches
from authserver.protocol.client_secret_rotation import with_new_secret
from authserver.protocol.models import Client, RegisteredClient, RegistrationChange
from authserver.protocol.store import ClientRegistry


def registration_change(
    current: RegisteredClient | None,
    desired: Client,
    secret: str | None,
    grace: timedelta | None,
    now: datetime,
) -> RegistrationChange:
    """What registering ``desired`` (its secret fields ignored) makes of ``current`` (None: a new client).

    ``secret``: the secret the caller wants (None: keep the current one, or generate one if there is none);
    ``grace``: how long the current secret keeps working when ``secret`` replaces it."""
    if current is None:
        return _created(desired, secret, now)
    stored = current.client
    wanted = replace(
        current,
        client=replace(
            desired,
            secret_hash=stored.secret_hash,
            previous_secret_hash=stored.previous_secret_hash,
            previous_secret_expires_at=stored.previous_secret_expires_at,
        ),
    )
    generated = None
    if not desired.uses_secret:
        # A public client, or one that authenticates with private_key_jwt: no secret is kept (a secret
        # client switched to private_key_jwt loses its secret at once).
        wanted = replace(wanted, client=_without_secrets(wanted.client))
    elif secret and not secret_matches(secret, stored.secret_hash):
        wanted = with_new_secret(wanted, secret, grace, now)
    elif stored.secret_hash is None:
        # A public client made confidential: it needs a secret, shown in this response only.
        generated = generate_client_secret()
        wanted = with_new_secret(wanted, generated, None, now)
    if wanted == current:
        return RegistrationChange(current)
    return RegistrationChange(replace(wanted, updated_at=now), generated, changed=True)


def _created(desired: Client, secret: str | None, now: datetime) -> RegistrationChange:
    client = _without_secrets(desired)
    generated = None
    if client.uses_secret:
        if not secret:
            secret = generated = generate_client_secret()
        client = replace(client, secret_hash=hash_secret(secret))
    registered = RegisteredClient(client, created_at=now, updated_at=now)
    return RegistrationChange(registered, generated, created=True, changed=True)


async def register_client(
    registry: ClientRegistry, desired: Client, secret: str | None, grace: timedelta | None
) -> RegistrationChange:
    """Create or update ``desired`` (``registration_change``), atomically."""
    decided: RegistrationChange | None = None

    def change(current: RegisteredClient | None) -> RegisteredClient:
        nonlocal decided
        decided = registration_change(current, desired, secret, grace, datetime.now(UTC))
        return decided.registered

    await registry.change_registered_client(desired.client_id, change)
    assert decided is not None
    return decided


def _without_secrets(client: Client) -> Client:
    return replace(client, secret_hash=None, previous_secret_hash=None, previous_secret_expires_at=None)
