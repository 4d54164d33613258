"""Revoking a user grant: its refresh-token family and every access token issued in it.

A grant is one sign-in: the code redemption and every refresh-token rotation after it. Its access tokens
carry its grant id (``tokens.GRANT_ID_CLAIM``); revoking the grant records that id in the revocation list,
which every worker and replica reads (``revocation_list``), until the last access token the grant could
have issued has expired: the client's access-token TTL from now.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from authserver.crypto.refresh_token_values import grant_id_of_family
from authserver.protocol.models import Client
from authserver.protocol.revocation_list import CLOCK_LEEWAY_SECONDS, RevocationList
from authserver.protocol.store import Store
from authserver.protocol.tokens import TokenMinter


class GrantRevoker:
    def __init__(self, store: Store, minter: TokenMinter, revocations: RevocationList) -> None:
        self.store = store
        self.minter = minter
        self.revocations = revocations

    async def revoke_family(self, family_id: str, client: Client | None) -> None:
        """Revoke the grant of refresh family ``family_id``, whose client is ``client``."""
        await self.revoke(family_id, grant_id_of_family(family_id), client)

    async def revoke(self, family_id: str | None, grant_id: str, client: Client | None) -> None:
        """Revoke family ``family_id`` (None: the grant has none) and every access token of ``grant_id``.

        ``client`` is the grant's client, whose access-token TTL bounds how long its tokens live (None when
        it is gone: the server's default). A token minted by a request racing this one is covered too: it
        expires within the same TTL of a moment the clock leeway covers."""
        ttl = (
            self.minter.access_token_ttl(client)
            if client is not None
            else int(self.minter.policy.access_token_ttl.total_seconds())
        )
        expires_at = time.time() + ttl + CLOCK_LEEWAY_SECONDS
        await self.store.revoke_grant(family_id, grant_id, datetime.fromtimestamp(expires_at, UTC))
        self.revocations.add_grant(grant_id, expires_at)
