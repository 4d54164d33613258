"""workload_identity: a client authenticates with a JWT a trusted issuer gave its workload, such as the
projected service-account token of a Kubernetes pod (RFC 7523 §2.2 with §3). The client registered the
issuer's name and the exact ``sub`` of its workload (``system:serviceaccount:<namespace>:<name>``); it has
no secret and no keys of its own.

Unlike private_key_jwt, the assertion's ``jti`` is not spent: RFC 7523 §3 item 7 makes single use a MAY, and
the kubelet hands a pod one token that the pod sends again and again until the kubelet rotates it (at 80% of
its ``expirationSeconds``). Refusing a second use would refuse every workload after its first request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from authserver.protocol.errors import InvalidClient
from authserver.protocol.models import Client, TokenEndpointAuthMethod
from authserver.protocol.trusted_issuers import TrustedIssuer, TrustedTokenVerifier

# The client registered for (trusted issuer name, subject), if any.
WorkloadLookup = Callable[[str, str], Awaitable[Client | None]]
ClientLookup = Callable[[str], Awaitable[Client | None]]
_WHAT = "client_assertion"
_MAX_CLIENT_ID_LENGTH = 512  # as protocol.client_authentication


class WorkloadAuthenticator:
    def __init__(self, verifier: TrustedTokenVerifier, by_workload: WorkloadLookup) -> None:
        self.verifier = verifier
        self.by_workload = by_workload

    def issuer_of(self, assertion: str) -> TrustedIssuer | None:
        """The trusted issuer the assertion claims to come from; None: it names no trusted issuer."""
        return self.verifier.issuer_named_by(assertion, _WHAT, InvalidClient)

    def remembered_issuer(self, assertion: str) -> TrustedIssuer | None:
        """The issuer of an assertion that verified before and is remembered (no parse); None otherwise."""
        return self.verifier.remembered_issuer(assertion)

    async def authenticate(
        self,
        issuer: TrustedIssuer,
        assertion: str,
        client_id: str | None,
        lookup: ClientLookup,
        header: Mapping[str, Any] | None = None,
    ) -> Client:
        """The client whose workload the assertion proves; raises InvalidClient naming the rule broken.

        ``client_id``: the form parameter, optional (RFC 7521 §4.2); when sent it must name that client,
        when absent the client is the one registered for the token's (issuer, sub)."""
        verified = await self.verifier.verify(assertion, issuer, _WHAT, InvalidClient, header)
        subject = verified.subject
        if client_id is None:
            client = await self.by_workload(issuer.name, subject)
            if client is None:
                raise InvalidClient(
                    f"no client is registered for workload {subject!r} of trusted issuer {issuer.name}"
                )
        else:
            if len(client_id) > _MAX_CLIENT_ID_LENGTH:
                raise InvalidClient()
            client = await lookup(client_id)
            if client is None:
                raise InvalidClient()
            try:
                return _workload_of(client, issuer, subject)
            except InvalidClient as error:
                error.client_id = client.client_id  # the client the request named by its client_id
                raise
        return _workload_of(client, issuer, subject)


def _workload_of(client: Client, issuer: TrustedIssuer, subject: str) -> Client:
    if client.token_endpoint_auth_method is not TokenEndpointAuthMethod.WORKLOAD_IDENTITY:
        raise InvalidClient("this client is not registered for workload_identity")
    # Exactly: system:serviceaccount:ns:name is neither a prefix nor a pattern, so another namespace's
    # (or another service account's) token never passes for this client.
    if client.workload_issuer != issuer.name or client.workload_subject != subject:
        raise InvalidClient(
            f"client_assertion sub {subject!r} of trusted issuer {issuer.name} is not the workload "
            "registered for this client"
        )
    return client
