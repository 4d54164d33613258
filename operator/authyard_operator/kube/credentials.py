"""The bearer token a request carries, kept fresh: a fixed token, a token file, or an exec plugin.

A service-account token file is rotated by the kubelet, so it is read again at most a minute after the last
read (client-go's period) and at once after a 401; an exec plugin's token is kept until shortly before its
expirationTimestamp, or until a 401.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import httpx

from authyard_operator.kube.config import ClusterConfig, ConfigError, ExecPlugin

FILE_REREAD_SECONDS = 60.0
EXPIRY_MARGIN_SECONDS = 30.0
EXEC_TIMEOUT_SECONDS = 60.0


class TokenSource:
    """A fixed token."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token

    @property
    def expires_at(self) -> datetime | None:
        return None

    def invalidate(self) -> bool:
        """Forget the cached token; True when the next ``token()`` may return a different one."""
        return False


class TokenFile(TokenSource):
    def __init__(self, path: str) -> None:
        super().__init__("")
        self.path = path
        self._read_at: float | None = None

    async def token(self) -> str:
        if self._read_at is None or time.monotonic() - self._read_at >= FILE_REREAD_SECONDS:
            try:
                with open(self.path, encoding="utf-8") as file:  # noqa: ASYNC230 - a few hundred bytes
                    self._token = file.read().strip()
            except OSError as error:
                raise ConfigError(f"cannot read the token file {self.path}: {error.strerror}") from None
            self._read_at = time.monotonic()
        return self._token

    def invalidate(self) -> bool:
        self._read_at = None
        return True


class ExecToken(TokenSource):
    def __init__(self, plugin: ExecPlugin) -> None:
        super().__init__("")
        self.plugin = plugin
        self._expires_at: datetime | None = None
        self._fresh = False
        self._lock = asyncio.Lock()

    @property
    def expires_at(self) -> datetime | None:
        return self._expires_at

    async def token(self) -> str:
        async with self._lock:
            expired = self._expires_at is not None and (
                (self._expires_at - datetime.now(UTC)).total_seconds() < EXPIRY_MARGIN_SECONDS
            )
            if not self._fresh or expired:
                self._token, self._expires_at = await run_exec_plugin(self.plugin)
                self._fresh = True
            return self._token

    def invalidate(self) -> bool:
        self._fresh = False
        return True


async def run_exec_plugin(plugin: ExecPlugin) -> tuple[str, datetime | None]:
    """Run the plugin non-interactively; its ExecCredential's token and expiry. Never logs its output."""
    request = {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    env = {**os.environ, **dict(plugin.env), "KUBERNETES_EXEC_INFO": json.dumps(request)}
    try:
        process = await asyncio.create_subprocess_exec(
            plugin.command, *plugin.args, cwd=plugin.cwd, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, _ = await asyncio.wait_for(process.communicate(), EXEC_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as error:
        raise ConfigError(f"exec credential plugin {plugin.command!r} did not run: {error}") from None
    if process.returncode != 0:
        raise ConfigError(f"exec credential plugin {plugin.command!r} exited with {process.returncode}")
    try:
        status = json.loads(stdout)["status"]
        token = str(status["token"])
        expiry = status.get("expirationTimestamp")
        expires_at = datetime.fromisoformat(expiry.replace("Z", "+00:00")) if expiry else None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(
            f"exec credential plugin {plugin.command!r} printed no ExecCredential with a token"
        ) from None
    return token, expires_at


def token_source(config: ClusterConfig) -> TokenSource | None:
    if config.token:
        return TokenSource(config.token)
    if config.token_file:
        return TokenFile(config.token_file)
    if config.exec_plugin:
        return ExecToken(config.exec_plugin)
    return None


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer``; after a 401, once more with a freshly read token if it changed."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and self.source.invalidate():
            fresh = await self.source.token()
            if fresh != token:
                request.headers["Authorization"] = f"Bearer {fresh}"
                yield request


def auth_for(config: ClusterConfig) -> httpx.Auth | None:
    source = token_source(config)
    if source is not None:
        return BearerAuth(source)
    if config.username and config.password is not None:
        return httpx.BasicAuth(config.username, config.password)
    return None
