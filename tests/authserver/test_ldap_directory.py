"""Sign-in against a real OpenLDAP directory (Debian's slapd on loopback), seeded here: search then bind,
groups, refusals, RFC 4515 escaping, TLS (ldaps:// and StartTLS) and a directory that is down or silent."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from authserver.ldap.directory import (
    DirectoryUnavailable,
    InvalidCredentials,
    LdapDirectory,
    LdapSettings,
    NotAllowed,
)
from harness.slapd import GROUPS, PEOPLE, READER_DN, Slapd
from tests.support.programs import require_program

ALICE_PASSWORD = "alice-" + secrets.token_urlsafe(8)
BOB_PASSWORD = "bob-" + secrets.token_urlsafe(8)


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    require_program("slapd", "AUTHYARD_REQUIRE_SLAPD")
    directory = Slapd(tmp_path_factory.mktemp("slapd"), secrets.token_urlsafe(12), secrets.token_urlsafe(12))
    directory.start()
    try:
        directory.seed_base()
        alice = directory.add_user(
            "alice", ALICE_PASSWORD, mail="alice@example.org", cn="Alice Liddell", sn="Liddell"
        )
        bob = directory.add_user("bob", BOB_PASSWORD, mail="bob@example.org")
        directory.add_user("carol", "carol-password", employeeType="disabled")
        # Two entries answering to one mail: a username attribute that is not unique.
        directory.add_user("dave", "dave-password", mail="shared@example.org")
        directory.add_user("erin", "erin-password", mail="shared@example.org")
        directory.add_group("platform", [alice])
        directory.add_group("auditors", [alice, bob])
        yield directory
    finally:
        directory.stop()


def _settings(slapd: Slapd, **overrides: object) -> LdapSettings:
    settings = LdapSettings(
        name="corp",
        url=slapd.url,
        bind_dn=READER_DN,
        bind_password=slapd.reader_password,
        user_base=PEOPLE,
        user_filter="(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))",
        group_base=GROUPS,
        timeout_seconds=2.0,
    )
    return replace(settings, **overrides)  # type: ignore[arg-type]


async def test_a_directory_user_signs_in_with_attributes_groups_and_a_stable_subject(slapd: Slapd) -> None:
    user = await LdapDirectory(_settings(slapd)).authenticate("alice", ALICE_PASSWORD)
    assert user.username == "alice"
    assert user.email == "alice@example.org"
    assert user.name == "Alice Liddell"
    assert user.groups == ("auditors", "platform")
    assert len(user.subject) == 36 and user.subject.count("-") == 4  # entryUUID (RFC 4530), not the DN
    again = await LdapDirectory(_settings(slapd)).authenticate("alice", ALICE_PASSWORD)
    assert again.subject == user.subject


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "wrong-password"),
        ("alice", BOB_PASSWORD),  # another person's password
        ("nobody", "whatever"),  # unknown: the same answer as a wrong password
        ("carol", "carol-password"),  # excluded by the user filter (disabled), right password
        ("alice", ""),  # RFC 4513 §5.1.2: never an unauthenticated bind
        ("", ALICE_PASSWORD),
        ("alice\n", ALICE_PASSWORD),
    ],
)
async def test_wrong_unknown_or_disabled_is_one_refusal(slapd: Slapd, username: str, password: str) -> None:
    with pytest.raises(InvalidCredentials):
        await LdapDirectory(_settings(slapd)).authenticate(username, password)


@pytest.mark.parametrize(
    "username",
    ["*", "al*", "alice)(uid=*", "*)(|(uid=*", "alice)(!(uid=nobody)", "\\2a", "alice\x00"],
)
async def test_filter_syntax_in_a_username_is_a_value_never_a_wider_filter(
    slapd: Slapd, username: str
) -> None:
    """RFC 4515 §3: with Alice's password, no username made of filter syntax signs in as Alice (or anyone)."""
    with pytest.raises(InvalidCredentials):
        await LdapDirectory(_settings(slapd)).authenticate(username, ALICE_PASSWORD)


