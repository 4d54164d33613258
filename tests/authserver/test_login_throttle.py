"""The sign-in throttle over HTTP, on SQLite and PostgreSQL: a storm of wrong passwords against one account
(or from one address) is refused with 429 and Retry-After after the limit, the correct password included;
an unknown username is throttled exactly like a known one (same status, page and time); others sign in as
usual; behind a trusted proxy the forwarded address counts, and only behind a trusted one."""

from __future__ import annotations

import re
import statistics
import time
import uuid
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client import REGISTRY

from authserver.config import Settings
from authserver.protocol.models import User
from harness.accounts import new_user
from tests.conftest import settings_for
from tests.support.app import own_browser, store_of
from tests.support.oauth import PASSWORD, authorization_request, hidden_fields

PROXY_NETWORK = "10.77.0.0/16"
TOO_MANY = "Too many sign-in attempts. Try again in 1 minute."
WRONG = "Wrong username or password."


@pytest.fixture(scope="module")
def settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    """The default limits (5 per account, 20 per address), with proxies trusted in ``PROXY_NETWORK``."""
    return settings_for(backend, request, trusted_proxies=[PROXY_NETWORK])


async def _person(app_client: httpx.AsyncClient) -> User:
    user = new_user(f"p-{uuid.uuid4().hex[:8]}", PASSWORD, email="p@example.com", name="P")
    await store_of(app_client).create_user(user)
    return user


async def _attempt(
    browser: httpx.AsyncClient, client_id: str, username: str, password: str, **headers: str
) -> httpx.Response:
    params, _ = authorization_request(client_id, scope="openid", state="s", prompt="login")
    page = await browser.get(f"/authorize?{urlencode(params)}")
    assert page.status_code == 200, page.text
    return await browser.post(
        "/authorize/login",
        data={**hidden_fields(page.text), "username": username, "password": password},
        headers=headers,
    )


def _throttled_metric(by: str) -> float:
    return REGISTRY.get_sample_value("authserver_logins_throttled_total", {"by": by}) or 0.0


def _page_shape(response: httpx.Response, username: str) -> str:
    """The page without what differs on every render (the signed request, the CSRF token) or by design
    (the username, echoed back)."""
    return re.sub(r'value="[^"]*"', 'value=""', response.text.replace(username, "USERNAME"))


async def test_a_storm_against_one_account_is_refused_after_five_and_others_sign_in(
    app_client: httpx.AsyncClient, web_client: str
) -> None:
    victim, bystander = await _person(app_client), await _person(app_client)
    before = _throttled_metric("account")
    async with own_browser(app_client, "10.20.0.1") as attacker:
        for _ in range(5):
            refused = await _attempt(attacker, web_client, victim.username, "guess " + uuid.uuid4().hex)
            assert refused.status_code == 401 and WRONG in refused.text
        for password in ("another guess", PASSWORD):  # the right password too: not even checked
            throttled = await _attempt(attacker, web_client, victim.username, password)
            assert throttled.status_code == 429, throttled.text
            assert TOO_MANY in throttled.text and "authyard_session" not in throttled.headers.get(
                "set-cookie", ""
            )
            assert 1 <= int(throttled.headers["retry-after"]) <= 60
    async with own_browser(
        app_client, "10.20.0.2"
    ) as elsewhere:  # the victim from another address: still locked
        assert (await _attempt(elsewhere, web_client, victim.username, PASSWORD)).status_code == 429
        signed_in = await _attempt(elsewhere, web_client, bystander.username, PASSWORD)
        assert signed_in.status_code == 200 and 'action="/authorize/consent"' in signed_in.text
    assert _throttled_metric("account") == before + 3


async def test_an_unknown_username_is_throttled_exactly_like_a_known_one(
    app_client: httpx.AsyncClient, web_client: str
) -> None:
    known = (await _person(app_client)).username
    unknown = f"p-{uuid.uuid4().hex[:8]}"  # same shape, no such user
    answers: dict[str, list[httpx.Response]] = {}
    timings: dict[str, list[float]] = {}
    for number, username in enumerate((known, unknown)):
        async with own_browser(app_client, f"10.21.0.{number + 1}") as browser:
            failures = [await _attempt(browser, web_client, username, "nope-nope") for _ in range(5)]
            assert [r.status_code for r in failures] == [401] * 5
            answers[username], timings[username] = [], []
            for _ in range(5):
                params, _ = authorization_request(web_client, scope="openid", state="s", prompt="login")
                page = await browser.get(f"/authorize?{urlencode(params)}")
                form = {**hidden_fields(page.text), "username": username, "password": PASSWORD}
                started = time.perf_counter()
                answer = await browser.post("/authorize/login", data=form)
                timings[username].append(time.perf_counter() - started)
                answers[username].append(answer)
    for username in (known, unknown):
        assert {r.status_code for r in answers[username]} == {429}
        assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in answers[username])
    assert _page_shape(answers[known][0], known) == _page_shape(answers[unknown][0], unknown)
    slow, fast = sorted([statistics.median(timings[known]), statistics.median(timings[unknown])])
    assert slow < fast * 5, timings  # neither path verifies a password or looks the user up


async def test_the_address_limit_counts_the_forwarded_address_only_behind_a_trusted_proxy(
    app_client: httpx.AsyncClient, web_client: str
) -> None:
    someone = await _person(app_client)
    before = _throttled_metric("address")
    async with own_browser(app_client, "10.77.0.5") as proxy:  # a trusted proxy, forwarding two clients
        for attempt in range(20):  # a different username each time: only the address reaches its limit
            forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}  # the rightmost hop is the client
            refused = await _attempt(proxy, web_client, f"spray-{attempt}", "guess", **forwarded)
            assert refused.status_code == 401, attempt
        throttled = await _attempt(proxy, web_client, someone.username, PASSWORD, **forwarded)
        assert throttled.status_code == 429 and TOO_MANY in throttled.text
        other_client = await _attempt(
            proxy, web_client, someone.username, PASSWORD, **{"X-Forwarded-For": "203.0.113.10"}
        )
        assert other_client.status_code == 200, other_client.text
    async with own_browser(app_client, "10.20.9.9") as untrusted:  # not a proxy: its header is ignored
        own = await _attempt(untrusted, web_client, someone.username, PASSWORD, **forwarded)
        assert own.status_code == 200, own.text
    assert _throttled_metric("address") == before + 1


def test_settings_refuse_a_trusted_proxy_that_is_no_address_and_lengths_that_disagree() -> None:
    from authserver.config import SettingsError, load_settings

    with pytest.raises(SettingsError, match="AUTHSERVER_TRUSTED_PROXIES"):
        load_settings(trusted_proxies=["10.0.0.0/8", "proxy.example"])
    with pytest.raises(SettingsError, match="AUTHSERVER_PASSWORD_MIN_LENGTH"):
        load_settings(password_min_length=300, password_max_length=256)
    assert load_settings(trusted_proxies=["10.0.0.1", "fd00::/8"]).trusted_proxies == ["10.0.0.1", "fd00::/8"]
