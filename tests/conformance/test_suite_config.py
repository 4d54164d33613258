"""The conformance suite's configuration checked against a REAL Authyard here, set up as the workflow
(.github/workflows/conformance.yml) sets it up: `authserver serve` behind HAProxy with a certificate from
conformance/tls.sh, the clients and the user made by conformance/provision.sh with the `authserver` CLI.

The suite itself cannot run on this machine (it needs Docker Hub and GitHub); what can be checked here is that
its configuration fits our server: the discovery URL answers with our issuer over TLS the throwaway CA
vouches for, the static clients' credentials work at the token endpoint, and the browser steps the suite's
headless browser would replay find every element they use on the pages our authorization endpoint leads to,
ending at the suite's callback with a code (tests/conformance/browser_replay.py). A renamed field on the login
page breaks these tests, not only the GitHub run.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from conformance import suite_config
from harness.authserver import AuthServer, authserver_command, running_server
from harness.polling import wait_for
from harness.ports import free_port
from tests.conformance.browser_replay import Browser, origin, replay, simple_match
from tests.support.oauth import admin_headers
from tests.support.programs import require_program

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE = ROOT / "conformance"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_program("openssl", "AUTHYARD_REQUIRE_HAPROXY")
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run(["bash", str(CONFORMANCE / "tls.sh"), str(directory), "localhost"], check=True, timeout=60)
    return directory


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tls: Path) -> Iterator[tuple[AuthServer, str]]:
    """(the server, its https:// issuer): `authserver serve` on loopback HTTP, HAProxy in front."""
    haproxy = require_program("haproxy", "AUTHYARD_REQUIRE_HAPROXY")
    tls_port = free_port()
    issuer = f"https://localhost:{tls_port}"
    with running_server(tmp_path_factory.mktemp("conformance"), AUTHSERVER_ISSUER=issuer) as server:
        env = {
            **os.environ,
            "AUTHYARD_TLS_BIND": f"127.0.0.1:{tls_port}",
            "AUTHYARD_TLS_PEM": str(tls / "server.pem"),
            "AUTHYARD_BACKEND": f"127.0.0.1:{server.port}",
        }
        proxy = subprocess.Popen(
            [haproxy, "-db", "-f", str(CONFORMANCE / "haproxy.cfg")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_listening(tls_port, proxy)
            yield server, issuer
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)


def _wait_listening(port: int, proxy: subprocess.Popen[bytes]) -> None:
    import asyncio

    def listening() -> bool:
        assert proxy.poll() is None, proxy.stderr.read().decode() if proxy.stderr else "haproxy exited"
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    asyncio.run(wait_for(listening, timeout=15, message=f"haproxy listening on {port}"))


@pytest.fixture(scope="module")
def provisioned(stack: tuple[AuthServer, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """conformance/provision.sh run as the workflow runs it; its output files, config.json parsed."""
    server, issuer = stack
    out = tmp_path_factory.mktemp("provisioned")
    command = authserver_command()
    assert len(command) == 1, "the authserver console script is installed in the environment"
    completed = subprocess.run(
        ["bash", str(CONFORMANCE / "provision.sh"), str(out)],
        cwd=server.directory,
        env={**server.env, "ISSUER": issuer, "AUTHSERVER": command[0], "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    names = ("client.json", "client2.json", "client-backchannel.json")
    clients = [json.loads((out / name).read_text()) for name in names]
    for client in clients:
        server.seen_secrets.add(client["client_secret"])
    server.seen_secrets.add((out / "password").read_text().strip())
    return {
        "config": json.loads((out / "config.json").read_text()),
        "backchannel_config": json.loads((out / "config-backchannel.json").read_text()),
        "clients": clients,
        "out": out,
    }


def test_only_the_backchannel_plans_client_is_sent_logout_tokens(
    provisioned: dict[str, Any], stack: tuple[AuthServer, str]
) -> None:
    """The back-channel plan's configuration names its own client, registered with the suite's
    backchannel_logout URI (session required); the other plans' clients have none, so their modules never
    receive a logout token they did not ask for."""
    server, _ = stack
    plain, _, backchannel = provisioned["clients"]
    assert provisioned["backchannel_config"]["client"]["client_id"] == backchannel["client_id"]
    assert provisioned["config"]["client"]["client_id"] == plain["client_id"]
    registered = {
        client["client_id"]: httpx.get(
            f"{server.base_url}/admin/clients/{client['client_id']}", headers=admin_headers(), timeout=15
        ).json()
        for client in provisioned["clients"]
    }
    assert registered[backchannel["client_id"]]["backchannel_logout_uri"] == (
        suite_config.backchannel_logout_uri()
    )
    assert registered[backchannel["client_id"]]["backchannel_logout_session_required"] is True
    assert registered[backchannel["client_id"]]["post_logout_redirect_uris"] == [
        suite_config.post_logout_redirect_uri()
    ]
    assert all(
        registered[c["client_id"]]["backchannel_logout_uri"] is None for c in provisioned["clients"][:2]
    )


def _https(tls: Path) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(tls / "ca.pem")), timeout=30)


def _discovery(tls: Path, config: dict[str, Any]) -> dict[str, Any]:
    with _https(tls) as client:
        response = client.get(config["server"]["discoveryUrl"])
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _authorization_url(document: dict[str, Any], client_id: str, redirect_uri: str, **extra: str) -> str:
    # What the suite's oidcc modules send for response type code: no PKCE (the clients are registered
    # --pkce-optional, as provision.sh does) and a nonce.
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        **extra,
    }
    return f"{document['authorization_endpoint']}?{urlencode(query)}"


def test_the_files_made_for_the_suite_are_private(provisioned: dict[str, Any]) -> None:
    """They hold client secrets and the user's password (mode 0600, as the CLI prints a secret once)."""
    for path in provisioned["out"].iterdir():
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"


def test_the_discovery_url_answers_over_tls_with_our_issuer(
    provisioned: dict[str, Any], stack: tuple[AuthServer, str], tls: Path
) -> None:
    _, issuer = stack
    config = provisioned["config"]
    assert config["server"]["discoveryUrl"] == f"{issuer}/.well-known/openid-configuration"
    document = _discovery(tls, config)
    assert document["issuer"] == issuer
    # The suite's browser is sent to the authorization endpoint it read here; the flow must match it.
    assert [flow["match"] for flow in config["browser"]] == [f"{issuer}/authorize*"]
    assert simple_match(config["browser"][0]["match"], document["authorization_endpoint"] + "?x=1")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(config["server"]["discoveryUrl"], timeout=10)  # trusted only through the throwaway CA


def test_the_static_clients_authenticate_at_the_token_endpoint(
    provisioned: dict[str, Any], tls: Path
) -> None:
    """Both clients' credentials, as the configuration gives them, pass client authentication
    (client_secret_basic): a made-up code is refused as invalid_grant, never invalid_client."""
    config = provisioned["config"]
    document = _discovery(tls, config)
    assert [config["client"]["client_id"], config["client2"]["client_id"]] == [
        "conformance-1",
        "conformance-2",
    ]
    for key in ("client", "client2"):
        credentials = config[key]
        with _https(tls) as client:
            response = client.post(
                document["token_endpoint"],
                auth=(credentials["client_id"], credentials["client_secret"]),
                data={
                    "grant_type": "authorization_code",
                    "code": "not-a-code",
                    "redirect_uri": suite_config.redirect_uri(),
                },
            )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"
        with _https(tls) as client:
            wrong = client.post(
                document["token_endpoint"],
                auth=(credentials["client_id"], credentials["client_secret"] + "x"),
                data={"grant_type": "authorization_code", "code": "not-a-code"},
            )
        assert wrong.status_code == 401


def _browser(tls: Path, issuer: str) -> Browser:
    return Browser(_https(tls), origin(issuer))


def test_the_browser_steps_sign_in_allow_and_reach_the_suites_callback_with_a_code(
    provisioned: dict[str, Any], stack: tuple[AuthServer, str], tls: Path
) -> None:
    """Every selector of the default steps exists on the real login and consent pages, and replaying them
    as the suite's browser does ends at the registered callback with a code and the state."""
    _, issuer = stack
    config = provisioned["config"]
    document = _discovery(tls, config)
    callback = suite_config.redirect_uri()
    url = _authorization_url(document, config["client"]["client_id"], callback)
    browser = _browser(tls, issuer)
    outcomes = replay(browser, config["browser"], url, suite_config.SUITE_DONE_ELEMENT)
    assert outcomes == [("Sign in", "done"), ("Allow", "done"), ("Verify complete", "done")]
    ended = urlsplit(browser.url)
    assert browser.url.startswith(callback + "?")
    returned = parse_qs(ended.query)
    assert returned["state"] == parse_qs(urlsplit(url).query)["state"]
    assert returned["code"] and returned["iss"] == [issuer]


def test_the_second_sign_in_steps_find_the_login_page_again(
    provisioned: dict[str, Any], stack: tuple[AuthServer, str], tls: Path
) -> None:
    """oidcc-prompt-login / oidcc-max-age-1: the steps first wait for the sign-in button's text (the suite
    records the page then), and still end at the callback."""
    _, issuer = stack
    config = provisioned["config"]
    document = _discovery(tls, config)
    for module in ("oidcc-prompt-login", "oidcc-max-age-1"):
        flows = config["override"][module]["browser"]
        url = _authorization_url(document, config["client"]["client_id"], suite_config.redirect_uri())
        browser = _browser(tls, issuer)
        assert replay(browser, flows, url, suite_config.SUITE_DONE_ELEMENT)[0] == ("Sign in", "done")
        assert browser.url.startswith(suite_config.redirect_uri() + "?")


def test_the_error_page_steps_find_our_error_page_for_an_unregistered_redirect_uri(
    provisioned: dict[str, Any], stack: tuple[AuthServer, str], tls: Path
) -> None:
    """oidcc-ensure-registered-redirect-uri: the server must show an error page, never redirect (RFC 6749
    §3.1.2.4); the steps wait for its heading and text."""
    _, issuer = stack
    config = provisioned["config"]
    document = _discovery(tls, config)
    flows = config["override"]["oidcc-ensure-registered-redirect-uri"]["browser"]
    url = _authorization_url(document, config["client"]["client_id"], "https://attacker.example/callback")
    browser = _browser(tls, issuer)
    assert replay(browser, flows, url, suite_config.SUITE_DONE_ELEMENT) == [("Expect the error page", "done")]
    assert browser.page is not None and browser.page.status == 400


def _signed_in_with_id_token(
    config: dict[str, Any], document: dict[str, Any], tls: Path, issuer: str
) -> tuple[Browser, str]:
    """A browser the default steps signed in (its session cookie kept), and the ID token of its code."""
    browser = _browser(tls, issuer)
    url = _authorization_url(document, config["client"]["client_id"], suite_config.redirect_uri())
    replay(browser, config["browser"], url, suite_config.SUITE_DONE_ELEMENT)
    code = parse_qs(urlsplit(browser.url).query)["code"][0]
    credentials = config["client"]
    with _https(tls) as client:
        tokens = client.post(
            document["token_endpoint"],
            auth=(credentials["client_id"], credentials["client_secret"]),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": suite_config.redirect_uri(),
            },
        )
    assert tokens.status_code == 200, tokens.text
    return browser, tokens.json()["id_token"]


def _logout_request(module: str, id_token: str) -> dict[str, str]:
    """The end-session request each RP-initiated logout module sends (customiseEndSessionEndpointRequest)."""
    registered = suite_config.post_logout_redirect_uri()
    header, payload, _ = id_token.split(".")
    unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + "."  # {"alg":"none","typ":"JWT"}
    forged = header + "." + payload + "." + "A" * 86  # a signature no key of ours made
    full = {"id_token_hint": id_token, "post_logout_redirect_uri": registered, "state": "st-logout"}
    return {
        "oidcc-rp-initiated-logout-no-params": {},
        "oidcc-rp-initiated-logout-only-state": {"state": "st-logout"},
        "oidcc-rp-initiated-logout-no-post-logout-redirect-uri": {"id_token_hint": id_token, "state": "s"},
        "oidcc-rp-initiated-logout-bad-post-logout-redirect-uri": {
            **full,
            "post_logout_redirect_uri": registered.replace("post_logout_redirect", "not_registered"),
        },
        "oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri": {
            **full,
            "post_logout_redirect_uri": registered + "?foo=bar",
        },
        "oidcc-rp-initiated-logout-no-id-token-hint": {"post_logout_redirect_uri": registered, "state": "s"},
        "oidcc-rp-initiated-logout-modified-id-token-hint": {**full, "id_token_hint": unsigned},
        "oidcc-rp-initiated-logout-bad-id-token-hint": {**full, "id_token_hint": forged},
    }[module]


def test_the_logout_steps_find_each_end_session_page(
    provisioned: dict[str, Any], stack: tuple[AuthServer, str], tls: Path
) -> None:
    """The RP-initiated logout plan's modules, as the suite drives them with our configuration: the
    confirmation is pressed and the signed-out page recorded, the error pages recorded (never a redirect);
    the normal logout goes back to the registered post_logout_redirect_uri with the state."""
    _, issuer = stack
    config = provisioned["config"]
    document = _discovery(tls, config)
    confirmed = [("Confirm the sign-out", "done"), ("Signed out", "done")]
    refused = [("Expect the error page", "done")]
    expected = {
        "oidcc-rp-initiated-logout-no-params": (confirmed, 200),
        "oidcc-rp-initiated-logout-only-state": (confirmed, 200),
        "oidcc-rp-initiated-logout-no-post-logout-redirect-uri": ([("Signed out", "done")], 200),
        "oidcc-rp-initiated-logout-bad-post-logout-redirect-uri": (refused, 400),
        "oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri": (refused, 400),
        "oidcc-rp-initiated-logout-no-id-token-hint": (refused, 400),
        "oidcc-rp-initiated-logout-modified-id-token-hint": (refused, 400),
        "oidcc-rp-initiated-logout-bad-id-token-hint": (refused, 400),
    }
    assert set(suite_config.logout_flows(issuer)) == set(expected)
    for module, (outcomes, status) in expected.items():
        browser, id_token = _signed_in_with_id_token(config, document, tls, issuer)
        url = f"{document['end_session_endpoint']}?{urlencode(_logout_request(module, id_token))}"
        steps = config["override"][module]["browser"]
        assert replay(browser, steps, url, suite_config.SUITE_DONE_ELEMENT) == outcomes, module
        assert browser.page is not None and browser.page.status == status, module

    browser, id_token = _signed_in_with_id_token(config, document, tls, issuer)
    registered = suite_config.post_logout_redirect_uri()
    query = {"id_token_hint": id_token, "post_logout_redirect_uri": registered, "state": "st-logout"}
    browser.go(f"{document['end_session_endpoint']}?{urlencode(query)}")
    assert browser.page is None and browser.url == f"{registered}?state=st-logout"


def test_a_renamed_field_breaks_the_replay(
    provisioned: dict[str, Any], stack: tuple[AuthServer, str], tls: Path
) -> None:
    """The replay really looks the selectors up: steps naming a field our login page does not have fail."""
    _, issuer = stack
    config = provisioned["config"]
    document = _discovery(tls, config)
    flows = json.loads(json.dumps(config["browser"]).replace('"username"', '"login"'))
    url = _authorization_url(document, config["client"]["client_id"], suite_config.redirect_uri())
    with pytest.raises(AssertionError, match="id=login: 0 elements"):
        replay(_browser(tls, issuer), flows, url, suite_config.SUITE_DONE_ELEMENT)


def test_nothing_secret_reached_the_server_log(
    stack: tuple[AuthServer, str], provisioned: dict[str, Any]
) -> None:
    server, _ = stack
    log = server.log_text()
    assert not [secret for secret in server.seen_secrets if secret in log]