async def test_a_username_attribute_matching_two_people_is_the_directorys_fault(slapd: Slapd) -> None:
    directory = LdapDirectory(_settings(slapd, username_attribute="mail"))
    with pytest.raises(DirectoryUnavailable, match="more than one entry"):
        await directory.authenticate("shared@example.org", "dave-password")
    assert (await directory.authenticate("bob@example.org", BOB_PASSWORD)).username == "bob@example.org"


async def test_allowed_groups_admit_members_only(slapd: Slapd) -> None:
    directory = LdapDirectory(_settings(slapd, allowed_groups=frozenset({"platform"})))
    assert (await directory.authenticate("alice", ALICE_PASSWORD)).username == "alice"
    with pytest.raises(NotAllowed):
        await directory.authenticate("bob", BOB_PASSWORD)


async def test_tls_is_verified_against_the_configured_ca(slapd: Slapd) -> None:
    """ldaps:// and StartTLS work with the directory's CA, and fail closed without it."""
    start_tls_url = slapd.url.replace("127.0.0.1", "localhost")
    for settings in (
        _settings(slapd, url=slapd.tls_url, ca_file=slapd.ca_file),
        _settings(slapd, url=start_tls_url, start_tls=True, ca_file=slapd.ca_file),
    ):
        user = await LdapDirectory(settings).authenticate("bob", BOB_PASSWORD)
        assert user.groups == ("auditors",)
        with pytest.raises(DirectoryUnavailable):
            await LdapDirectory(replace(settings, ca_file=None)).authenticate("bob", BOB_PASSWORD)


async def test_a_refused_service_account_is_reported_as_the_directorys_fault(slapd: Slapd) -> None:
    directory = LdapDirectory(_settings(slapd, bind_password="not-the-password"))
    with pytest.raises(DirectoryUnavailable, match="service account's bind failed") as raised:
        await directory.authenticate("alice", ALICE_PASSWORD)
    assert ALICE_PASSWORD not in str(raised.value) and "not-the-password" not in str(raised.value)
    with pytest.raises(DirectoryUnavailable):
        await directory.check()
    await LdapDirectory(_settings(slapd)).check()


async def test_a_directory_that_is_down_or_silent_fails_within_the_timeout(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        down_port = closed.getsockname()[1]
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does) and never answers
    try:
        for port in (down_port, silent.getsockname()[1]):
            settings = LdapSettings(
                name="corp",
                url=f"ldap://127.0.0.1:{port}",
                bind_dn=READER_DN,
                bind_password="x",
                user_base=PEOPLE,
                timeout_seconds=0.5,
            )
            started = time.monotonic()
            with pytest.raises(DirectoryUnavailable, match="corp"):
                await LdapDirectory(settings).authenticate("alice", ALICE_PASSWORD)
            assert time.monotonic() - started < 3.0
    finally:
        silent.close()


def test_plain_ldap_to_a_remote_directory_is_refused_at_configuration() -> None:
    common = {"name": "corp", "bind_dn": READER_DN, "bind_password": "x", "user_base": PEOPLE}
    with pytest.raises(ValueError, match="clear text"):
        LdapSettings(url="ldap://ldap.example.org", **common)  # type: ignore[arg-type]
    LdapSettings(url="ldap://ldap.example.org", start_tls=True, **common)  # type: ignore[arg-type]
    LdapSettings(url="ldaps://ldap.example.org", **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parenthesised"):
        LdapSettings(url="ldaps://ldap.example.org", user_filter="objectClass=person", **common)  # type: ignore[arg-type]


async def test_concurrent_sign_ins_each_get_their_own_answer(slapd: Slapd) -> None:
    directory = LdapDirectory(_settings(slapd))
    attempts = [("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD), ("alice", "wrong")] * 4
    results = await asyncio.gather(
        *(directory.authenticate(name, password) for name, password in attempts), return_exceptions=True
    )
    for (name, password), result in zip(attempts, results, strict=True):
        if password == "wrong":
            assert isinstance(result, InvalidCredentials)
        else:
            assert not isinstance(result, BaseException) and result.username == name
