"""Sign-in against an LDAP directory (RFC 4511, RFC 4513 §5.1.2): find the person, bind as them, read groups.

The usual "search, then bind" of directory-backed sign-in: a read-only service account finds exactly one
entry for the typed username (its value escaped per RFC 4515 §3, so a username can never widen the filter),
the server then binds as that entry with the typed password (the directory checks it; the password never
leaves this request), and the service account lists the groups naming the entry as a member.

ldap3 is synchronous: each sign-in runs on a thread with bounded connect and receive timeouts, over TLS
(ldaps:// or StartTLS) verified against the configured CA; plain ldap:// only to a loopback directory.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from ldap3 import NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from authserver.loopback import is_loopback

MAX_USERNAME_LENGTH = 256
MAX_GROUPS = 1000  # a sign-in carries at most this many groups: a size limit on the group search


class InvalidCredentials(Exception):
    """Unknown user, wrong password, or a user the user filter excludes (disabled): one answer for all, so
    that the sign-in form does not tell which usernames exist."""


class NotAllowed(Exception):
    """The person signed in correctly but is in none of the groups allowed to sign in."""


class DirectoryUnavailable(Exception):
    """The directory could not be asked (down, slow, TLS refused, the service account's bind refused, an
    ambiguous username): a fault to show the operator, never the person's mistake."""


class DirectoryTimeout(DirectoryUnavailable):
    """The directory did not answer within the configured bound."""


@dataclass(frozen=True)
class LdapSettings:
    name: str
    url: str  # ldaps://host:port, or ldap://host:port with start_tls (plain only on loopback)
    bind_dn: str
    bind_password: str
    user_base: str
    start_tls: bool = False
    ca_file: Path | None = None
    user_filter: str = "(objectClass=person)"  # e.g. (&(objectClass=person)(!(employeeType=disabled)))
    username_attribute: str = "uid"
    subject_attribute: str = "entryUUID"  # RFC 4530: stable across renames; the DN when absent
    email_attribute: str = "mail"
    name_attribute: str = "cn"
    group_base: str | None = None
    group_filter: str = "(objectClass=groupOfNames)"
    group_member_attribute: str = "member"
    group_member_value: Literal["dn", "username"] = "dn"  # member: DNs; memberUid (posixGroup): usernames
    group_name_attribute: str = "cn"
    allowed_groups: frozenset[str] = field(default_factory=frozenset)
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ValueError(
                f"identity provider {self.name!r}: url must be ldaps://host[:port] or ldap://..."
            )
        if parts.scheme == "ldap" and not self.start_tls and not is_loopback(parts.hostname):
            raise ValueError(
                f"identity provider {self.name!r}: ldap:// sends passwords in clear text; use ldaps:// or "
                "start_tls (plain ldap:// is accepted only for a directory on loopback)"
            )
        for name in ("user_filter", "group_filter"):
            value = getattr(self, name)
            if not (value.startswith("(") and value.endswith(")")):
                raise ValueError(f"identity provider {self.name!r}: {name} must be a parenthesised filter")


@dataclass(frozen=True)
class DirectoryUser:
    subject: str  # stable: entryUUID, or the DN
    username: str  # as the directory spells it
    email: str | None
    name: str | None
    groups: tuple[str, ...]


