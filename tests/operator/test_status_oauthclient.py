"""The OAuthClient's status as pure functions: what it reports registered, failed, and after an API error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
from authyard_operator.spec.oauthclient import OAuthClientStatus
from authyard_operator.status.oauthclient import (
    api_error_status,
    failed_status,
    newly_registered,
    registered_status,
)

from tests.operator.support import NOW, schema_of, strict


def registered(previous: dict[str, Any] | None = None, now=NOW, last_rotation: str | None = None):
    return registered_status(
        generation=2,
        client_id="team-a.orders",
        secret_name="orders-oauth",
        authserver="platform/auth",
        last_rotation=last_rotation,
        now=now,
        previous=previous or {},
    )


def assert_fits_the_crd(status: dict[str, Any]) -> None:
    jsonschema.validate(status, strict(schema_of("OAuthClient"))["properties"]["status"])
    OAuthClientStatus.model_validate(status)


def test_registered_is_ready_and_names_what_it_registered() -> None:
    status = registered()
    (ready,) = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Registered")
    assert ready["message"] == "registered with AuthServer platform/auth as team-a.orders"
    assert (status["observedGeneration"], ready["observedGeneration"]) == (2, 2)
    assert (status["clientId"], status["secretName"], status["authServer"]) == (
        "team-a.orders",
        "orders-oauth",
        "platform/auth",
    )
    assert status["lastRotation"] is None
    assert_fits_the_crd({key: value for key, value in status.items() if value is not None})


def test_a_reconcile_that_finds_nothing_new_writes_the_same_status() -> None:
    first = registered(last_rotation="2026-11-22T11:00:00Z")
    assert registered(first, now=NOW + timedelta(minutes=5)) == first  # the rotation date is kept too
    assert not newly_registered(first, 2)
    assert newly_registered(first, 3) and newly_registered({}, 2)


def test_failed_keeps_the_registration_and_moves_the_transition_time() -> None:
    good = registered()
    later = NOW + timedelta(minutes=1)
    status = failed_status(3, "AuthServerNotReady", "AuthServer platform/auth is not Ready yet", later, good)
    (ready,) = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "AuthServerNotReady")
    assert ready["lastTransitionTime"] == "2026-11-22T12:01:00Z"
    assert status["observedGeneration"] == 3 and status["clientId"] == good["clientId"]
    assert newly_registered(status, 3)  # Ready again after a failure is news
    assert_fits_the_crd({key: value for key, value in status.items() if value is not None})


def test_an_api_error_leaves_the_status_as_it_was() -> None:
    good = registered()
    status = api_error_status(good)
    assert status == good and status is not good
