"""No secret leaks: a realistic run against a real server process, then every output is scanned.

The run registers clients through the admin API (generated and supplied secrets), rotates secrets (with a
grace period, by rotate-secret and by upsert) and signing keys, issues, refreshes, replays and revokes
tokens, fails logins, and sends the bad requests clients really send (wrong and near-miss secrets, secrets
in the wrong place, replayed codes, malformed bodies, a wrong admin token). Every secret it handled is
collected: client secrets (current, previous, wrong), refresh tokens, authorization codes, passwords
(right and wrong), the admin token, the session secret and every private key member.

None of them may appear in: the server's log (access log on, debug level), any error response (body or
headers), ``/metrics``, the admin API's GET and list responses, the discovery documents and JWKS.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from authserver.observability.logs import redact_query
from harness.authserver import AuthServer, running_server
from tests.support.oauth import (
    ADMIN_TOKEN,
    admin_headers,
    authorization_request,
    basic,
    hidden_fields,
    query_of,
)

REDIRECT_URI = "http://127.0.0.1:9/callback"
SESSION_SECRET = "session-" + secrets.token_urlsafe(32)
_PUBLIC_JWK_MEMBERS = {"kty", "kid", "alg", "use", "crv", "x", "y", "n", "e", "key_ops"}
MIN_SECRET_LENGTH = 8  # shorter values (none here) would match by accident


class Recorder:
    """Every response the run received; the ones that must hold no secret are scanned at the end."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.responses.append(response)

    def must_be_clean(self) -> list[httpx.Response]:
        """Errors, and the reads that show configuration: admin GETs, metrics, discovery, JWKS, probes."""
        chosen = []
        for response in self.responses:
            request = response.request
            path = request.url.path
            if (
                response.status_code >= 400
                or (request.method == "GET" and path.startswith("/admin/"))
                or path in ("/metrics", "/healthz", "/readyz")
                or path.startswith("/.well-known/")
            ):
                chosen.append(response)
        return chosen


def private_key_members(server: AuthServer) -> set[str]:
    document = json.loads(server.keys_file.read_text())
    return {
        str(value)
        for key in document["keys"]
        for name, value in key.items()
        if name not in _PUBLIC_JWK_MEMBERS
    }


def near_miss(secret: str) -> str:
    """The secret with its last character changed: what a client with a stale copy sends."""
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


def put_client(http: httpx.Client, client_id: str, **fields: Any) -> httpx.Response:
    body = {"name": client_id, "grant_types": ["client_credentials"], "scopes": ["read"], **fields}
    return http.put(f"/admin/clients/{client_id}", json=body, headers=admin_headers())


def login_for_code(
    http: httpx.Client, client_id: str, username: str, password: str, wrong_password: str
) -> tuple[str, str]:
    query, verifier = authorization_request(
        client_id, REDIRECT_URI, scope="openid read", state="s", prompt="login consent"
    )
    page = http.get(f"/authorize?{urlencode(query)}")
    assert page.status_code == 200, page.text
    failed = http.post(
        "/authorize/login",
        data={**hidden_fields(page.text), "username": username, "password": wrong_password},
    )
    assert failed.status_code == 401
    unknown = http.post(
        "/authorize/login", data={**hidden_fields(page.text), "username": "nobody", "password": password}
    )
    assert unknown.status_code == 401
    consent = http.post(
        "/authorize/login", data={**hidden_fields(page.text), "username": username, "password": password}
    )
    assert consent.status_code == 200, consent.text
    redirect = http.post("/authorize/consent", data={**hidden_fields(consent.text), "decision": "allow"})
    assert redirect.status_code == 303
    return query_of(redirect.headers["location"])["code"], verifier


