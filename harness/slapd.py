"""A throwaway OpenLDAP directory (Debian's ``slapd``) on loopback, for the LDAP sign-in tests.

Its own configuration file, database directory and TLS certificate (signed by a throwaway CA whose
certificate tests trust), listening for ``ldap://`` (StartTLS offered) and ``ldaps://`` on two free ports.
Access is what a real directory grants: anonymous clients may only bind, the read-only service account
reads everything but passwords, every user may read their own entry. Seeded over LDAP by the tests.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ldap3 import Connection, Server
from ldap3.core.exceptions import LDAPException

from harness.ports import free_port

SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
READER_DN = f"cn=reader,ou=services,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
START_TIMEOUT_SECONDS = 30.0

_CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {directory}/slapd.pid
TLSCACertificateFile {directory}/ca.pem
TLSCertificateFile {directory}/server.pem
TLSCertificateKeyFile {directory}/server.key
database mdb
maxsize 104857600
suffix "{suffix}"
rootdn "{admin}"
rootpw {admin_password}
directory {directory}/data
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by dn.exact="{reader}" read by self read by * none
"""


def _certificates(directory: Path) -> None:
    """ca.pem (to trust), server.pem and server.key (for 127.0.0.1 and localhost); the CA key is dropped."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Authyard test LDAP CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


class Slapd:
    """``slapd`` serving ``SUFFIX`` from ``directory``; :meth:`start`, :meth:`stop` (any number of times)."""

    def __init__(self, directory: Path, admin_password: str, reader_password: str) -> None:
        self.directory = directory
        self.admin_password = admin_password
        self.reader_password = reader_password
        self.port = free_port()
        self.tls_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"ldaps://localhost:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def log_path(self) -> Path:
        return self.directory / "slapd.log"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "data").mkdir(exist_ok=True)
        if not self.ca_file.exists():
            _certificates(self.directory)
        config = self.directory / "slapd.conf"
        config.write_text(
            _CONFIG.format(
                directory=self.directory,
                suffix=SUFFIX,
                admin=ADMIN_DN,
                admin_password=self.admin_password,
                reader=READER_DN,
            )
        )
        config.chmod(0o600)
        urls = f"{self.url}/ ldaps://127.0.0.1:{self.tls_port}/"
        with self.log_path.open("ab") as log:
            # -d: stay in the foreground (its log on stderr), so that stop() is a signal to this process.
            self.process = subprocess.Popen(
                ["/usr/sbin/slapd", "-d", "none", "-h", urls, "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"slapd exited with {self.process.returncode}:\n{self.log_path.read_text()}"
                )
            try:
                with self.admin():
                    return
            except LDAPException:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"slapd not ready in time:\n{self.log_path.read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)

    @contextlib.contextmanager
    def admin(self) -> Iterator[Connection]:
        """A connection bound as the directory's root DN (for seeding)."""
        connection = Connection(
            Server(self.url, connect_timeout=2),
            ADMIN_DN,
            self.admin_password,
            auto_bind=True,
            receive_timeout=5,
        )
        try:
            yield connection
        finally:
            connection.unbind()

    def seed_base(self) -> None:
        """The suffix, ou=people, ou=groups, ou=services and the read-only service account."""
        with self.admin() as connection:
            _add(connection, SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
            for unit in ("people", "groups", "services"):
                _add(connection, f"ou={unit},{SUFFIX}", ["organizationalUnit"], {"ou": unit})
            _add(
                connection,
                READER_DN,
                ["organizationalRole", "simpleSecurityObject"],
                {"cn": "reader", "userPassword": self.reader_password},
            )

    def add_user(self, uid: str, password: str, **attributes: str | Sequence[str]) -> str:
        """An inetOrgPerson under ou=people; its DN."""
        dn = f"uid={uid},{PEOPLE}"
        defaults: dict[str, str | Sequence[str]] = {"cn": uid, "sn": uid, "userPassword": password}
        with self.admin() as connection:
            _add(connection, dn, ["inetOrgPerson"], {"uid": uid, **defaults, **attributes})
        return dn

    def add_group(self, name: str, members: Sequence[str]) -> str:
        """A groupOfNames under ou=groups (members: DNs); its DN."""
        dn = f"cn={name},{GROUPS}"
        with self.admin() as connection:
            _add(connection, dn, ["groupOfNames"], {"cn": name, "member": list(members)})
        return dn

    def modify(self, dn: str, changes: Mapping[str, object]) -> None:
        with self.admin() as connection:
            if not connection.modify(dn, changes):  # type: ignore[arg-type]  # ldap3's changes mapping
                raise RuntimeError(f"modify {dn}: {connection.result}")


def _add(connection: Connection, dn: str, classes: list[str], attributes: Mapping[str, object]) -> None:
    if not connection.add(dn, classes, dict(attributes)):
        raise RuntimeError(f"add {dn}: {connection.result}")
