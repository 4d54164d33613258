"""The modules of ``oidcc-basic-certification-test-plan`` (static client, discovery, response type code,
client_secret_basic; plus ``oidcc-server-client-secret-post``) that no other test covers, each a test named
after its module and checking what that module checks, against a real ``authserver serve`` on both
databases, with clients registered as conformance/provision.sh registers the suite's (confidential,
``--pkce-optional``: the suite sends no PKCE except in oidcc-ensure-request-with-valid-pkce-succeeds).

The other modules' tests live beside the code they exercise; tests/conformance/test_plan_coverage.py finds
them all by name.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from harness.authserver import AuthServer, running_server
from tests.support.oauth import pkce_pair
from tests.support.user_agent import RelyingParty, UserAgent

REDIRECT_URI = "http://127.0.0.1:9/oidcc-callback"  # never contacted: the tests read the Location header
# RFC 6749 Appendix A.17: refresh-token = 1*VSCHAR
VSCHAR = re.compile(r"[\x20-\x7e]+")


@dataclass
class Op:
    server: AuthServer
    metadata: dict[str, Any]
    username: str
    password: str
    clients: list[dict[str, Any]]

    def rp(self, index: int = 0, auth_method: str = "client_secret_basic") -> RelyingParty:
        client = self.clients[index]
        return RelyingParty(
            self.server.issuer,
            self.metadata,
            client["client_id"],
            client["client_secret"],
            REDIRECT_URI,
            auth_method,
        )


@pytest.fixture(scope="module")
def op(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Op]:
    """One server per database for the whole module; the suite's two clients and its user, made with the
    CLI as conformance/provision.sh makes them."""
    url = None
    if backend != "sqlite":
        url = request.getfixturevalue("postgres_cluster").create_database(f"oidcc_{uuid.uuid4().hex[:10]}")
    with running_server(tmp_path_factory.mktemp(f"oidcc-basic-{backend}"), url) as server:
        clients = [
            server.create_client(
                f"OpenID conformance suite ({n})",
                ["authorization_code", "refresh_token"],
                scopes=["openid", "profile", "email"],
                redirect_uris=[REDIRECT_URI],
                client_id=f"conformance-{n}",
                pkce_optional=True,
            )
            for n in (1, 2)
        ]
        password = secrets.token_urlsafe(18)
        server.create_user(
            "conformance", password, email="conformance@example.com", name="Conformance Tester"
        )
        metadata = httpx.get(f"{server.issuer}/.well-known/openid-configuration", timeout=15).json()
        yield Op(server, metadata, "conformance", password, clients)


@pytest.fixture
def browser(op: Op) -> Iterator[UserAgent]:
    """A fresh browser per module run, as the suite's: nobody signed in yet."""
    agent = UserAgent(op.server.issuer)
    yield agent
    agent.close()


def _authorized(
    op: Op, browser: UserAgent, rp: RelyingParty, method: str = "GET", **extra: str
) -> dict[str, str]:
    """The module's authorization request walked through the pages: the callback's parameters (a code)."""
    response = browser.through_pages(browser.authorize(rp.params(**extra), method), op.username, op.password)
    query = rp.callback(response)
    assert "error" not in query and query["code"], query
    return query


def _code_flow(op: Op, browser: UserAgent, rp: RelyingParty, **extra: str) -> dict[str, Any]:
    """What OIDCCServerTest does after its request: redeem the code, check the token response and the ID
    token, call userinfo with the access token; the tokens and the ID token's claims."""
    code = _authorized(op, browser, rp, **extra)["code"]
    tokens = rp.check_token_response(rp.redeem(code))
    claims = rp.check_id_token(tokens["id_token"], tokens["access_token"])
    userinfo = rp.userinfo(tokens["access_token"])
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == claims["sub"]  # OIDC Core §5.3.2
    if tokens.get("refresh_token"):
        op.server.seen_secrets.add(tokens["refresh_token"])
    return {"tokens": tokens, "claims": claims}


