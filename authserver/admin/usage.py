"""Usage per client as the admin API reports it (``protocol.usage``): the last token, the tokens of the last
hour and day, the last error. The operator reads it into each OAuthClient's status."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from pydantic import BaseModel

from authserver.protocol.models import ClientUsage
from authserver.protocol.store import Store
from authserver.protocol.usage import REPORT_SPAN, hour_of, summarize


class LastError(BaseModel):
    code: str  # the token endpoint's error code (RFC 6749 §5.2), e.g. invalid_client
    at: datetime


class UsageView(BaseModel):
    client_id: str
    last_token_at: datetime | None
    tokens_last_hour: int
    tokens_last_day: int
    errors_last_hour: int
    errors_last_day: int
    last_error: LastError | None

    @classmethod
    def of(cls, usage: ClientUsage, now: datetime) -> UsageView:
        figures = asdict(summarize(usage, now))
        code, at = figures.pop("last_error"), figures.pop("last_error_at")
        last_error = LastError(code=code, at=at) if code is not None and at is not None else None
        return cls(**figures, last_error=last_error)

    @classmethod
    def unused(cls, client_id: str) -> UsageView:
        return cls(
            client_id=client_id,
            last_token_at=None,
            tokens_last_hour=0,
            tokens_last_day=0,
            errors_last_hour=0,
            errors_last_day=0,
            last_error=None,
        )


class UsagePage(BaseModel):
    clients: list[UsageView]
    next: str | None  # pass as ``after`` for the next page; None: this was the last


def _buckets_since(now: datetime) -> datetime:
    return hour_of(now - REPORT_SPAN)


async def client_usage(store: Store, client_id: str, now: datetime | None = None) -> UsageView:
    """The client's usage; all zero when nothing was recorded for it (the caller checks it is registered)."""
    now = now or datetime.now(UTC)
    usage = await store.get_client_usage(client_id, _buckets_since(now))
    return UsageView.unused(client_id) if usage is None else UsageView.of(usage, now)


async def usage_page(
    store: Store, after: str | None, limit: int, since: datetime | None, now: datetime | None = None
) -> UsagePage:
    """A page of the clients with recorded usage (with ``since``: a token or an error since then)."""
    now = now or datetime.now(UTC)
    found = await store.list_client_usage(after, limit, _buckets_since(now), since)
    views = [UsageView.of(usage, now) for usage in found]
    return UsagePage(clients=views, next=views[-1].client_id if len(views) == limit else None)
