"""Who is calling the token, revocation and introspection endpoints (RFC 6749 §2.3, §3.2.1)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from authserver.crypto.client_secrets import secret_matches
from authserver.protocol.client_assertion import (
    JWT_BEARER_ASSERTION_TYPE,
    ClientAssertionVerifier,
    preview_assertion,
    unverified_client_id,
)
from authserver.protocol.errors import InvalidClient, InvalidRequest, OAuthError
from authserver.protocol.models import Client, TokenEndpointAuthMethod
from authserver.protocol.params import Params, single
from authserver.protocol.workload_identity import WorkloadAuthenticator

ClientLookup = Callable[[str], Awaitable[Client | None]]
_MAX_CREDENTIAL_LENGTH = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_basic(header: str) -> tuple[str, str]:
    """client_id and secret from 'Basic base64(urlencode(id):urlencode(secret))' (RFC 6749 §2.3.1)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise InvalidClient("unsupported authorization scheme; use Basic")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient("malformed Basic credentials") from None
    client_id, separator, secret = decoded.partition(":")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if not separator or not client_id or _CONTROL.search(client_id) or _CONTROL.search(secret):
        raise InvalidClient("malformed Basic credentials")
    return client_id, secret


def _secret_is_valid(client: Client, secret: str, now: datetime) -> bool:
    if secret_matches(secret, client.secret_hash):
        return True
    # During a client-secret rotation's grace period the previous secret still works.
    expiry = client.previous_secret_expires_at
    return expiry is not None and _aware(expiry) > now and secret_matches(secret, client.previous_secret_hash)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def authenticate_client(
    params: Params,
    authorization: str | None,
    lookup: ClientLookup,
    *,
    assertions: ClientAssertionVerifier | None = None,
    workloads: WorkloadAuthenticator | None = None,
    now: datetime | None = None,
) -> Client:
    """The authenticated (confidential) or identified (public) client; raises InvalidClient otherwise,
    whose ``client_id`` names the registered client the request named, if one was found.

    ``assertions``: how private_key_jwt assertions are checked (None: the method is not offered);
    ``workloads``: how trusted issuers' tokens are (None: no issuer is trusted)."""
    now = now or datetime.now(UTC)
    form_id, form_secret = single(params, "client_id"), single(params, "client_secret")
    assertion_type, assertion = single(params, "client_assertion_type"), single(params, "client_assertion")
    if assertion_type is not None or assertion is not None:
        return await _authenticate_with_assertion(
            assertion_type, assertion, form_id, form_secret, authorization, lookup, assertions, workloads, now
        )
    secret: str | None
    if authorization:
        if form_secret is not None:
            raise InvalidRequest("use one client authentication method, not Basic and client_secret both")
        client_id, secret = parse_basic(authorization)
        if form_id is not None and form_id != client_id:
            raise InvalidRequest("client_id in the body does not match the Authorization header")
        method = TokenEndpointAuthMethod.CLIENT_SECRET_BASIC
    elif form_id is not None:
        client_id, secret = form_id, form_secret
        method = (
            TokenEndpointAuthMethod.CLIENT_SECRET_POST if secret is not None else TokenEndpointAuthMethod.NONE
        )
    else:
        raise InvalidClient("client authentication is required")

    if len(client_id) > _MAX_CREDENTIAL_LENGTH or (secret and len(secret) > _MAX_CREDENTIAL_LENGTH):
        raise InvalidClient()
    client = await lookup(client_id)
    if client is None:
        secret_matches(secret or "", "0" * 64)  # same work as a real comparison: no timing oracle on ids
        raise InvalidClient()
    try:
        if client.is_public:
            if method is not TokenEndpointAuthMethod.NONE:
                raise InvalidClient("public clients do not authenticate with a secret")
            return client
        if not client.uses_secret:
            method_name = client.token_endpoint_auth_method.value if client.token_endpoint_auth_method else ""
            raise InvalidClient(f"this client is registered for {method_name}: send a client_assertion")
        if method is TokenEndpointAuthMethod.NONE or secret is None:
            raise InvalidClient("this client must authenticate with its secret")
        # Either secret method unless the registration pins one; one method per request (checked above).
        pinned = client.token_endpoint_auth_method
        if pinned is not None and method is not pinned:
            raise InvalidClient(f"this client is registered for {pinned.value}")
        if not _secret_is_valid(client, secret, now):
            raise InvalidClient()
    except OAuthError as error:
        error.client_id = client.client_id
        raise
    return client


async def _authenticate_with_assertion(
    assertion_type: str | None,
    assertion: str | None,
    form_id: str | None,
    form_secret: str | None,
    authorization: str | None,
    lookup: ClientLookup,
    assertions: ClientAssertionVerifier | None,
    workloads: WorkloadAuthenticator | None,
    now: datetime,
) -> Client:
    """private_key_jwt (RFC 7523 §2.2, OIDC Core §9) or workload_identity (a trusted issuer's JWT, the
    ``iss`` telling them apart); one method per request (RFC 6749 §2.3)."""
    if assertion_type != JWT_BEARER_ASSERTION_TYPE:
        raise InvalidClient(f"client_assertion_type must be {JWT_BEARER_ASSERTION_TYPE}")
    if not assertion:
        raise InvalidClient("client_assertion is required with client_assertion_type")
    if authorization or form_secret is not None:
        raise InvalidClient("use one client authentication method, not a client_assertion and a secret both")
    if workloads is not None:
        remembered = workloads.remembered_issuer(assertion)  # a workload's token seen before: no parse
        if remembered is not None:
            return await workloads.authenticate(remembered, assertion, form_id, lookup)
    header, claims = preview_assertion(assertion)  # read once, unverified: whose keys to check it with
    named_issuer = claims.get("iss")
    if workloads is not None:
        issuer = workloads.verifier.trusted(named_issuer)
        if issuer is not None:
            return await workloads.authenticate(issuer, assertion, form_id, lookup, header)
    if assertions is None:
        raise InvalidClient("private_key_jwt is not offered at this endpoint")
    client_id = unverified_client_id(claims)
    # A private_key_jwt client signs its own assertions (iss = sub = client_id, RFC 7523 §3 items 1-2); an
    # assertion signed by someone else, for no such client, came from an issuer that is not trusted.
    foreign = named_issuer != client_id
    untrusted = "client_assertion iss is not a trusted issuer (nor the client_id)"
    # RFC 7523 §3 item 2 with §2.2: a client_id sent beside the assertion must name the same client.
    if form_id is not None and form_id != client_id:
        raise InvalidClient(untrusted if foreign else "client_id does not match the client_assertion's sub")
    if len(client_id) > _MAX_CREDENTIAL_LENGTH:
        raise InvalidClient()
    client = await lookup(client_id)
    if client is None:
        raise InvalidClient(untrusted) if foreign else InvalidClient()
    try:
        if client.token_endpoint_auth_method is TokenEndpointAuthMethod.WORKLOAD_IDENTITY:
            raise InvalidClient("client_assertion iss is not a trusted issuer")
        if client.token_endpoint_auth_method is not TokenEndpointAuthMethod.PRIVATE_KEY_JWT:
            raise InvalidClient("this client is not registered for private_key_jwt")
        await assertions.verify(client, assertion, now, header)
    except OAuthError as error:
        error.client_id = client.client_id
        raise
    return client
