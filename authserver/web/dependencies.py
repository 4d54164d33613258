"""Small FastAPI dependencies shared by routers."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from starlette.requests import Request

from authserver.web.services import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services  # set once at start-up; Starlette's state is untyped
    return svc


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def real_client_address(request: Request, trusted_proxies: Sequence[str]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the nearest address in
    X-Forwarded-For that is not a trusted proxy (entries left of it may be forged by the client)."""
    peer = client_ip(request)
    networks = _networks(tuple(trusted_proxies))
    if not networks or not _trusted(peer, networks):
        return peer
    forwarded = [
        part.strip() for value in request.headers.getlist("x-forwarded-for") for part in value.split(",")
    ]
    for hop in reversed(forwarded):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a malformed hop: the proxy's own address is the best known
    return peer
