"""RFC 8707 resource indicators: which audience a token is for."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from authserver.protocol.errors import InvalidTarget
from authserver.protocol.models import Client


def choose_audience(resources: Sequence[str], client: Client, fallback: str) -> str | list[str]:
    """The requested resources if the client may use them all, else the client's default audience.

    The default is the client's first registered audience, or ``fallback`` (the server's default
    audience) for a client registered with none.
    """
    if not resources:
        return client.audiences[0] if client.audiences else fallback
    for resource in resources:
        parts = urlsplit(resource)
        if not parts.scheme or parts.fragment:
            raise InvalidTarget("resource must be an absolute URI without a fragment")
        if resource not in client.audiences:
            raise InvalidTarget(f"this client may not request tokens for {resource}")
    unique = list(dict.fromkeys(resources))
    return unique[0] if len(unique) == 1 else unique
