"""Whether a URL's host is this machine (loopback), judged the same way by every layer that asks.

Two questions, two answers, because a wrong guess costs in opposite directions:

- ``is_loopback``: the host certainly is this machine, so a rule may be relaxed for it (plain ``ldap://``,
  an ``http://`` upstream or trusted issuer in tests). Only what no resolver can send elsewhere counts:
  an IP literal in 127.0.0.0/8 or ::1 (RFC 6890 §2.2.2, §2.2.3), either written as an IPv4-mapped IPv6
  address (``::ffff:127.0.0.1``, RFC 4291 §2.5.5.2), and the name ``localhost`` itself.
- ``may_be_loopback``: the host might be this machine, so a rule must be tightened for it (a public client
  skipping consent). It also counts every name RFC 6761 §6.3 reserves for loopback (``*.localhost``) and a
  fully qualified spelling with a trailing dot, which a resolver may or may not send to loopback.

A leaf: it imports no other part of the server (a contract in pyproject.toml), so ``ldap/``, ``admin/`` and
the identity-providers file may all use it.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """The host is certainly this machine: ``localhost`` or a loopback IP literal (brackets allowed)."""
    if not host:
        return False
    host = host.lower()
    return host == "localhost" or _loopback_address(host)


def may_be_loopback(host: str | None) -> bool:
    """The host could be this machine: ``is_loopback``, any ``*.localhost`` name, or either with a
    trailing dot."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    return is_loopback(host) or host.endswith(".localhost")


def _loopback_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    # Python 3.11's IPv6Address.is_loopback is true for ::1 only, not for ::ffff:127.0.0.1.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)
