"""Property tests: arbitrary requests to /token, /revoke, /introspect and /authorize never get a 5xx, and
every error is an RFC 6749 / 7009 / 7662 JSON error; /token responses are never cacheable.

The application runs in-process (lifespan included) on an event loop this module owns, in a thread, so the
hypothesis tests stay synchronous; over SQLite and PostgreSQL (the ``backend`` fixture). Rate limits are off
so that hypothesis explores the protocol, not the limiter.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Coroutine, Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from authserver.config import Settings
from authserver.web.app import create_app
from tests.support.oauth import admin_headers, pkce_pair
from tests.support.oauth_errors import AUTHORIZE_ERRORS, TOKEN_ERRORS

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

MAX_EXAMPLES = 300
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    database=None,
)
REQUEST_TIMEOUT_SECONDS = 30
REDIRECT_URI = "https://app.example.com/cb"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
MAX_QUERY_CHARS = 12_000


class InProcessServer:
    """The app with its lifespan running on a private event loop in a daemon thread."""

    def __init__(self, server_settings: Settings) -> None:
        self.settings = server_settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="fuzz-app-loop")
        self._stop: asyncio.Event | None = None
        self._hosting: Any = None
        self.http: httpx.AsyncClient | None = None

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(REQUEST_TIMEOUT_SECONDS)

    def start(self) -> None:
        self.thread.start()
        ready = threading.Event()

        async def host() -> None:
            app = create_app(self.settings)
            self._stop = asyncio.Event()
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app, client=("10.9.8.7", 4321))
                async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                    self.http = http
                    ready.set()
                    await self._stop.wait()

        self._hosting = asyncio.run_coroutine_threadsafe(host(), self.loop)
        if not ready.wait(REQUEST_TIMEOUT_SECONDS):
            self._hosting.result(1)  # surfaces the start-up error, if any
            raise TimeoutError("the in-process app did not start")

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            self._hosting.result(REQUEST_TIMEOUT_SECONDS)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(REQUEST_TIMEOUT_SECONDS)
        self.loop.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        assert self.http is not None
        return self.run(self.http.request(method, url, **kwargs))


@pytest.fixture(scope="module")
def app(settings: Settings) -> Iterator[InProcessServer]:
    server = InProcessServer(
        settings.model_copy(update={"token_rate_per_ip": 0.0, "token_rate_per_client": 0.0})
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def clients(app: InProcessServer) -> dict[str, dict[str, Any]]:
    """A confidential service client and a web client, so that fuzzed requests can get past authentication."""
    registered = {}
    for client_id, body in {
        "fuzz-svc": {
            "name": "fuzz svc",
            "grant_types": ["client_credentials", TOKEN_EXCHANGE],
            "scopes": ["read", "write"],
            "token_exchange": {"audiences": ["https://api.example.com"], "allow_impersonation": True},
        },
        "fuzz-web": {
            "name": "fuzz web",
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["openid", "profile", "read"],
            "redirect_uris": [REDIRECT_URI],
        },
        "fuzz-public": {
            "name": "fuzz public",
            "type": "public",
            "grant_types": ["authorization_code"],
            "scopes": ["read"],
            "redirect_uris": [REDIRECT_URI],
        },
    }.items():
        response = app.request("PUT", f"/admin/clients/{client_id}", json=body, headers=admin_headers())
        assert response.status_code in (200, 201), response.text
        registered[client_id] = response.json()
    token = app.request(
        "POST",
        "/token",
        data={"grant_type": "client_credentials"},
        auth=("fuzz-svc", registered["fuzz-svc"]["client_secret"]),
    )
    assert token.status_code == 200, token.text
    registered["fuzz-svc"]["access_token"] = token.json()["access_token"]
    return registered


# Strategies ------------------------------------------------------------------------------------------------

PARAM_NAMES = [
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "resource",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "token",
    "token_type_hint",
    "username",
    "password",
    "assertion",
    "audience",
    # RFC 8693 §2.1
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "requested_token_type",
]
INTERESTING_VALUES = [
    "urn:ietf:params:oauth:token-type:access_token",
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id_token",
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "password",
    "implicit",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "fuzz-svc",
    "fuzz-web",
    "fuzz-public",
    "read",
    "read write",
    "openid profile",
    "access_token",
    REDIRECT_URI,
    "https://evil.example.com/cb",
    "a.b.c",
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFUzI1NiIsImtpZCI6IngifQ.e30.AAAA",  # at+jwt with an unknown kid
    "",
    " ",
    "\x00",
    "%00",
    "null",
    "[]",
    "{}",
    "🔑" * 10,
]
text_values = st.text(max_size=300) | st.sampled_from(INTERESTING_VALUES)
huge_values = st.builds(
    lambda n, ch: ch * n, st.integers(min_value=1_000, max_value=30_000), st.sampled_from("aaé🔑%")
)
names = st.sampled_from(PARAM_NAMES) | st.sampled_from(PARAM_NAMES) | st.text(max_size=30)
pairs = st.lists(st.tuples(names, text_values), max_size=8)
distinct_pairs = st.lists(st.tuples(names, text_values), max_size=6, unique_by=lambda pair: pair[0])
grant_types = (
    st.sampled_from(["client_credentials", "authorization_code", "refresh_token", TOKEN_EXCHANGE])
    | text_values
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices``, picked with the given integer weights."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(min_value=0, max_value=len(table) - 1).flatmap(lambda index: table[index])


FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = [
    FORM,
    "application/x-www-form-urlencoded; charset=utf-8",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/json",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "",
]
content_types = weighted(
    (12, st.just(FORM)),
    (1, st.none()),
    (2, st.sampled_from(CONTENT_TYPES)),
    (1, st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b)),
)


def _b64(raw: bytes, padding: bool = True) -> bytes:
    encoded = base64.b64encode(raw)
    return encoded if padding else encoded.rstrip(b"=")


def _authorization_headers(secrets_by_id: dict[str, str]) -> st.SearchStrategy[bytes | None]:
    known = st.sampled_from(sorted(secrets_by_id))
    return weighted(
        (3, st.none()),
        # Correct credentials, so that the grant logic itself is fuzzed.
        (6, known.map(lambda cid: b"Basic " + _b64(f"{cid}:{secrets_by_id[cid]}".encode()))),
        # A known id with a random secret; random bytes (not UTF-8, no colon); bad base64; other schemes.
        (
            1,
            st.tuples(known, st.text(max_size=80)).map(lambda p: b"Basic " + _b64(f"{p[0]}:{p[1]}".encode())),
        ),
        (1, st.tuples(st.binary(max_size=120), st.booleans()).map(lambda p: b"Basic " + _b64(*p))),
        (1, st.binary(max_size=120).map(lambda raw: b"Basic " + raw)),
        (1, st.sampled_from([b"Basic", b"Basic ", b"Basic !!!", b"Basic ====", b"Basic Og==", b"basic"])),
        (1, st.binary(max_size=200).map(lambda raw: b"Bearer " + raw)),
        (1, st.binary(max_size=200)),
        (1, st.text(max_size=80).map(lambda t: ("Basic " + quote(t) + ":" + quote(t)).encode())),
    ).map(lambda value: None if value is None else value.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def form_requests(draw: st.DrawFn, secrets_by_id: dict[str, str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["grant", "grant", "grant", "grant", "form", "form", "raw", "text"]))
    if kind in ("grant", "form"):
        if kind == "grant":  # a plausible request (one grant_type), with fuzzed parameters around it
            drawn = [pair for pair in draw(distinct_pairs) if pair[0] != "grant_type"]
            items = [("grant_type", draw(grant_types)), *drawn]
        else:  # anything, duplicates included
            items = draw(pairs)
        if draw(st.integers(min_value=0, max_value=7)) == 0:
            items.append((draw(names), draw(huge_values)))  # sometimes over the body limit, sometimes not
        body = urlencode(draw(st.permutations(items))).encode()
    elif kind == "raw":
        body = draw(st.binary(max_size=2_000))
    else:
        body = draw(st.text(max_size=2_000)).encode("utf-8", "surrogatepass")
    headers: dict[str, bytes] = {}
    content_type = draw(content_types)
    if content_type is not None:
        headers["content-type"] = content_type.encode() if isinstance(content_type, str) else content_type
    authorization = draw(_authorization_headers(secrets_by_id))
    if authorization is not None:
        headers["authorization"] = authorization
    return {"content": body, "headers": headers}


def assert_oauth_error_shape(response: httpx.Response, allowed: set[str]) -> None:
    event(f"status {response.status_code}")  # --hypothesis-show-statistics shows how deep the inputs got
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    if response.status_code >= 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            pytest.fail(f"{response.status_code} without a JSON body: {response.text[:300]!r}")
        assert isinstance(body, dict) and body.get("error") in allowed, body
        event(f"error {body['error']}")
        assert isinstance(body["error"], str)
        if "error_description" in body:
            assert isinstance(body["error_description"], str)


def _secrets(clients: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {cid: body["client_secret"] for cid, body in clients.items() if body.get("client_secret")}


# Inputs hypothesis found once; kept as explicit examples so that every run tries them.
FORM_HEADERS = {"content-type": FORM.encode()}
NUL_CLIENT_ID = {"content": b"grant_type=client_credentials&client_id=%00&token=x", "headers": FORM_HEADERS}
# typ at+jwt, alg ES256, a kid this server never had (e.g. a key pruned after rotation, another issuer).
UNKNOWN_KID_TOKEN = "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFUzI1NiIsImtpZCI6IngifQ.e30.AAAA"


def _with_basic(clients: dict[str, dict[str, Any]], client_id: str = "fuzz-svc") -> dict[str, Any]:
    secret = clients[client_id]["client_secret"]
    return {
        "content": b"grant_type=client_credentials",
        "headers": {**FORM_HEADERS, "authorization": b"Basic " + _b64(f"{client_id}:{secret}".encode())},
    }


# The properties --------------------------------------------------------------------------------------------


def test_token_endpoint_never_fails_and_errors_are_rfc6749(
    app: InProcessServer, clients: dict[str, dict[str, Any]]
) -> None:
    @HYPOTHESIS
    @given(request=form_requests(_secrets(clients)))
    @example(request=NUL_CLIENT_ID)
    def check(request: dict[str, Any]) -> None:
        response = app.request("POST", "/token", **request)
        assert_oauth_error_shape(response, TOKEN_ERRORS)
        assert "no-store" in response.headers.get("cache-control", ""), response.headers
        if response.status_code == 401:
            assert response.json()["error"] == "invalid_client"
        if response.status_code == 200:
            assert response.json()["token_type"] == "Bearer"

    check()


def test_revocation_endpoint_never_fails_and_errors_are_rfc7009(
    app: InProcessServer, clients: dict[str, dict[str, Any]]
) -> None:
    @HYPOTHESIS
    @given(
        request=form_requests(_secrets(clients)),
        token=st.none() | st.just(clients["fuzz-svc"]["access_token"]) | text_values,
    )
    @example(request=NUL_CLIENT_ID, token=None)
    @example(request=_with_basic(clients), token=UNKNOWN_KID_TOKEN)
    def check(request: dict[str, Any], token: str | None) -> None:
        if token is not None and request["content"] and b"=" in request["content"][:200]:
            request["content"] += b"&" + urlencode({"token": token}).encode()
        response = app.request("POST", "/revoke", **request)
        assert_oauth_error_shape(response, TOKEN_ERRORS)

    check()


def test_introspection_endpoint_never_fails_and_errors_are_rfc7662(
    app: InProcessServer, clients: dict[str, dict[str, Any]]
) -> None:
    token = clients["fuzz-svc"]["access_token"]

    @HYPOTHESIS
    @given(request=form_requests(_secrets(clients)), token=st.none() | st.just(token) | text_values)
    @example(request=NUL_CLIENT_ID, token=None)
    @example(request=_with_basic(clients), token=UNKNOWN_KID_TOKEN)
    def check(request: dict[str, Any], token: str | None) -> None:
        if token is not None and request["content"] and b"=" in request["content"][:200]:
            request["content"] += b"&" + urlencode({"token": token}).encode()
        response = app.request("POST", "/introspect", **request)
        assert_oauth_error_shape(response, TOKEN_ERRORS)
        if response.status_code == 200:
            assert isinstance(response.json().get("active"), bool)

    check()


AUTHORIZE_NAMES = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "prompt",
    "resource",
    "request",
    "request_uri",
    "response_mode",
    "max_age",
]
_, _CHALLENGE = pkce_pair()
AUTHORIZE_VALUES = [
    "code",
    "token",
    "code id_token",
    "fuzz-web",
    "fuzz-public",
    "fuzz-svc",
    REDIRECT_URI,
    REDIRECT_URI + "/x",
    "https://evil.example.com/cb",
    "javascript:alert(1)",
    "S256",
    "plain",
    _CHALLENGE,
    "none",
    "login",
    "consent",
    "openid read",
    "%ff%fe",
    "%",
    "%zz",
]


@st.composite
def authorize_query(draw: st.DrawFn) -> str:
    """A raw query string: mostly well-formed pairs, sometimes broken percent-encoding or raw bytes."""
    base = {
        "response_type": "code",
        "client_id": draw(st.sampled_from(["fuzz-web", "fuzz-public", "fuzz-svc", "nope"])),
        "redirect_uri": REDIRECT_URI,
        "code_challenge": _CHALLENGE,
        "code_challenge_method": "S256",
    }
    kept = draw(st.lists(st.sampled_from(sorted(base)), unique=True))
    items = [(name, base[name]) for name in kept]
    value_strategy = (
        st.sampled_from(AUTHORIZE_VALUES) | st.text(max_size=200) | huge_values.map(lambda v: v[:8_000])
    )
    items += draw(
        st.lists(st.tuples(st.sampled_from(AUTHORIZE_NAMES) | st.text(max_size=20), value_strategy))
    )
    query = urlencode(draw(st.permutations(items)))
    junk = draw(
        st.sampled_from(["", "", "", "&%", "&a=%ff", "&&&", "&=x", "&x", "&client_id=%C0%AF", "#frag"])
    )
    return (query + junk)[:MAX_QUERY_CHARS]  # httpx refuses URLs over 64 KiB; servers cap far lower anyway


def test_authorize_never_fails(app: InProcessServer, clients: dict[str, dict[str, Any]]) -> None:
    del clients  # registered, so that valid client ids reach the deeper checks

    @HYPOTHESIS
    @given(query=authorize_query())
    def check(query: str) -> None:
        response = app.request("GET", "/authorize?" + query)
        event(f"status {response.status_code}")
        assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
        assert response.status_code in (200, 302, 400, 413, 414, 431), response.status_code
        if response.status_code == 302:
            location = response.headers["location"]
            # Only ever to a registered redirect URI: never an open redirect.
            assert location.startswith(REDIRECT_URI + "?"), location
            params = dict(item.split("=", 1) for item in urlsplit(location).query.split("&") if "=" in item)
            if "error" in params:
                assert params["error"] in AUTHORIZE_ERRORS, location
            else:
                pytest.fail(f"a redirect without an error before any login: {location}")
        if response.status_code in (200, 400):
            assert response.headers["content-type"].startswith("text/html")
            assert response.headers.get("x-frame-options") == "DENY"

    check()
