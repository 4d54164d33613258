"""The admin API's view of the sign-in methods: local accounts on or off, and each upstream identity provider
with whether it can be used right now (``web.upstream_health``): what the operator shows in status."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field


class _Health(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def healthy(self) -> bool: ...
    @property
    def detail(self) -> str | None: ...
    @property
    def checked_at(self) -> datetime: ...


class ProviderHealthView(BaseModel):
    name: str
    display_name: str
    kind: str = Field(description="oidc or ldap")
    healthy: bool = Field(
        description="oidc: its discovery document and keys were read; ldap: its service account bound and "
        "read the user base"
    )
    detail: str | None = Field(None, description="What failed (nothing secret)")
    checked_at: datetime


class IdentityProvidersView(BaseModel):
    local_accounts: bool
    providers: list[ProviderHealthView]

    @classmethod
    def of(cls, local_accounts: bool, health: Sequence[_Health]) -> IdentityProvidersView:
        return cls(
            local_accounts=local_accounts,
            providers=[
                ProviderHealthView(
                    name=each.name,
                    display_name=each.display_name,
                    kind=each.kind,
                    healthy=each.healthy,
                    detail=each.detail,
                    checked_at=each.checked_at,
                )
                for each in health
            ],
        )
