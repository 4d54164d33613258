"""The token endpoint (RFC 6749 §3.2): authenticate the client, dispatch to its grant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authserver.protocol.client_assertion import ClientAssertionVerifier
from authserver.protocol.client_authentication import ClientLookup, authenticate_client
from authserver.protocol.errors import OAuthError, UnauthorizedClient, UnsupportedGrantType
from authserver.protocol.grants.base import Grant
from authserver.protocol.models import Client
from authserver.protocol.params import Params, check_no_duplicates, required
from authserver.protocol.usage import UsageCounter
from authserver.protocol.workload_identity import WorkloadAuthenticator


@dataclass(frozen=True)
class TokenResult:
    body: dict[str, Any]
    client: Client
    grant_type: str


class TokenEndpoint:
    def __init__(
        self,
        grants: list[Grant],
        lookup: ClientLookup,
        assertions: ClientAssertionVerifier | None = None,
        usage: UsageCounter | None = None,
        workloads: WorkloadAuthenticator | None = None,
    ) -> None:
        self.grants = {grant.grant_type.value: grant for grant in grants}
        self.lookup = lookup
        self.assertions = assertions
        self.usage = usage
        self.workloads = workloads

    @property
    def grant_types(self) -> list[str]:
        return list(self.grants)

    async def handle(
        self, params: Params, authorization: str | None, admit: Callable[[Client], None] | None = None
    ) -> TokenResult:
        """``admit`` runs once the client is known (per-client rate limit); it raises to refuse.

        With ``usage``, each token and each error is counted for its client: a registered client the request
        named (an error before any client was found, e.g. an unknown client_id, is counted for none). The
        client comes from the result, the local below, or the error itself (authentication names the client
        it found before refusing it): a request allocates nothing for the counting."""
        client: Client | None = None
        try:
            check_no_duplicates(params)
            grant_type = required(params, "grant_type")
            grant = self.grants.get(grant_type)
            if grant is None:
                raise UnsupportedGrantType(f"grant_type '{grant_type[:64]}' is not supported")
            client = await authenticate_client(
                params, authorization, self.lookup, assertions=self.assertions, workloads=self.workloads
            )
            if admit is not None:
                admit(client)
            if grant_type not in client.grant_types:
                raise UnauthorizedClient(f"this client may not use the {grant_type} grant")
            result = TokenResult(await grant.issue(params, client), client, grant_type)
        except OAuthError as error:
            named = client.client_id if client is not None else error.client_id
            if self.usage is not None and named is not None:
                self.usage.error(named, error.error)
            raise
        if self.usage is not None:
            self.usage.token(client.client_id)
        return result
