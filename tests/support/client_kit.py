"""Helpers for the client kit's tests: a transport that records what the kit sends through the real one,
the operator's Secret written as a mounted directory, clients registered with the CLI, and tokens signed with
a running server's own signing key (to shape the refusals a verifier must make)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt

from authyard_client import ClientSettings
from harness.authserver import AuthServer

API = "https://orders.example.test"


@dataclass
class Sent:
    method: str
    path: str
    headers: httpx.Headers
    form: dict[str, list[str]]


@dataclass
class Recorder:
    """Every request a kit's HTTP client sent (through the real transport), thread-safe."""

    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, request: httpx.Request) -> None:
        form = parse_qs(request.content.decode()) if request.method == "POST" else {}
        with self.lock:
            self.sent.append(Sent(request.method, request.url.path, request.headers, form))

    def to(self, path: str) -> list[Sent]:
        with self.lock:
            return [sent for sent in self.sent if sent.path == path]


class RecordingTransport(httpx.BaseTransport):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.recorder.note(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class AsyncRecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.recorder.note(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def recording_client(recorder: Recorder) -> httpx.Client:
    return httpx.Client(transport=RecordingTransport(recorder), timeout=10)


def async_recording_client(recorder: Recorder) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsyncRecordingTransport(recorder), timeout=10)


def register_service(server: AuthServer, scopes: Iterable[str] = ("orders.read",)) -> dict[str, Any]:
    """A confidential client_credentials client allowed ``scopes`` and the :data:`API` audience."""
    return server.create_client(
        f"service-{uuid.uuid4().hex[:6]}", ["client_credentials"], scopes=list(scopes), audiences=[API]
    )


def secret_settings(server: AuthServer, client: dict[str, Any]) -> ClientSettings:
    """Settings of a secret client, its endpoint found by discovery of the server's issuer."""
    return ClientSettings(client["client_id"], issuer=server.issuer, client_secret=client["client_secret"])


def write_secret_dir(directory: Path, server: AuthServer, client: dict[str, Any], **keys: str) -> Path:
    """The operator's client Secret as a mounted volume: one file per key (a ``..data`` symlink layout is
    not needed: the kit only opens the files by name)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {
        "client_id": client["client_id"],
        "issuer": server.issuer,
        "jwks_uri": f"{server.issuer}/.well-known/jwks.json",
        "scope": "orders.read",
        "audience": API,
        **keys,
    }
    if client.get("client_secret"):
        data["client_secret"] = client["client_secret"]
    for key, value in data.items():
        (directory / key).write_text(value)
    return directory


def server_key(server: AuthServer) -> tuple[str, Any, str]:
    """The running server's active signing key: (kid, private key object, algorithm)."""
    assert server.keys_file is not None
    document = json.loads(server.keys_file.read_text())
    active = document["active_kid"]
    (jwk,) = [key for key in document["keys"] if key["kid"] == active]
    return active, jwt.PyJWK(jwk).key, jwk["alg"]


def forged(server: AuthServer, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
    """An access token signed with the server's own key: good claims for :data:`API` unless ``claims``
    changes them (None removes one), and the ``at+jwt`` header unless ``header`` changes it."""
    kid, key, alg = server_key(server)
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": server.issuer,
        "sub": "forged-client",
        "aud": API,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
        "client_id": "forged-client",
        "scope": "orders.read",
    }
    body.update(claims)
    body = {name: value for name, value in body.items() if value is not None}
    headers = {"kid": kid, "typ": "at+jwt", **(header or {})}
    return jwt.encode(body, key, algorithm=alg, headers=headers)
