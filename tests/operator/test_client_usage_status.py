"""The OAuthClient's usage status as pure functions: status.usage from the admin API's answer, the Unused
condition, registrations keeping it, and which clients of an AuthServer a usage pass writes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from authyard_operator.clock import rfc3339
from authyard_operator.reconcile.usage import IndexedClient, usage_changes
from authyard_operator.status.oauthclient import failed_status, usage_status

from tests.operator.support import NOW
from tests.operator.test_status_oauthclient import assert_fits_the_crd, registered

CREATED = NOW - timedelta(days=90)
REPORTED = {
    "client_id": "team-a.orders",
    "last_token_at": "2026-11-22T11:59:30.123456Z",
    "tokens_last_hour": 12,
    "tokens_last_day": 300,
    "errors_last_hour": 1,
    "errors_last_day": 2,
    "last_error": {"code": "invalid_client", "at": "2026-11-22T11:00:00+00:00"},
}


def _unused(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Unused")


def test_usage_from_the_admin_api_and_a_used_client() -> None:
    status = usage_status({}, REPORTED, CREATED, 30, 1, NOW)
    assert status["usage"] == {
        "lastTokenAt": "2026-11-22T11:59:30Z",
        "tokensLastHour": 12,
        "tokensLastDay": 300,
        "lastError": {"code": "invalid_client", "at": "2026-11-22T11:00:00Z"},
    }
    unused = _unused(status)
    assert (unused["status"], unused["reason"]) == ("False", "Used")
    assert "2026-11-22T11:59:30Z" in unused["message"] and "30 days" in unused["message"]
    assert_fits_the_crd(status)


def test_a_client_without_a_token_for_the_given_days_is_unused_and_says_since_when() -> None:
    last = NOW - timedelta(days=8)
    reported = {**REPORTED, "last_token_at": rfc3339(last), "tokens_last_hour": 0, "tokens_last_day": 0}
    unused = _unused(usage_status({}, reported, CREATED, 7, 1, NOW))
    assert (unused["status"], unused["reason"]) == ("True", "NoRecentToken")
    assert rfc3339(last) in unused["message"] and "more than 7 days ago" in unused["message"]
    assert _unused(usage_status({}, reported, CREATED, 9, 1, NOW))["status"] == "False"


def test_a_client_never_used_is_unused_once_its_age_passes_the_days() -> None:
    young = _unused(usage_status({}, None, NOW - timedelta(days=2), 30, 1, NOW))
    assert (young["status"], young["reason"]) == ("False", "NotUsedYet")
    old = usage_status({}, None, CREATED, 30, 1, NOW)
    assert old["usage"] == {"tokensLastHour": 0, "tokensLastDay": 0}
    assert (_unused(old)["status"], _unused(old)["reason"]) == ("True", "NeverUsed")
    assert rfc3339(CREATED) in _unused(old)["message"]


def test_an_unchanged_usage_is_the_same_status_and_keeps_its_transition_time() -> None:
    first = usage_status({"conditions": []}, REPORTED, CREATED, 30, 1, NOW)
    again = usage_status(first, REPORTED, CREATED, 30, 1, NOW + timedelta(minutes=5))
    assert again == first
    stale = usage_status(first, REPORTED, CREATED, 30, 1, NOW + timedelta(days=31))
    assert _unused(stale)["lastTransitionTime"] == rfc3339(NOW + timedelta(days=31))


def test_a_usage_field_no_longer_reported_is_deleted_by_the_merge_patch() -> None:
    before = usage_status({}, REPORTED, CREATED, 30, 1, NOW)
    after = usage_status(before, None, CREATED, 30, 1, NOW)
    assert after["usage"] == {"tokensLastHour": 0, "tokensLastDay": 0, "lastTokenAt": None, "lastError": None}


def test_registration_and_failure_keep_the_unused_condition() -> None:
    """A status merge patch replaces the whole conditions list: a registration's must carry Unused over."""
    first = registered()
    previous = {**first, **usage_status(first, REPORTED, CREATED, 30, 1, NOW)}
    assert [c["type"] for c in previous["conditions"]] == ["Ready", "Unused"]
    for status in (
        registered(previous),
        failed_status(2, "AuthServerUnreachable", "down", NOW, previous),
    ):
        assert [c["type"] for c in status["conditions"]] == ["Ready", "Unused"]
        assert _unused(status) == _unused(previous)


def _indexed(name: str, status: dict[str, Any], days: int | None = None) -> IndexedClient:
    return IndexedClient("team-a", name, 1, rfc3339(CREATED), days, status)


def test_a_pass_writes_only_clients_registered_with_its_authserver_and_uses_their_own_days() -> None:
    mine = {"clientId": "team-a.orders", "authServer": "platform/auth"}
    clients = [
        _indexed("orders", mine),
        _indexed("billing", {"clientId": "team-a.billing", "authServer": "platform/other"}),
        _indexed("pending", {}),
        _indexed("strict", {"clientId": "team-a.strict", "authServer": "platform/auth"}, days=1),
    ]
    reported = {"team-a.strict": {**REPORTED, "last_token_at": rfc3339(NOW - timedelta(days=2))}}
    changes = usage_changes(clients, {"team-a.orders": REPORTED, **reported}, 30, "platform/auth", NOW)
    assert [change.name for change in changes] == ["orders", "strict"]
    assert _unused(changes[0].after)["status"] == "False" and _unused(changes[1].after)["status"] == "True"
    assert changes[0].before == {"usage": None, "conditions": None}