def test_oidcc_server(op: Op, browser: UserAgent) -> None:
    # The configuration the module starts from: issuer and endpoints, keys each with a kid (OIDCC §10.1).
    for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        assert op.metadata[name], name
    keys = httpx.get(op.metadata["jwks_uri"], timeout=15).json()["keys"]
    assert keys and all(key.get("kid") for key in keys)
    assert len({key["kid"] for key in keys}) == len(keys)
    result = _code_flow(op, browser, op.rp())
    # The server says it returns iss (RFC 9207 §3); the suite warns when a returned iss is wrong.
    assert op.metadata["authorization_response_iss_parameter_supported"] is True
    assert result["claims"]["sub"] and "at_hash" in result["claims"]


def test_oidcc_server_client_secret_post(op: Op, browser: UserAgent) -> None:
    rp = op.rp(auth_method="client_secret_post")
    assert "client_secret_post" in op.metadata["token_endpoint_auth_methods_supported"]
    _code_flow(op, browser, rp)


def test_oidcc_response_type_missing(op: Op, browser: UserAgent) -> None:
    """RFC 6749 §3.1.1, §4.1.2.1: an error page, or a redirect with invalid_request or
    unsupported_response_type (and the state)."""
    rp = op.rp()
    response = browser.authorize(rp.params(response_type=""))
    if response.status_code in (302, 303):
        query = rp.callback(response)
        assert query["error"] in ("invalid_request", "unsupported_response_type") and "code" not in query
    else:
        assert response.status_code == 400 and "response_type" in response.text


def test_oidcc_idtoken_signature(op: Op, browser: UserAgent) -> None:
    """The ID token verifies against the published key its kid names; a altered signature does not."""
    rp = op.rp()
    raw = _code_flow(op, browser, rp)["tokens"]["id_token"]
    header, payload, signature = raw.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    with pytest.raises(jwt.InvalidSignatureError):
        rp.check_id_token(tampered)


def test_oidcc_idtoken_unsigned(op: Op, browser: UserAgent) -> None:
    """The suite runs this module only for dynamic clients and skips it when discovery does not offer
    ``none``; what it relies on: ``none`` is not offered, and no ID token is ever unsigned (OIDC Core
    §3.1.3.7: RS256 unless the client registered another)."""
    assert "none" not in op.metadata["id_token_signing_alg_values_supported"]
    assert "RS256" in op.metadata["id_token_signing_alg_values_supported"]
    raw = _code_flow(op, browser, op.rp())["tokens"]["id_token"]
    assert jwt.get_unverified_header(raw)["alg"] != "none"


def _succeeds_with(op: Op, browser: UserAgent, **extra: str) -> dict[str, Any]:
    """The module's request with ``extra`` completes like any other: login, consent, a code, the checks
    of OIDCCServerTest (RFC 6749 §3.1: unrecognised parameters are ignored)."""
    return _code_flow(op, browser, op.rp(), **extra)


def test_oidcc_display_page(op: Op, browser: UserAgent) -> None:
    _succeeds_with(op, browser, display="page")


def test_oidcc_display_popup(op: Op, browser: UserAgent) -> None:
    _succeeds_with(op, browser, display="popup")


def test_oidcc_ui_locales(op: Op, browser: UserAgent) -> None:
    _succeeds_with(op, browser, ui_locales="se")


def test_oidcc_claims_locales(op: Op, browser: UserAgent) -> None:
    _succeeds_with(op, browser, claims_locales="se")


def test_oidcc_ensure_request_with_unknown_parameter_succeeds(op: Op, browser: UserAgent) -> None:
    _succeeds_with(op, browser, **{f"unknown_{secrets.token_hex(4)}": "value"})


def test_oidcc_ensure_request_with_acr_values_succeeds(op: Op, browser: UserAgent) -> None:
    claims = _succeeds_with(op, browser, acr_values="1 2")["claims"]
    # OIDC Core §3.1.2.1: acr_values is voluntary; an acr the server does return must be one requested.
    assert claims.get("acr", "1") in ("1", "2")


