"""The operator's Kubernetes client against real sockets: every way an answer can fail to arrive is a
``KubeError`` (status 0, retryable), never another exception, and never carries the body it received; the
configuration it reads in a pod (service account) and on a developer's machine (KUBECONFIG); credentials
that rotate.

The misbehaving API servers here are raw asyncio socket servers on loopback that read a real HTTP request and
then answer wrongly on purpose: nothing, half an answer, a reset, a wrong certificate, garbage.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import socket
import ssl
import struct
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from authyard_operator.kube import config as cluster_config
from authyard_operator.kube import credentials
from authyard_operator.kube.client import Kube, KubeError
from authyard_operator.kube.config import ClusterConfig, ConfigError

from harness.kube_emulator import AuthyardEmulator
from harness.ports import free_port
from tests.support.tls import self_signed

# Stands for Secret data in a response: it must never reach an error message.
SECRET_MARKER = "c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw=="
SECRET_BODY = json.dumps(
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "auth-admin"},
        "data": {"token": SECRET_MARKER},
    }
).encode()

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> dict[str, Any]:
    """The request line, headers and body of one HTTP/1.1 request."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    request_line, *header_lines = head.strip().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    method, target, _ = request_line.split(" ")
    return {"method": method, "target": target, "headers": headers, "body": body}


