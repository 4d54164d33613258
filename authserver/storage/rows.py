"""Rows into domain types (``protocol.models``), for both stores: what leaves storage is never a row."""

from __future__ import annotations

import hmac
import json
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, overload

from authserver.protocol.models import (
    AuthorizationCode,
    Client,
    ClientType,
    NewRefreshToken,
    RateLimit,
    RedeemedCode,
    Redemption,
    RedemptionOutcome,
    RefreshToken,
    TokenEndpointAuthMethod,
    TokenExchangePolicy,
    User,
)


@overload
def aware(moment: datetime) -> datetime: ...
@overload
def aware(moment: None) -> None: ...
@overload
def aware(moment: datetime | None) -> datetime | None: ...
def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def client_from_row(row: Any) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        client_type=ClientType(row.client_type),
        grant_types=tuple(row.grant_types),
        scopes=tuple(row.scopes),
        audiences=tuple(row.audiences),
        redirect_uris=tuple(row.redirect_uris),
        token_endpoint_auth_method=_auth_method(row.token_endpoint_auth_method),
        secret_hash=row.secret_hash,
        previous_secret_hash=row.previous_secret_hash,
        previous_secret_expires_at=aware(row.previous_secret_expires_at),
        access_token_ttl_seconds=row.access_token_ttl_seconds,
        refresh_token_ttl_seconds=row.refresh_token_ttl_seconds,
        require_pkce=bool(row.require_pkce),
        id_token_signed_response_alg=row.id_token_signed_response_alg,
        skip_consent=bool(row.skip_consent),
        backchannel_logout_uri=row.backchannel_logout_uri,
        backchannel_logout_session_required=bool(row.backchannel_logout_session_required),
        jwks=row.jwks,
        jwks_uri=row.jwks_uri,
        token_endpoint_auth_signing_alg=row.token_endpoint_auth_signing_alg,
        token_exchange=_token_exchange(row.token_exchange),
        workload_issuer=row.workload_issuer,
        workload_subject=row.workload_subject,
        rate_limit=RateLimit(row.rate_limit_per_second, row.rate_limit_burst)
        if row.rate_limit_per_second is not None and row.rate_limit_burst is not None
        else None,
        post_logout_redirect_uris=tuple(row.post_logout_redirect_uris or ()),
    )


def _token_exchange(value: Any) -> TokenExchangePolicy | None:
    if isinstance(value, str):  # JSON as text: a raw row
        value = json.loads(value)
    if not value:
        return None
    return TokenExchangePolicy(
        audiences=tuple(value.get("audiences") or ()),
        subject_audiences=tuple(value.get("subject_audiences") or ()),
        allow_impersonation=bool(value.get("allow_impersonation")),
    )


def token_exchange_value(policy: TokenExchangePolicy | None) -> dict[str, Any] | None:
    """The policy as the clients.token_exchange column holds it."""
    if policy is None:
        return None
    return {
        "audiences": list(policy.audiences),
        "subject_audiences": list(policy.subject_audiences),
        "allow_impersonation": policy.allow_impersonation,
    }


def _auth_method(value: str | None) -> TokenEndpointAuthMethod | None:
    """NULL: a confidential client that may use either secret method (no pin)."""
    return TokenEndpointAuthMethod(value) if value else None


# ``User``'s fields, the order of ``statements.USER_COLUMNS``.
USER_FIELDS = tuple(field.name for field in fields(User))


def _groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # JSON as text, as for the address
        value = json.loads(value)
    return tuple(str(group) for group in value) if isinstance(value, list) else ()


def user_from_row(row: Any) -> User:
    """A row of ``statements.USER_COLUMNS``, in that order."""
    values = dict(zip(USER_FIELDS, row, strict=True))
    address, updated_at = values["address"], values["updated_at"]
    if isinstance(address, str):  # JSON as text: SQLite's own driver and asyncpg's raw rows
        address = json.loads(address)
    if isinstance(updated_at, str):  # SQLite's own driver: SQLAlchemy's storage format, UTC
        updated_at = datetime.fromisoformat(updated_at)
    return User(
        **{
            **values,
            "email_verified": bool(values["email_verified"]),
            "phone_number_verified": bool(values["phone_number_verified"]),
            "address": address if isinstance(address, dict) else None,
            "updated_at": aware(updated_at),
            "disabled": bool(values["disabled"]),
            "groups": _groups(values["groups"]),
        }
    )


def family_as_seen(family_id: str, row: Any, secret_hash: str) -> RefreshToken:
    """A row of ``statements.FAMILY_COLUMNS`` as seen by the holder of ``secret_hash``: ``rotated`` unless it
    is the current one (hashes of high-entropy secrets, compared in constant time all the same)."""
    current_hash, client_id, user_id, scope, audience, auth_time, expires_at, revoked = row
    return RefreshToken(
        family_id=family_id,
        client_id=client_id,
        user_id=user_id,
        scope=scope,
        audience=audience,
        auth_time=auth_time,
        expires_at=aware(expires_at),
        rotated=not hmac.compare_digest(current_hash, secret_hash),
        revoked=bool(revoked),
    )


def redeemed(
    code: AuthorizationCode,
    owner: User | None,
    issued_family_id: str | None,
    refresh: NewRefreshToken | None,
    now: datetime,
) -> Redemption[RedeemedCode]:
    """A code claimed just now: EXPIRED, or OK with its user and the refresh token stored in
    ``issued_family_id`` (None: none was)."""
    if code.expires_at <= now:
        return Redemption(RedemptionOutcome.EXPIRED)
    stored = None
    if issued_family_id is not None and refresh is not None:
        stored = RefreshToken(
            family_id=issued_family_id,
            client_id=code.client_id,
            user_id=code.user_id,
            scope=code.scope,
            audience=code.audience,
            auth_time=code.auth_time,
            expires_at=refresh.expires_at,
            claims=code.claims,
            session_id=code.session_id,
        )
    return Redemption(RedemptionOutcome.OK, RedeemedCode(code, owner, stored))


def rotated(
    family_id: str, client_id: str, grant: Any, successor: NewRefreshToken
) -> Redemption[RefreshToken]:
    """A rotation that went through: the successor, with the family's grant (user_id, scope, audience,
    auth_time, claims, session_id)."""
    user_id, scope, audience, auth_time, claims, session_id = grant
    return Redemption(
        RedemptionOutcome.OK,
        RefreshToken(
            family_id=family_id,
            client_id=client_id,
            user_id=user_id,
            scope=scope,
            audience=audience,
            auth_time=auth_time,
            expires_at=successor.expires_at,
            claims=claims,
            session_id=session_id,
        ),
    )