def test_oidcc_codereuse_30seconds(op: Op, browser: UserAgent) -> None:
    """The module redeems a code, waits 30 s and redeems it again: invalid_grant (400, JSON, RFC 6749 §5.2)
    and, as RFC 6749 §4.1.2 asks, the first access token no longer works. The server decides a replay from
    the code's consumed mark alone (no clock), and keeps a consumed code until its expiry
    (AUTHSERVER_AUTHORIZATION_CODE_TTL, 60 s by default, longer than the 30 s): the replay is made at once."""
    rp = op.rp()
    code = _authorized(op, browser, rp)["code"]
    first = rp.check_token_response(rp.redeem(code))
    op.server.seen_secrets.add(first["refresh_token"])
    assert rp.userinfo(first["access_token"]).status_code == 200

    replay = rp.redeem(code)
    assert replay.status_code == 400 and replay.headers["content-type"].startswith("application/json")
    error = replay.json()
    assert error["error"] == "invalid_grant"
    # RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E (no CR, LF, TAB, quote, backslash).
    assert re.fullmatch(r"[\x20\x21\x23-\x5b\x5d-\x7e]*", error.get("error_description", ""))
    refused = rp.userinfo(first["access_token"])
    assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]
    again = rp.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_oidcc_refresh_token(op: Op, browser: UserAgent) -> None:
    """Refresh tokens issued, advertised, well-formed, refreshable by their client with an ID token that
    keeps iss, sub, aud and auth_time (OIDC Core §12.2), and bound to that client: the second client's
    refresh token is refused to the first (RFC 6749 §6)."""
    assert "refresh_token" in op.metadata["grant_types_supported"]
    rp, rp2 = op.rp(0), op.rp(1)
    first = _code_flow(op, browser, rp)
    tokens, claims = first["tokens"], first["claims"]
    assert VSCHAR.fullmatch(tokens["refresh_token"])

    refreshed = rp.check_token_response(
        rp.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    )
    if refreshed.get("refresh_token"):
        op.server.seen_secrets.add(refreshed["refresh_token"])
    if "id_token" in refreshed:
        again = rp.check_id_token(refreshed["id_token"], refreshed["access_token"], nonce="")
        for name in ("iss", "sub", "aud", "auth_time"):
            assert again.get(name) == claims.get(name), name
    assert rp.userinfo(refreshed["access_token"]).status_code == 200

    # The second client's refresh token, presented by the first client.
    other = UserAgent(op.server.issuer)
    try:
        second = _code_flow(op, other, rp2)["tokens"]
    finally:
        other.close()
    stolen = rp.token({"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant", stolen.text


def test_oidcc_ensure_request_with_valid_pkce_succeeds(op: Op, browser: UserAgent) -> None:
    """RFC 7636 §4.3, §4.5: S256 challenge in the request, verifier at the token endpoint."""
    verifier, challenge = pkce_pair()
    rp = op.rp()
    code = _authorized(op, browser, rp, code_challenge=challenge, code_challenge_method="S256")["code"]
    tokens = rp.check_token_response(rp.redeem(code, code_verifier=verifier))
    rp.check_id_token(tokens["id_token"], tokens["access_token"])
    op.server.seen_secrets.add(tokens["refresh_token"])


def test_oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported(
    op: Op, browser: UserAgent
) -> None:
    """The suite runs this module only for dynamic clients; what it accepts is a complete authorization or
    request_uri_not_supported (OIDC Core §6.3), and a server that does not support request_uri should say
    so in discovery (its warning)."""
    assert op.metadata["request_uri_parameter_supported"] is False
    rp = op.rp()
    response = browser.authorize(rp.params(request_uri="https://rp.example.com/request.jwt"))
    query = rp.callback(response)
    assert query["error"] == "request_uri_not_supported" and "code" not in query
