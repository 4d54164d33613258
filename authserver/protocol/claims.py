"""Which of a user's standard claims (OIDC Core §5.1) go where: by scope (§5.4) and by the ``claims`` request
parameter (§5.5).

Userinfo returns the claims of the granted scopes and those the ``claims`` request asks for in ``userinfo``.
Every token response carries an access token, so §5.4 leaves the ID token's scope claims to the server: it
keeps carrying them (as it always has; a client that only reads the ID token needs no userinfo call), plus the
claims the request asks for in ``id_token``. A claim the user lacks is left out, never null, and an essential
claim the user lacks is no error (§5.5.1).

The request is validated and normalised once at the authorization endpoint, travels signed through the login
and consent pages, and is stored with the code and with the refresh family. Userinfo learns what was asked
from the access token itself: it carries the names asked for in ``userinfo`` (``USERINFO_CLAIMS_CLAIM``), so
userinfo needs no lookup and a refreshed access token carries the same names (from the family).

``acr``: this server has no authentication context classes and never returns ``acr`` (it is optional, §2).
``acr_values`` and a voluntary ``acr`` request are answered without it (§5.5.1.1); an essential ``acr``
request naming values is one the server cannot meet, which §5.5.1.1 makes a failed authentication
(``access_denied``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from authserver.protocol.errors import AccessDenied, InvalidRequest
from authserver.protocol.models import User

# §5.4: the claims each scope asks for, of those this server keeps.
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": (
        "name",
        "given_name",
        "family_name",
        "preferred_username",
        "locale",
        "zoneinfo",
        "updated_at",
    ),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
    # Not a standard scope: the user's groups (local membership, or the upstream provider's), as Kubernetes'
    # OIDC authenticators and most relying parties read them (a JSON array of strings).
    "groups": ("groups",),
}
# Every user claim this server may return (discovery's claims_supported adds the ID token's own).
USER_CLAIMS = ("sub", *(claim for claims in SCOPE_CLAIMS.values() for claim in claims))
# §5.1.1: the members of the address claim.
ADDRESS_MEMBERS = ("formatted", "street_address", "locality", "region", "postal_code", "country")
# A private access-token claim (RFC 9068 §2.2.3): the claim names the ``claims`` request asked userinfo for.
USERINFO_CLAIMS_CLAIM = "userinfo_claims"
# The parameter travels in a cookie-borne signed request, a database row and every access token: bounded.
MAX_CLAIMS_REQUEST_CHARS = 4096
_TARGETS = ("userinfo", "id_token")


def user_claims(user: User) -> dict[str, Any]:
    """The standard claims ``user`` has, by name; those the user lacks are absent."""
    values: dict[str, Any] = {
        "sub": user.user_id,
        "name": user.name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "preferred_username": user.username,
        "locale": user.locale,
        "zoneinfo": user.zoneinfo,
        # §5.1: seconds since the epoch.
        "updated_at": int(user.updated_at.timestamp()) if user.updated_at else None,
    }
    if user.email:
        values["email"] = user.email
        values["email_verified"] = user.email_verified
    if user.phone_number:
        values["phone_number"] = user.phone_number
        values["phone_number_verified"] = user.phone_number_verified
    if user.groups:
        values["groups"] = list(user.groups)
    address = {key: value for key, value in (user.address or {}).items() if key in ADDRESS_MEMBERS and value}
    if address:
        values["address"] = address
    return {name: value for name, value in values.items() if value is not None and value != ""}


def scope_claim_names(scope: str) -> set[str]:
    """§5.4: the claim names the granted scopes ask for (order does not matter, RFC 6749 §3.3)."""
    return {claim for token in scope.split() for claim in SCOPE_CLAIMS.get(token, ())}


def release(user: User, scope: str, requested: Iterable[str] = ()) -> dict[str, Any]:
    """``sub`` and the claims of ``scope`` and of ``requested`` that the user has."""
    names = {"sub"} | scope_claim_names(scope) | set(requested)
    return {name: value for name, value in user_claims(user).items() if name in names}


def claims_for_scope(user: User, scope: str) -> dict[str, Any]:
    return release(user, scope)


def access_token_groups(user: User | None, scope: str) -> list[str] | None:
    """The ``groups`` claim of an access token (RFC 9068 §2.2.3.1 lists groups among the claims a resource
    server may need): only when the ``groups`` scope was granted, and the user has groups."""
    if user is None or not user.groups or "groups" not in scope.split():
        return None
    return list(user.groups)


def parse_claims_request(text: str | None) -> str | None:
    """The ``claims`` parameter (§5.5) checked and normalised to compact JSON with only the ``userinfo`` and
    ``id_token`` members (others are ignored, §5.5); None when absent or asking for nothing. Raises
    ``InvalidRequest`` for malformed JSON or a wrong shape."""
    if text is None:
        return None
    if len(text) > MAX_CLAIMS_REQUEST_CHARS:
        raise InvalidRequest(f"the claims parameter is longer than {MAX_CLAIMS_REQUEST_CHARS} characters")
    try:
        request = json.loads(text)
    except ValueError:
        raise InvalidRequest("the claims parameter is not valid JSON") from None
    if not isinstance(request, dict):
        raise InvalidRequest("the claims parameter must be a JSON object")
    normalised: dict[str, dict[str, Any]] = {}
    for target in _TARGETS:
        if target not in request:
            continue
        members = request[target]
        if not isinstance(members, dict):
            raise InvalidRequest(f"claims.{target} must be a JSON object")
        for name, ask in members.items():
            _check_individual_request(target, name, ask)
        if members:
            normalised[target] = members
    if not normalised:
        return None
    return json.dumps(normalised, separators=(",", ":"), sort_keys=True)


def _check_individual_request(target: str, name: str, ask: Any) -> None:
    """§5.5.1: each claim is null (default manner) or an object whose ``essential`` is a boolean and whose
    ``values`` is an array; ``value`` may be any JSON value, and other members are ignored."""
    if ask is None:
        return
    if not isinstance(ask, dict):
        raise InvalidRequest(f"claims.{target}.{name} must be null or a JSON object")
    if "essential" in ask and not isinstance(ask["essential"], bool):
        raise InvalidRequest(f"claims.{target}.{name}.essential must be true or false")
    if "values" in ask and not isinstance(ask["values"], list):
        raise InvalidRequest(f"claims.{target}.{name}.values must be an array")


def _members(claims: str | None, target: str) -> dict[str, Any]:
    if claims is None:
        return {}
    members = json.loads(claims).get(target, {})
    return members if isinstance(members, dict) else {}


def requested_claims(claims: str | None, target: str) -> tuple[str, ...]:
    """The claim names a normalised claims request asks for in ``target`` (``userinfo`` or ``id_token``)."""
    return tuple(sorted(_members(claims, target)))


def userinfo_claim_names(claims: str | None) -> str | None:
    """What an access token carries of the request (``USERINFO_CLAIMS_CLAIM``): the names this server could
    return to userinfo, space-separated; None when there are none."""
    names = [name for name in requested_claims(claims, "userinfo") if name in USER_CLAIMS]
    return " ".join(names) or None


def required_subject(claims: str | None) -> str | None:
    """§5.5.1: ``sub`` asked with a value names the only user an ID token may be issued for."""
    for target in _TARGETS:
        ask = _members(claims, target).get("sub")
        if isinstance(ask, dict) and "value" in ask:
            value = ask["value"]
            if not isinstance(value, str) or not value:
                raise InvalidRequest("claims: a sub value must be a non-empty string")
            return value
    return None


def check_satisfiable(claims: str | None) -> None:
    """§5.5.1.1: an essential ``acr`` request naming values must be met, or the authentication fails. This
    server has no authentication context class to offer, so such a request can never be met."""
    for target in _TARGETS:
        ask = _members(claims, target).get("acr")
        if isinstance(ask, dict) and ask.get("essential") is True and ("value" in ask or "values" in ask):
            raise AccessDenied("the essential acr requested cannot be met: this server has no acr values")
