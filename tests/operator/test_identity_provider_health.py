"""The upstreams' health in the AuthServer's status: status.identityProviders and the
IdentityProvidersAvailable condition from the server's admin API answer, carried by every other status
write, removed with the providers; an upstream that is down never touches Ready."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from authyard_operator.status.authserver import (
    IDENTITY_PROVIDERS,
    failed_status,
    identity_providers_status,
    reconciled_status,
)
from authyard_operator.status.conditions import find

from tests.operator.support import NOW

CHECKED = "2026-12-07T15:00:00+00:00"


def _health(*providers: tuple[str, str, bool, str | None]) -> dict[str, Any]:
    return {
        "local_accounts": True,
        "providers": [
            {"name": name, "kind": kind, "healthy": healthy, "detail": detail, "checked_at": CHECKED}
            for name, kind, healthy, detail in providers
        ],
    }


def _ready(status: dict[str, Any]) -> dict[str, Any] | None:
    return find(status["conditions"], "Ready")


def test_an_upstream_that_is_down_is_named_in_status_and_the_condition_but_ready_stays() -> None:
    ready = failed_status(1, "Available", "up", NOW)  # any earlier status: its conditions are kept
    ready["conditions"][0] = {**ready["conditions"][0], "status": "True"}
    health = _health(
        ("corp", "oidc", True, None), ("directory", "ldap", False, "LDAPSocketOpenError: refused")
    )
    status = identity_providers_status(ready, 1, health, NOW)
    assert status["identityProviders"] == [
        {"name": "corp", "kind": "oidc", "healthy": True, "lastChecked": CHECKED},
        {
            "name": "directory",
            "kind": "ldap",
            "healthy": False,
            "message": "LDAPSocketOpenError: refused",
            "lastChecked": CHECKED,
        },
    ]
    available = find(status["conditions"], IDENTITY_PROVIDERS)
    assert available is not None and (available["status"], available["reason"]) == (
        "False",
        "UpstreamUnavailable",
    )
    assert "directory" in available["message"] and "corp" not in available["message"]
    assert _ready(status) == _ready(ready)  # sign-in through the others and local accounts still works


def test_the_condition_moves_only_when_the_health_does() -> None:
    down = identity_providers_status({"conditions": []}, 1, _health(("corp", "oidc", False, "timeout")), NOW)
    again = identity_providers_status(
        down, 1, _health(("corp", "oidc", False, "timeout")), NOW + timedelta(1)
    )
    assert again == down  # nothing new: an identical status, no write
    up = identity_providers_status(again, 1, _health(("corp", "oidc", True, None)), NOW + timedelta(2))
    available = find(up["conditions"], IDENTITY_PROVIDERS)
    assert available is not None and (available["status"], available["reason"]) == ("True", "AllAvailable")
    assert (
        available["lastTransitionTime"] != find(down["conditions"], IDENTITY_PROVIDERS)["lastTransitionTime"]
    )  # type: ignore[index]


def test_every_other_status_write_keeps_the_health_condition_and_removing_providers_drops_it() -> None:
    health = identity_providers_status({"conditions": []}, 3, _health(("corp", "oidc", False, "down")), NOW)
    failed = failed_status(4, "InvalidSpec", "bad", NOW, health)
    assert find(failed["conditions"], IDENTITY_PROVIDERS) == find(health["conditions"], IDENTITY_PROVIDERS)
    assert failed["identityProviders"] == health["identityProviders"]
    gone = identity_providers_status(failed, 4, None, NOW)
    assert find(gone["conditions"], IDENTITY_PROVIDERS) is None
    assert gone["identityProviders"] is None  # a merge patch deleting the field
    assert {c["type"] for c in gone["conditions"]} == {"Ready", "Progressing", "Degraded"}


def test_a_full_reconcile_keeps_the_health_condition() -> None:
    from authyard_operator.sizing import size_pools

    from tests.operator.support import render, spec_of

    spec = spec_of({})
    desired = render({})
    health = identity_providers_status({"conditions": []}, 1, _health(("corp", "oidc", True, None)), NOW)
    status = reconciled_status(
        generation=1,
        issuer="http://auth.platform.svc:8080",
        sizing=size_pools(spec),
        key_plan=desired.key_plan,
        tokens=spec.tokens,
        deployment=None,
        now=NOW,
        previous=health,
    )
    assert find(status["conditions"], IDENTITY_PROVIDERS) == find(health["conditions"], IDENTITY_PROVIDERS)
