"""The revocation endpoint (RFC 7009 §2): a client revokes a token it was issued."""

from __future__ import annotations

from authserver.protocol.client_assertion import ClientAssertionVerifier
from authserver.protocol.client_authentication import ClientLookup, authenticate_client
from authserver.protocol.params import Params, check_no_duplicates, required, single
from authserver.protocol.token_inspection import TokenInspector
from authserver.protocol.workload_identity import WorkloadAuthenticator


class RevocationEndpoint:
    def __init__(
        self,
        inspector: TokenInspector,
        lookup: ClientLookup,
        assertions: ClientAssertionVerifier | None = None,
        workloads: WorkloadAuthenticator | None = None,
    ) -> None:
        self.inspector = inspector
        self.lookup = lookup
        self.assertions = assertions
        self.workloads = workloads

    async def handle(self, params: Params, authorization: str | None) -> None:
        """Revoke ``token`` if it was issued to the calling client; unknown tokens need nothing (RFC 7009
        §2.2). A public client is identified by its client_id alone; a confidential one authenticates
        (RFC 7009 §2.1)."""
        check_no_duplicates(params)
        client = await authenticate_client(
            params, authorization, self.lookup, assertions=self.assertions, workloads=self.workloads
        )
        await self.inspector.revoke(required(params, "token"), single(params, "token_type_hint"), client)
