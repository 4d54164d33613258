"""The two sides of an OpenID conformance module against a real ``authserver serve`` process: the browser
that walks the login and consent pages (``UserAgent``) and the relying party that builds the request,
redeems the code and checks what comes back (``RelyingParty``), as the suite's static client does
(conformance/provision.sh: confidential, ``--pkce-optional``, client_secret_basic unless told otherwise)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
import jwt

from tests.support.oauth import basic, hidden_fields, query_of

LOGIN_FORM = 'action="/authorize/login"'
CONSENT_FORM = 'action="/authorize/consent"'
# What the suite tolerates between its clock and the server's (its ID-token checks allow some minutes).
CLOCK_SKEW_SECONDS = 300


class UserAgent:
    """One browser (one cookie jar) that follows no redirect: the test reads where it would have gone."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=15, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def authorize(self, params: dict[str, str], method: str = "GET") -> httpx.Response:
        if method == "POST":
            return self.http.post("/authorize", data=params)
        return self.http.get(f"/authorize?{urlencode(params)}")

    def sign_in(self, page: httpx.Response, username: str, password: str) -> httpx.Response:
        assert page.status_code == 200 and LOGIN_FORM in page.text, page.text
        return self._submit(page, {"username": username, "password": password})

    def allow(self, page: httpx.Response) -> httpx.Response:
        assert page.status_code == 200 and CONSENT_FORM in page.text, page.text
        return self._submit(page, {"decision": "allow"})

    def through_pages(self, response: httpx.Response, username: str, password: str) -> httpx.Response:
        """Whatever pages the server shows (login, then consent), answered as the suite's browser steps
        answer them; the response that finally leaves the server (a redirect or an error page)."""
        for _ in range(3):
            if response.status_code != 200:
                return response
            if LOGIN_FORM in response.text:
                response = self.sign_in(response, username, password)
            elif CONSENT_FORM in response.text:
                response = self.allow(response)
            else:
                return response
        raise AssertionError(f"the server kept showing pages: {response.text[:500]}")

    def _submit(self, page: httpx.Response, fields: dict[str, str]) -> httpx.Response:
        action = "/authorize/login" if LOGIN_FORM in page.text else "/authorize/consent"
        return self.http.post(urljoin(str(page.url), action), data={**hidden_fields(page.text), **fields})


def at_hash(access_token: str, alg: str) -> str:
    """OIDC Core §3.1.3.6: the left half of the hash (of the ID token's alg's size) of the access token."""
    digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}[alg[-3:]]
    hashed = digest(access_token.encode()).digest()
    return base64.urlsafe_b64encode(hashed[: len(hashed) // 2]).rstrip(b"=").decode()


@dataclass
class RelyingParty:
    """A registered static client: its request parameters, token requests and the suite's checks."""

    base_url: str
    metadata: dict[str, Any]
    client_id: str
    client_secret: str
    redirect_uri: str
    auth_method: str = "client_secret_basic"
    last_request: dict[str, str] = field(default_factory=dict)

    def params(self, **extra: str) -> dict[str, str]:
        """The module's authorization request: code, a fresh state and nonce; ``extra`` adds or overrides,
        a value of ``""`` leaves that parameter out."""
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid",
            "state": secrets.token_urlsafe(12),
            "nonce": secrets.token_urlsafe(12),
            **extra,
        }
        self.last_request = {name: value for name, value in params.items() if value != ""}
        return self.last_request

    def callback(self, response: httpx.Response) -> dict[str, str]:
        """The authorization response as the redirect URI receives it, checked as the suite checks every
        one: back at the registered URI, the state returned, ``iss`` (when sent) the issuer (RFC 9207 §2)."""
        assert response.status_code in (302, 303), response.text
        location = response.headers["location"]
        assert location.startswith(self.redirect_uri + "?"), location
        query = query_of(location)
        if "state" in self.last_request:
            assert query.get("state") == self.last_request["state"], query
        if "iss" in query:
            assert query["iss"] == self.metadata["issuer"], query
        return query

    def token(self, data: dict[str, str], auth_method: str | None = None) -> httpx.Response:
        method = auth_method or self.auth_method
        headers: dict[str, str] = {}
        if method == "client_secret_basic":
            headers = basic(self.client_id, self.client_secret)
        else:
            data = {**data, "client_id": self.client_id, "client_secret": self.client_secret}
        return httpx.post(self.metadata["token_endpoint"], data=data, headers=headers, timeout=15)

    def redeem(self, code: str, **extra: str) -> httpx.Response:
        return self.token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri, **extra}
        )

    def check_token_response(self, response: httpx.Response) -> dict[str, Any]:
        """What the suite checks of every successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3)."""
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert "no-store" in response.headers["cache-control"]
        body: dict[str, Any] = response.json()
        assert body["access_token"] and body["token_type"].lower() == "bearer"
        assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
        return body

    def check_id_token(
        self, raw: str, access_token: str | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        """The ID token as the suite validates it: a ``kid`` naming a published key whose signature verifies
        in an advertised algorithm (never ``none``), iss, aud, exp, iat, sub, the request's nonce, auth_time
        not in the future, at_hash when present (OIDC Core §3.1.3.7, §3.1.3.6, §10.1)."""
        header = jwt.get_unverified_header(raw)
        assert (
            header["alg"] != "none"
            and header["alg"] in self.metadata["id_token_signing_alg_values_supported"]
        )
        keys = httpx.get(self.metadata["jwks_uri"], timeout=15).json()["keys"]
        matching = [key for key in keys if key.get("kid") == header.get("kid")]
        assert header.get("kid") and len(matching) == 1, (header, [key.get("kid") for key in keys])
        claims: dict[str, Any] = jwt.decode(
            raw,
            jwt.PyJWK(matching[0]).key,
            algorithms=[header["alg"]],
            audience=self.client_id,
            issuer=self.metadata["issuer"],
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
        now = time.time()
        assert claims["iat"] <= now + CLOCK_SKEW_SECONDS and claims["exp"] > now
        if isinstance(claims["aud"], list) and len(claims["aud"]) > 1:
            assert claims["azp"] == self.client_id
        expected_nonce = self.last_request.get("nonce") if nonce is None else nonce
        if expected_nonce:
            assert claims["nonce"] == expected_nonce
        if "auth_time" in claims:
            assert isinstance(claims["auth_time"], int) and claims["auth_time"] <= now + CLOCK_SKEW_SECONDS
        if access_token is not None and "at_hash" in claims:
            assert claims["at_hash"] == at_hash(access_token, header["alg"])
        return claims

    def userinfo(self, access_token: str) -> httpx.Response:
        return httpx.get(
            self.metadata["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=15,
        )
