"""An LDAP directory (``authserver.ldap``) as the sign-in flow's ``DirectoryCheck``: the directory's answers
become the flow's (a wrong password is None; a directory that cannot answer, or a person outside the allowed
groups, an ``UpstreamFailure`` the login page names the directory in)."""

from __future__ import annotations

from authserver.ldap.directory import (
    DirectoryTimeout,
    DirectoryUnavailable,
    InvalidCredentials,
    LdapDirectory,
    LdapSettings,
    NotAllowed,
)
from authserver.protocol.authorization_flow import DirectoryCheck
from authserver.protocol.upstream_sign_in import Failure, UpstreamFailure, UpstreamIdentity

_NOT_IN_GROUP = "you are not in a group that may sign in here"


def directory_check(directory: LdapDirectory) -> DirectoryCheck:
    async def check(username: str, password: str) -> UpstreamIdentity | None:
        try:
            person = await directory.authenticate(username, password)
        except InvalidCredentials:
            return None
        except NotAllowed:
            raise UpstreamFailure(Failure.NOT_ALLOWED, _NOT_IN_GROUP) from None
        except DirectoryTimeout as error:
            raise UpstreamFailure(Failure.TIMEOUT, "it did not answer in time", str(error)) from None
        except DirectoryUnavailable as error:
            raise UpstreamFailure(Failure.UNAVAILABLE, "it could not be asked", str(error)) from None
        # A directory's mail attribute is kept by its administrators, but nothing says anyone checked it:
        # unverified, as an OpenID provider's address is without email_verified.
        return UpstreamIdentity(
            subject=person.subject,
            username=person.username,
            email=person.email,
            email_verified=False,
            name=person.name,
            groups=person.groups,
        )

    return check


def ldap_directories(settings: dict[str, LdapSettings]) -> dict[str, LdapDirectory]:
    return {name: LdapDirectory(each) for name, each in settings.items()}


def directory_checks(directories: dict[str, LdapDirectory]) -> dict[str, DirectoryCheck]:
    return {name: directory_check(directory) for name, directory in directories.items()}