def response_head(status: str, length: int | None, *extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", *extra]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@contextlib.asynccontextmanager
async def api_server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[dict[str, Any]]:
    """A loopback server: each connection's first request goes to ``handler``; ``state['requests']``."""
    state: dict[str, Any] = {"requests": []}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    request = await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                state["requests"].append(request)
                await handler(reader, writer, request)
                if writer.is_closing():
                    return
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    state["url"] = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    async with server:
        yield state
        server.close()


async def answer(writer: asyncio.StreamWriter, status: str, body: bytes, *extra: str) -> None:
    writer.write(response_head(status, len(body), *extra) + body)
    await writer.drain()


def kube_for(url: str, **config: Any) -> Kube:
    timeout = config.pop("timeout", 5.0)
    return Kube(ClusterConfig(server=url, token=config.pop("token", "t0ken"), **config), timeout=timeout)


async def failure_of(kube: Kube) -> KubeError:
    try:
        with pytest.raises(KubeError) as caught:
            await kube.get("v1", "Secret", "platform", "auth-admin")
    finally:
        await kube.close()
    return caught.value


def assert_transport_failure(error: KubeError, reason: str) -> None:
    assert (error.status, error.reason, error.retryable) == (0, reason, True), error
    assert "/api/v1/namespaces/platform/secrets/auth-admin" in error.message
    assert SECRET_MARKER not in str(error) and "c2VjcmV0" not in str(error)


# --- transport failures -------------------------------------------------------------------------------------


async def test_connection_refused_is_unreachable() -> None:
    error = await failure_of(kube_for(f"http://127.0.0.1:{free_port()}"))
    assert_transport_failure(error, "Unreachable")


async def close_at_once(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _q: dict[str, Any]) -> None:
    writer.close()


async def reset(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _q: dict[str, Any]) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends RST
    writer.transport.abort()


async def headers_only(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _q: dict[str, Any]) -> None:
    writer.write(response_head("200 OK", len(SECRET_BODY)))
    await writer.drain()
    writer.close()


async def half_body(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _q: dict[str, Any]) -> None:
    writer.write(response_head("200 OK", len(SECRET_BODY)) + SECRET_BODY[: len(SECRET_BODY) // 2 + 10])
    await writer.drain()
    writer.close()


async def half_chunked(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _q: dict[str, Any]) -> None:
    chunk = SECRET_BODY[:60]
    writer.write(
        response_head("200 OK", None, "Transfer-Encoding: chunked") + b"%x\r\n%s\r\n" % (len(chunk), chunk)
    )
    await writer.drain()
    writer.close()


async def unframed_truncated(
    _r: asyncio.StreamReader, writer: asyncio.StreamWriter, _q: dict[str, Any]
) -> None:
    # No length, no chunking: the end of the connection is the end of the body, so the cut goes unnoticed
    # by the transport; only the body shows it.
    writer.write(response_head("200 OK", None, "Connection: close") + SECRET_BODY[:70])
    await writer.drain()
    writer.close()


async def silence(_r: asyncio.StreamReader, _w: asyncio.StreamWriter, _q: dict[str, Any]) -> None:
    await asyncio.sleep(30)


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (close_at_once, "ConnectionLost"),
        (reset, "ConnectionLost"),
        (headers_only, "ConnectionLost"),
        (half_body, "ConnectionLost"),
        (half_chunked, "ConnectionLost"),
        (unframed_truncated, "InvalidResponse"),
    ],
    ids=["closed-before-answering", "reset", "after-headers", "mid-body", "mid-chunked-body", "unframed-cut"],
)
async def test_a_connection_dropped_mid_response_is_a_retryable_kube_error(
    handler: Handler, reason: str
) -> None:
    async with api_server(handler) as server:
        error = await failure_of(kube_for(server["url"]))
    assert_transport_failure(error, reason)
    assert len(server["requests"]) == 1, "the client retried on its own (the caller decides)"


async def test_an_answer_that_never_comes_is_a_timeout() -> None:
    async with api_server(silence) as server:
        loop = asyncio.get_running_loop()
        started = loop.time()
        error = await failure_of(kube_for(server["url"], timeout=0.5))
        assert loop.time() - started < 5
    assert_transport_failure(error, "Timeout")


@pytest.mark.parametrize(
    "body",
    [b"not json at all " + SECRET_MARKER.encode(), b'["a", "list"]', b""],
    ids=["garbage", "list", "empty"],
)
async def test_a_success_whose_body_is_not_a_json_object_is_an_invalid_response(body: bytes) -> None:
    async def garbage(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _q: dict[str, Any]) -> None:
        await answer(writer, "200 OK", body)

    async with api_server(garbage) as server:
        error = await failure_of(kube_for(server["url"]))
    assert_transport_failure(error, "InvalidResponse")


async def test_an_error_status_carries_the_apis_reason_and_message_and_retry_after() -> None:
    status = {"kind": "Status", "code": 429, "reason": "TooManyRequests", "message": "slow down"}

    async def throttled(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _q: dict[str, Any]) -> None:
        await answer(writer, "429 Too Many Requests", json.dumps(status).encode(), "Retry-After: 7")

    async with api_server(throttled) as server:
        error = await failure_of(kube_for(server["url"]))
    assert (error.status, error.reason, error.message, error.retry_after, error.retryable) == (
        429, "TooManyRequests", "slow down", 7.0, True,
    )  # fmt: skip


async def test_an_error_status_whose_body_is_not_a_status_keeps_the_http_reason() -> None:
    async def html(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _q: dict[str, Any]) -> None:
        await answer(writer, "502 Bad Gateway", b"<html>" + SECRET_MARKER.encode() + b"</html>")

    async with api_server(html) as server:
        error = await failure_of(kube_for(server["url"]))
    assert (error.status, error.reason, error.retryable) == (502, "Bad Gateway", True)
    assert SECRET_MARKER not in str(error)


async def test_the_client_recovers_on_the_next_call_after_a_dropped_connection() -> None:
    calls = 0

    async def flaky(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: dict[str, Any]
    ) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await half_body(reader, writer, request)
        else:
            await answer(writer, "200 OK", SECRET_BODY)

    async with api_server(flaky) as server:
        kube = kube_for(server["url"])
        try:
            with pytest.raises(KubeError):
                await kube.get("v1", "Secret", "platform", "auth-admin")
            secret = await kube.get("v1", "Secret", "platform", "auth-admin")
        finally:
            await kube.close()
    assert secret is not None and secret["data"]["token"] == SECRET_MARKER


async def test_a_closed_client_answers_with_a_kube_error() -> None:
    kube = kube_for(f"http://127.0.0.1:{free_port()}")
    await kube.close()
    error = await failure_of(kube)
    assert (error.status, error.reason) == (0, "ClientClosed")


async def test_the_registry_refuses_a_verb_it_does_not_list() -> None:
    kube = kube_for(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(PermissionError):
            await kube.create(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "y"}}
            )
    finally:
        await kube.close()