def test_no_secret_in_logs_errors_metrics_or_admin_reads(tmp_path: Path) -> None:
    recorder = Recorder()
    seen: set[str] = {ADMIN_TOKEN, SESSION_SECRET}
    with running_server(
        tmp_path / "server",
        AUTHSERVER_LOG_LEVEL="debug",
        AUTHSERVER_SESSION_SECRET=SESSION_SECRET,
        AUTHSERVER_SIGNING_ALGORITHM="RS256",  # the most private members to look for
        AUTHSERVER_CLIENT_CACHE_TTL="0s",
    ) as server:
        seen |= private_key_members(server)
        with httpx.Client(base_url=server.base_url, timeout=10, event_hooks={"response": [recorder]}) as http:
            # Registration: a generated secret, a supplied one, a web client.
            service = put_client(http, "svc-generated").json()
            seen.add(service["client_secret"])
            supplied = secrets.token_urlsafe(40)
            seen.add(supplied)
            assert put_client(http, "svc-supplied", client_secret=supplied).status_code == 201
            web = put_client(
                http,
                "web",
                grant_types=["authorization_code", "refresh_token"],
                scopes=["openid", "read"],
                redirect_uris=[REDIRECT_URI],
            ).json()
            seen.add(web["client_secret"])
            web_auth = basic("web", web["client_secret"])

            # Rotation: rotate-secret (generated, then supplied) and an upsert with a new secret and grace.
            rotated = http.post(
                "/admin/clients/svc-generated/rotate-secret",
                json={"grace_period": "1h"},
                headers=admin_headers(),
            ).json()
            seen.add(rotated["client_secret"])
            supplied_rotation = secrets.token_urlsafe(40)
            seen.add(supplied_rotation)
            assert (
                http.post(
                    "/admin/clients/svc-supplied/rotate-secret",
                    json={"grace_period": "10m", "client_secret": supplied_rotation},
                    headers=admin_headers(),
                ).status_code
                == 200
            )
            upserted = secrets.token_urlsafe(40)
            seen.add(upserted)
            assert (
                put_client(http, "svc-supplied", client_secret=upserted, secret_grace_period="5m").status_code
                == 200
            )
            server.rotate_keys()
            seen |= private_key_members(server)

            # client_credentials with old and new secrets, and the mistakes clients make.
            for client_id, secret in (
                ("svc-generated", service["client_secret"]),
                ("svc-generated", rotated["client_secret"]),
                ("svc-supplied", upserted),
            ):
                token = http.post(
                    "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
                )
                assert token.status_code == 200, token.text
            for client_id, secret, still_valid in (
                ("svc-generated", rotated["client_secret"], True),
                ("svc-supplied", supplied, False),  # two client-secret rotations ago: no longer accepted
            ):
                wrong = near_miss(secret)
                seen.add(wrong)
                refused = http.post(
                    "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, wrong)
                )
                assert refused.status_code == 401
                in_body = http.post(  # in the body: either secret method works unless the client pins one
                    "/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": client_id,
                        "client_secret": secret,
                    },
                )
                assert in_body.status_code == (200 if still_valid else 401), in_body.text
                both = http.post(  # two methods at once
                    "/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": client_id,
                        "client_secret": secret,
                    },
                    headers=basic(client_id, secret),
                )
                assert both.status_code in (400, 401)
                in_url = http.post(  # RFC 6749 §2.3.1: never in the URL; the server must not log it either
                    f"/token?{urlencode({'client_id': client_id, 'client_secret': secret})}",
                    data={"grant_type": "client_credentials"},
                )
                assert in_url.status_code in (400, 401)
            malformed = http.post(
                "/token",
                content=f"grant_type=client_credentials&client_secret={supplied}&client_secret={supplied}",
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    **basic("svc-supplied", upserted),
                },
            )
            assert malformed.status_code == 400
            wrong_admin = near_miss(ADMIN_TOKEN)
            seen.add(wrong_admin)
            assert (
                http.get("/admin/clients", headers={"Authorization": f"Bearer {wrong_admin}"}).status_code
                == 401
            )
            short_secret = "short-" + secrets.token_hex(8)
            seen.add(short_secret)
            assert put_client(http, "svc-short", client_secret=short_secret).status_code == 400
            public_secret = secrets.token_urlsafe(40)
            seen.add(public_secret)
            assert (
                put_client(
                    http,
                    "public-with-secret",
                    type="public",
                    grant_types=["authorization_code"],
                    redirect_uris=[REDIRECT_URI],
                    client_secret=public_secret,
                ).status_code
                == 400
            )

            # A user: failed logins, a code, refresh rotation, reuse, revocation.
            username, password = f"leak-{uuid.uuid4().hex[:6]}", "pw-" + secrets.token_urlsafe(18)
            wrong_password = near_miss(password)
            seen |= {password, wrong_password}
            server.create_user(username, password, email=f"{username}@example.com")
            code, verifier = login_for_code(http, "web", username, password, wrong_password)
            seen.add(code)
            exchange = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            }
            tokens = http.post("/token", data=exchange, headers=web_auth).json()
            seen.add(tokens["refresh_token"])
            assert http.post("/token", data=exchange, headers=web_auth).status_code == 400  # replay
            code, verifier = login_for_code(http, "web", username, password, wrong_password)
            seen.add(code)
            tokens = http.post(
                "/token", data={**exchange, "code": code, "code_verifier": verifier}, headers=web_auth
            ).json()
            chain = [tokens["refresh_token"]]
            for _ in range(3):
                refreshed = http.post(
                    "/token",
                    data={"grant_type": "refresh_token", "refresh_token": chain[-1]},
                    headers=web_auth,
                )
                assert refreshed.status_code == 200, refreshed.text
                chain.append(refreshed.json()["refresh_token"])
            seen |= set(chain)
            introspected = http.post("/introspect", data={"token": chain[-1]}, headers=web_auth)
            assert introspected.json()["active"] is True
            reuse = http.post(
                "/token", data={"grant_type": "refresh_token", "refresh_token": chain[0]}, headers=web_auth
            )
            assert reuse.status_code == 400
            assert http.post("/revoke", data={"token": chain[-1]}, headers=web_auth).status_code == 200
            assert (
                http.post("/revoke", data={"token": tokens["access_token"]}, headers=web_auth).status_code
                == 200
            )
            foreign = http.post("/revoke", data={"token": chain[-1]}, headers=basic("svc-supplied", upserted))
            assert foreign.status_code == 400
            as_bearer = http.get("/userinfo", headers={"Authorization": f"Bearer {chain[-1]}"})
            assert as_bearer.status_code == 401
            code_as_bearer = http.get("/userinfo", headers={"Authorization": f"Bearer {code}"})
            assert code_as_bearer.status_code == 401
            too_large = http.post(
                "/token",
                content=f"grant_type=refresh_token&refresh_token={chain[-1]}&pad=" + "x" * 70_000,
                headers={"Content-Type": "application/x-www-form-urlencoded", **web_auth},
            )
            assert too_large.status_code == 413

            # The reads that show configuration.
            listed = http.get("/admin/clients", headers=admin_headers())
            assert listed.status_code == 200 and len(listed.json()) >= 3
            for client_id in ("svc-generated", "svc-supplied", "web"):
                assert http.get(f"/admin/clients/{client_id}", headers=admin_headers()).status_code == 200
            for path in (
                "/metrics",
                "/healthz",
                "/readyz",
                "/.well-known/jwks.json",
                "/.well-known/openid-configuration",
            ):
                assert http.get(path).status_code == 200, path

        seen |= private_key_members(server)
        assert server.stop() is not None  # flush and close the log
        log = server.log_text()

    seen = {value for value in seen if len(value) >= MIN_SECRET_LENGTH}
    assert len(seen) > 25, "the run should have handled many secrets"
    assert "POST /token" in log and "GET /admin/clients" in log, "the access log is on"

    leaks = sorted(f"{secret[:6]}... in the server log" for secret in seen if secret in log)
    clean = recorder.must_be_clean()
    assert len(clean) > 20
    for response in clean:
        request = response.request
        shown = (
            response.text + "\n" + "\n".join(f"{name}: {value}" for name, value in response.headers.items())
        )
        leaks += [
            f"{secret[:6]}... in {response.status_code} {request.method} {request.url.path}"
            for secret in seen
            if secret in shown
        ]
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks)


def test_the_access_log_redacts_credentials_sent_in_a_url() -> None:
    """What the access-log filter does to request lines (the run above shows it on a real server)."""
    assert (
        redact_query("/token?client_id=a&client_secret=s3cr3t")
        == "/token?client_id=a&client_secret=[redacted]"
    )
    assert redact_query("/t?Client%5FSecret=s&code=c&x=1&refresh_token=") == (
        "/t?Client%5FSecret=[redacted]&code=[redacted]&x=1&refresh_token=[redacted]"
    )
    assert redact_query("/userinfo?access_token=t#f") == "/userinfo?access_token=[redacted]"
    unchanged = "/authorize?response_type=code&client_id=web&state=xyz&redirect_uri=http%3A%2F%2Fh%2Fcb"
    assert redact_query(unchanged) == unchanged
    assert redact_query("/healthz") == "/healthz"
