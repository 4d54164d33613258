"""The introspection endpoint (RFC 7662 §2): who may ask, then what the token is."""

from __future__ import annotations

from typing import Any

from authserver.protocol.client_assertion import ClientAssertionVerifier
from authserver.protocol.client_authentication import ClientLookup, authenticate_client
from authserver.protocol.errors import InvalidClient, InvalidRequest
from authserver.protocol.params import Params, check_no_duplicates, single
from authserver.protocol.token_inspection import TokenInspector
from authserver.protocol.workload_identity import WorkloadAuthenticator


class IntrospectionEndpoint:
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

    async def handle(self, params: Params, authorization: str | None) -> dict[str, Any]:
        check_no_duplicates(params)
        client = await authenticate_client(
            params, authorization, self.lookup, assertions=self.assertions, workloads=self.workloads
        )
        # RFC 7662 §2.1 and §4: the caller must authenticate, or anyone could scan for live tokens; a public
        # client has nothing to authenticate with.
        if client.is_public:
            raise InvalidClient("public clients may not introspect tokens")
        token = single(params, "token")
        if token is None:
            raise InvalidRequest("parameter 'token' is required")
        return await self.inspector.introspect(token, single(params, "token_type_hint"))