class LdapDirectory:
    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        parts = urlsplit(settings.url)
        tls = None
        if parts.scheme == "ldaps" or settings.start_tls:
            tls = Tls(
                validate=ssl.CERT_REQUIRED,
                version=ssl.PROTOCOL_TLS_CLIENT,
                ca_certs_file=str(settings.ca_file) if settings.ca_file else None,
            )
        self._server = Server(
            parts.hostname or "",
            port=parts.port,
            use_ssl=parts.scheme == "ldaps",
            tls=tls,
            get_info=NONE,  # no schema reads on connect: two round trips a sign-in saved
            connect_timeout=settings.timeout_seconds,
        )

    async def authenticate(self, username: str, password: str) -> DirectoryUser:
        """The person ``username`` names, when ``password`` is theirs; raises InvalidCredentials, NotAllowed
        or DirectoryUnavailable."""
        if not username or len(username) > MAX_USERNAME_LENGTH or not username.isprintable():
            raise InvalidCredentials
        # RFC 4513 §5.1.2: a simple bind with a DN and an empty password is an unauthenticated bind, which
        # a directory may answer with success. Never let it stand for a password check.
        if not password:
            raise InvalidCredentials
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._authenticate, username, password),
                # connect, StartTLS, two binds, two searches: each bounded by the timeout on its own.
                timeout=self.settings.timeout_seconds * 3,
            )
        except TimeoutError:
            raise DirectoryUnavailable(
                f"{self.settings.name}: the directory did not answer in time"
            ) from None

    async def check(self) -> None:
        """The service account binds and sees the user base: raises DirectoryUnavailable otherwise."""
        await asyncio.wait_for(asyncio.to_thread(self._check), timeout=self.settings.timeout_seconds * 3)

    # On the thread --------------------------------------------------------------------------------------

    def _connect(self, dn: str, password: str) -> Connection:
        connection = Connection(
            self._server,
            dn,
            password,
            # ldap3 packs it into SO_RCVTIMEO as whole seconds.
            receive_timeout=max(1, math.ceil(self.settings.timeout_seconds)),
            raise_exceptions=False,
            read_only=True,
        )
        connection.open()
        if self.settings.start_tls and not connection.start_tls():
            connection.unbind()
            raise DirectoryUnavailable(f"{self.settings.name}: StartTLS refused ({_outcome(connection)})")
        connection.bind()
        return connection

    def _service(self) -> Connection:
        try:
            connection = self._connect(self.settings.bind_dn, self.settings.bind_password)
        except LDAPException as error:
            raise DirectoryUnavailable(f"{self.settings.name}: {_describe(error)}") from None
        if not connection.bound:
            outcome = _outcome(connection)
            connection.unbind()
            raise DirectoryUnavailable(f"{self.settings.name}: the service account's bind failed ({outcome})")
        return connection

    def _check(self) -> None:
        service = self._service()
        try:
            found = service.search(self.settings.user_base, "(objectClass=*)", search_scope="BASE")
            if not found:
                raise DirectoryUnavailable(
                    f"{self.settings.name}: the user base {self.settings.user_base!r} cannot be read "
                    f"({_outcome(service)})"
                )
        finally:
            service.unbind()

    def _authenticate(self, username: str, password: str) -> DirectoryUser:
        settings = self.settings
        service = self._service()
        try:
            entry = self._find(service, username)
            self._bind_as(entry["dn"], password)
            attributes = entry["attributes"]
            typed = _first(attributes.get(settings.username_attribute)) or username
            groups = self._groups(service, entry["dn"], typed)
        except LDAPException as error:
            raise DirectoryUnavailable(f"{settings.name}: {_describe(error)}") from None
        finally:
            service.unbind()
        if settings.allowed_groups and not settings.allowed_groups.intersection(groups):
            raise NotAllowed
        return DirectoryUser(
            subject=_first(attributes.get(settings.subject_attribute)) or entry["dn"],
            username=typed,
            email=_first(attributes.get(settings.email_attribute)),
            name=_first(attributes.get(settings.name_attribute)),
            groups=tuple(sorted(groups)),
        )

    def _find(self, service: Connection, username: str) -> dict[str, Any]:
        settings = self.settings
        # RFC 4515 §3: the username is a value, escaped, never filter syntax.
        query = f"(&{settings.user_filter}({settings.username_attribute}={escape_filter_chars(username)}))"
        wanted = [
            settings.username_attribute,
            settings.subject_attribute,
            settings.email_attribute,
            settings.name_attribute,
        ]
        service.search(
            settings.user_base, query, search_scope=SUBTREE, attributes=wanted, size_limit=2, types_only=False
        )
        entries = [item for item in service.response or [] if item.get("type") == "searchResEntry"]
        if len(entries) > 1:
            raise DirectoryUnavailable(
                f"{settings.name}: more than one entry has this {settings.username_attribute}; the user "
                "filter must select one person per username"
            )
        if not entries:
            if service.result.get("result") not in (0, 4, 32):  # success, sizeLimitExceeded, noSuchObject
                raise DirectoryUnavailable(f"{settings.name}: the user search failed ({_outcome(service)})")
            raise InvalidCredentials
        found: dict[str, Any] = entries[0]
        return found

    def _bind_as(self, dn: str, password: str) -> None:
        connection = self._connect(dn, password)
        try:
            if connection.bound:
                return
            code = connection.result.get("result")
        finally:
            connection.unbind()
        if code in (49, 50, 53):  # invalidCredentials, insufficientAccessRights, unwillingToPerform
            raise InvalidCredentials
        raise DirectoryUnavailable(f"{self.settings.name}: the bind as the person failed (result {code})")

    def _groups(self, service: Connection, dn: str, username: str) -> set[str]:
        settings = self.settings
        if settings.group_base is None:
            return set()
        member = dn if settings.group_member_value == "dn" else username
        query = f"(&{settings.group_filter}({settings.group_member_attribute}={escape_filter_chars(member)}))"
        service.search(
            settings.group_base,
            query,
            search_scope=SUBTREE,
            attributes=[settings.group_name_attribute],
            size_limit=MAX_GROUPS,
        )
        names = set()
        for item in service.response or []:
            if item.get("type") == "searchResEntry":
                name = _first(item["attributes"].get(settings.group_name_attribute))
                if name:
                    names.add(name)
        return names


def _first(value: object) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    return str(value)


def _outcome(connection: Connection) -> str:
    result = connection.result or {}
    return str(result.get("description") or result.get("result") or "no answer")


def _describe(error: LDAPException) -> str:
    """What went wrong, for the operator: the exception's kind and text (no credentials in either)."""
    text = str(error).split(" - ")[0][:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