async def test_only_the_listed_non_resource_documents_can_be_read(emulator: AuthyardEmulator) -> None:
    kube = kube_for(str(emulator.url).rstrip("/"))
    try:
        document = await kube.get_non_resource("/.well-known/openid-configuration")
        assert document["issuer"] == emulator.service_account_issuer
        for path in ("/openid/v1/jwks", "/api", "/.well-known/openid-configuration/../../api/v1/secrets"):
            with pytest.raises(PermissionError):
                await kube.get_non_resource(path)
    finally:
        await kube.close()


# --- TLS ----------------------------------------------------------------------------------------------------


async def ok(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _q: dict[str, Any]) -> None:
    await answer(writer, "200 OK", SECRET_BODY)


async def test_a_server_certificate_the_client_does_not_trust_is_unreachable(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    async with api_server(ok, tls) as server:
        error = await failure_of(kube_for(server["url"]))  # the system's CAs only
        trusted = kube_for(server["url"], ca_file=str(cert))
        try:
            secret = await trusted.get("v1", "Secret", "platform", "auth-admin")
        finally:
            await trusted.close()
    assert_transport_failure(error, "Unreachable")
    assert "CERTIFICATE_VERIFY_FAILED" in error.message
    assert secret is not None and secret["metadata"]["name"] == "auth-admin"


async def test_a_kubeconfig_client_certificate_authenticates_over_mutual_tls(tmp_path: Path) -> None:
    """kind's kubeconfig: the cluster CA and the user's certificate and key, all inline (base64 PEM)."""
    (tmp_path / "server").mkdir()
    (tmp_path / "client").mkdir()
    server_cert, server_key = self_signed(tmp_path / "server")
    client_cert, client_key = self_signed(tmp_path / "client")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(server_cert, server_key)
    tls.verify_mode = ssl.CERT_REQUIRED
    tls.load_verify_locations(client_cert)

    def config(with_certificate: bool) -> ClusterConfig:
        user = {
            "client-certificate-data": b64(client_cert.read_text()),
            "client-key-data": b64(client_key.read_text()),
        }
        path = kubeconfig(
            tmp_path / "config", "kind",
            [{"name": "kind", "context": {"cluster": "kind", "user": "admin"}}],
            [{"name": "kind", "cluster": {
                "server": server["url"], "certificate-authority-data": b64(server_cert.read_text()),
            }}],
            [{"name": "admin", "user": user if with_certificate else {}}],
        )  # fmt: skip
        return cluster_config.from_kubeconfig({"KUBECONFIG": str(path)})

    async with api_server(ok, tls) as server:
        kube = Kube(config(with_certificate=True))
        try:
            secret = await kube.get("v1", "Secret", "platform", "auth-admin")
        finally:
            await kube.close()
        refused = await failure_of(Kube(config(with_certificate=False)))
    assert secret is not None and secret["metadata"]["name"] == "auth-admin"
    assert (refused.status, refused.retryable) == (0, True)


async def test_plain_http_where_tls_is_expected_is_unreachable() -> None:
    async with api_server(ok) as server:
        error = await failure_of(kube_for(server["url"].replace("http://", "https://")))
    assert_transport_failure(error, "Unreachable")


# --- configuration: in a pod --------------------------------------------------------------------------------


def service_account(directory: Path, token: str, ca: Path | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token + "\n")
    (directory / "namespace").write_text("authyard-system")
    if ca is not None:
        (directory / "ca.crt").write_bytes(ca.read_bytes())
    return directory


def test_in_cluster_uses_the_service_host_port_ca_and_token_file(tmp_path: Path) -> None:
    directory = service_account(tmp_path / "sa", "abc", ca=self_signed(tmp_path)[0])
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    config = cluster_config.in_cluster(env, directory)
    assert config is not None
    assert (config.server, config.ca_file, config.token_file, config.token) == (
        "https://10.96.0.1:443", str(directory / "ca.crt"), str(directory / "token"), None,
    )  # fmt: skip
    ipv6 = cluster_config.in_cluster({**env, "KUBERNETES_SERVICE_HOST": "fd00::1"}, directory)
    assert ipv6 is not None and ipv6.server == "https://[fd00::1]:443"
    assert cluster_config.in_cluster({}, directory) is None, "outside a pod"
    assert cluster_config.in_cluster(env, tmp_path / "no-such-dir") is None, "no service-account token"


async def test_kopf_logs_in_with_the_same_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kopf's own connection (watches, status, events) comes from the operator's login handler: in a pod,
    the service account's server, CA and current token."""
    from authyard_operator import main

    cert, _key = self_signed(tmp_path)
    directory = service_account(tmp_path / "sa", "pod-token", ca=cert)
    monkeypatch.setattr(cluster_config, "SERVICE_ACCOUNT", directory)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    info = await main.login()
    assert (info.server, info.ca_path, info.token, info.expiration) == (
        "https://10.96.0.1:443", str(directory / "ca.crt"), "pod-token", None,
    )  # fmt: skip
    (directory / "token").write_text("rotated")
    assert (await main.login()).token == "rotated", "a login after a 401 reads the token again"


async def test_in_cluster_client_rereads_the_rotated_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kubelet replaces the projected token; the client reads it again after its period, and at once
    when the API answers 401 to the old one."""
    cert, key = self_signed(tmp_path)
    directory = service_account(tmp_path / "sa", "first", ca=cert)
    valid = {"first"}

    async def auth_checking(
        _r: asyncio.StreamReader, writer: asyncio.StreamWriter, request: dict[str, Any]
    ) -> None:
        if request["headers"].get("authorization", "").removeprefix("Bearer ") in valid:
            await answer(writer, "200 OK", SECRET_BODY)
        else:
            await answer(writer, "401 Unauthorized", b'{"kind":"Status","code":401,"reason":"Unauthorized"}')

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    async with api_server(auth_checking, tls) as server:
        port = server["url"].rsplit(":", 1)[1]
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
        config = cluster_config.in_cluster(env, directory)
        assert config is not None
        kube = Kube(config)
        try:
            assert await kube.get("v1", "Secret", "platform", "auth-admin")
            # Rotated, the old token revoked: the 401 makes the client read the file again and retry once.
            (directory / "token").write_text("second\n")
            valid.clear()
            valid.add("second")
            assert await kube.get("v1", "Secret", "platform", "auth-admin")
            # Rotated while the old one still works: read again once the period has passed.
            (directory / "token").write_text("third\n")
            valid.add("third")
            monkeypatch.setattr(credentials, "FILE_REREAD_SECONDS", 0.0)
            assert await kube.get("v1", "Secret", "platform", "auth-admin")
            # Nothing valid at all: the 401 is the caller's to handle (not retried forever).
            valid.clear()
            with pytest.raises(KubeError) as caught:
                await kube.get("v1", "Secret", "platform", "auth-admin")
        finally:
            await kube.close()
    tokens = [r["headers"]["authorization"] for r in server["requests"]]
    assert tokens[:4] == ["Bearer first", "Bearer first", "Bearer second", "Bearer third"]
    assert caught.value.status == 401 and not caught.value.retryable


async def test_an_unreadable_token_file_is_a_retryable_kube_error(tmp_path: Path) -> None:
    async with api_server(ok) as server:
        kube = Kube(ClusterConfig(server=server["url"], token_file=str(tmp_path / "missing")))
        error = await failure_of(kube)
    assert (error.status, error.reason, error.retryable) == (0, "CredentialsUnavailable", True)
    assert server["requests"] == []


# --- configuration: KUBECONFIG ------------------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kubeconfig(path: Path, current: str | None, contexts: list, clusters: list, users: list) -> Path:
    document: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    if current:
        document["current-context"] = current
    document |= {"contexts": contexts, "clusters": clusters, "users": users}
    path.write_text(yaml.safe_dump(document))
    return path


def test_kubeconfig_files_merge_as_kubectl_merges_them(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = kubeconfig(
        tmp_path / "a" / "config", "dev",
        [{"name": "dev", "context": {"cluster": "kind", "user": "admin"}}],
        [{"name": "kind", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca"}}],
        [],
    )  # fmt: skip
    second = kubeconfig(
        tmp_path / "b" / "config", "prod",
        [{"name": "dev", "context": {"cluster": "ignored", "user": "ignored"}}],
        [{"name": "kind", "cluster": {"server": "https://ignored"}}],
        [{"name": "admin", "user": {
            "client-certificate-data": b64("CERT PEM"), "client-key-data": b64("KEY PEM"),
            "tokenFile": "token",
        }}],
    )  # fmt: skip
    config = cluster_config.from_kubeconfig({"KUBECONFIG": f"{first}:{second}:{tmp_path / 'absent'}"})
    assert config.server == "https://127.0.0.1:6443"  # the first file's context and cluster win
    assert config.ca_file == str(tmp_path / "a" / "ca")  # relative to the file that names it
    assert (config.cert_pem, config.key_pem) == ("CERT PEM", "KEY PEM")
    assert config.token_file == str(tmp_path / "b" / "token")
    assert "KEY PEM" not in repr(config)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"current-context": "x"}, "no context named 'x'"),
        (
            {"contexts": [{"name": "x", "context": {"cluster": "c"}}], "current-context": "x"},
            "no cluster named 'c'",
        ),
        (
            {
                "clusters": [{"name": "c", "cluster": {}}],
                "contexts": [{"name": "x", "context": {"cluster": "c"}}],
                "current-context": "x",
            },
            "has no server",
        ),
        (
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://h"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
                "users": [{"name": "u", "user": {"auth-provider": {"name": "gcp"}}}],
            },
            "auth-provider",
        ),
        (
            {
                "clusters": [
                    {"name": "c", "cluster": {"server": "https://h", "certificate-authority-data": "%%%"}}
                ],
                "contexts": [{"name": "x", "context": {"cluster": "c"}}],
                "current-context": "x",
            },
            "base64",
        ),
        ({"contexts": []}, "no current-context"),
        (["not", "a", "mapping"], "not a mapping"),
    ],
)
def test_a_kubeconfig_that_cannot_work_is_a_clear_error(tmp_path: Path, document: Any, message: str) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=message):
        cluster_config.from_kubeconfig({"KUBECONFIG": str(path)})


def test_no_configuration_at_all_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not in a pod") as caught:
        cluster_config.load({"KUBECONFIG": str(tmp_path / "none")})
    assert str(tmp_path / "none") in str(caught.value)


async def test_an_exec_plugin_supplies_the_token_until_it_expires_or_is_refused(tmp_path: Path) -> None:
    """The credential plugins of the cloud providers' CLIs: run non-interactively, token cached until shortly
    before its expiry, run again after a 401."""
    counter = tmp_path / "runs"
    plugin = tmp_path / "plugin.py"
    expiry = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    plugin.write_text(
        textwrap.dedent(f"""
        import json, os, pathlib, sys
        info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
        assert info["spec"]["interactive"] is False and os.environ["CLUSTER"] == "kind"
        runs = pathlib.Path({str(counter)!r})
        count = int(runs.read_text()) + 1 if runs.exists() else 1
        runs.write_text(str(count))
        print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                          "status": {{"token": f"exec-{{count}}", "expirationTimestamp": {expiry!r}}}}}))
        """)
    )
    refuse = {"exec-1"}

    async def auth_checking(
        _r: asyncio.StreamReader, writer: asyncio.StreamWriter, request: dict[str, Any]
    ) -> None:
        if request["headers"]["authorization"].removeprefix("Bearer ") in refuse:
            await answer(writer, "401 Unauthorized", b"{}")
        else:
            await answer(writer, "200 OK", SECRET_BODY)

    async with api_server(auth_checking) as server:
        path = kubeconfig(
            tmp_path / "config", "x",
            [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            [{"name": "c", "cluster": {"server": server["url"]}}],
            [{"name": "u", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                "args": [str(plugin)], "env": [{"name": "CLUSTER", "value": "kind"}],
                "interactiveMode": "Never",
            }}}],
        )  # fmt: skip
        config = cluster_config.from_kubeconfig({"KUBECONFIG": str(path)})
        kube = Kube(config)
        try:
            for _ in range(3):
                assert await kube.get("v1", "Secret", "platform", "auth-admin")
        finally:
            await kube.close()
    tokens = [r["headers"]["authorization"] for r in server["requests"]]
    assert tokens == ["Bearer exec-1", "Bearer exec-2", "Bearer exec-2", "Bearer exec-2"]
    assert counter.read_text() == "2"
