"""Whether each upstream identity provider can be used right now, for the admin API (the operator shows it
in the AuthServer's status): an OpenID provider's discovery document and keys can be read; an LDAP
directory's service account can bind and read its user base. Checked on demand and kept for a short while,
so that a status poll every minute from every operator replica costs each provider one check."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from authserver.ldap.directory import DirectoryUnavailable, LdapDirectory
from authserver.protocol.upstream_sign_in import (
    IdentityProviders,
    OidcUpstream,
    UpstreamFailure,
    UpstreamProvider,
)
from authserver.web.upstream_oidc import UpstreamOidcClient

CHECK_TTL_SECONDS = 30.0


@dataclass(frozen=True)
class ProviderHealth:
    name: str
    display_name: str
    kind: str
    healthy: bool
    detail: str | None  # what failed, for the operator (never a secret: no token, no password)
    checked_at: datetime


class UpstreamHealth:
    def __init__(
        self,
        providers: IdentityProviders,
        oidc: UpstreamOidcClient,
        directories: dict[str, LdapDirectory],
        ttl: float = CHECK_TTL_SECONDS,
    ) -> None:
        self.providers = providers
        self.oidc = oidc
        self.directories = directories
        self.ttl = ttl
        self._last: dict[str, tuple[float, ProviderHealth]] = {}
        self._lock = asyncio.Lock()

    async def check(self) -> list[ProviderHealth]:
        """Every provider's health, in the configured order (one check at a time per worker)."""
        async with self._lock:
            return list(await asyncio.gather(*(self._one(p) for p in self.providers.providers)))

    async def _one(self, provider: UpstreamProvider) -> ProviderHealth:
        name = provider.name
        kept = self._last.get(name)
        if kept is not None and time.monotonic() - kept[0] < self.ttl:
            return kept[1]
        detail = await self._failure(provider)
        health = ProviderHealth(
            name=name,
            display_name=provider.display_name,
            kind=provider.kind,
            healthy=detail is None,
            detail=detail,
            checked_at=datetime.now(UTC),
        )
        self._last[name] = (time.monotonic(), health)
        return health

    async def _failure(self, provider: UpstreamProvider) -> str | None:
        """None when the provider can be used; what failed otherwise."""
        try:
            if isinstance(provider, OidcUpstream):
                metadata = await self.oidc.metadata(provider)
                await self.oidc.keys(provider, metadata)
            else:
                directory = self.directories.get(provider.name)
                if directory is None:
                    return "no directory client is configured"
                await directory.check()
        except UpstreamFailure as failure:
            return failure.detail[:300]
        except DirectoryUnavailable as failure:
            return str(failure)[:300]
        except TimeoutError:
            return "it did not answer in time"
        return None
