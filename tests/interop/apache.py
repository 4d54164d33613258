"""Apache httpd with Debian's ``mod_auth_openidc`` as a relying party on loopback.

One ``apache2 -DFOREGROUND`` with a configuration written here (nothing of /etc/apache2 is read): a
protected folder behind ``AuthType openid-connect``, the module's redirect URI inside it, and its info hook
(``<redirect_uri>?info=json``) to read the session it keeps (the ID token's claims, the tokens).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

from harness.processes import ServerProcess, clean_environment
from tests.support.programs import require_program

MODULES = Path("/usr/lib/apache2/modules")
START_TIMEOUT_SECONDS = 20.0
PROTECTED_PAGE = "<html><body><h1>The protected page</h1></body></html>\n"
SIGNED_OUT_PAGE = "<html><body><h1>Signed out of the app</h1></body></html>\n"


@dataclass(frozen=True)
class ApacheRelyingParty:
    base_url: str
    directory: Path

    @property
    def protected_url(self) -> str:
        return f"{self.base_url}/app/index.html"

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/app/redirect_uri"

    @property
    def signed_out_url(self) -> str:
        """A public page (outside the protected folder) to come back to after signing out."""
        return f"{self.base_url}/signed-out.html"

    def logout_url(self) -> str:
        """The module's logout: its session cleared, then the provider's end_session_endpoint (from discovery)
        with the ID token as id_token_hint and the signed-out page as post_logout_redirect_uri."""
        return f"{self.redirect_uri}?{urlencode({'logout': self.signed_out_url})}"

    @property
    def info_url(self) -> str:
        return f"{self.redirect_uri}?info=json"

    @property
    def backchannel_logout_uri(self) -> str:
        """The module's back-channel logout endpoint: its redirect URI with ``logout=backchannel``."""
        return f"{self.redirect_uri}?logout=backchannel"

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> list[str]:
        """One ``<method> <path?query> <status>`` line per request Apache answered, oldest first."""
        path = self.directory / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []


def render_config(
    directory: Path,
    port: int,
    issuer: str,
    client_id: str,
    client_secret: str,
    *,
    scope: str,
    extra: str = "",
) -> str:
    user = "www-data" if os.geteuid() == 0 else None  # root must hand the children to an unprivileged user
    return f"""
ServerRoot "{directory}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{directory}/httpd.pid"
ErrorLog "{directory}/error.log"
CustomLog "{directory}/access.log" "%m %U%q %>s"
LogLevel warn auth_openidc:info
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authn_core_module {MODULES}/mod_authn_core.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule authz_user_module {MODULES}/mod_authz_user.so
LoadModule mime_module {MODULES}/mod_mime.so
LoadModule auth_openidc_module {MODULES}/mod_auth_openidc.so
{f"User {user}" if user else ""}
{f"Group {user}" if user else ""}
TypesConfig /etc/mime.types
DocumentRoot "{directory}/htdocs"
Mutex file:{directory}

OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID {client_id}
OIDCClientSecret "{client_secret}"
OIDCRedirectURI http://127.0.0.1:{port}/app/redirect_uri
OIDCCryptoPassphrase "{os.urandom(24).hex()}"
OIDCScope "{scope}"
OIDCPKCEMethod S256
OIDCSessionType server-cache
OIDCCacheType shm
OIDCInfoHook iat access_token access_token_expires id_token userinfo refresh_token
{extra}

<Directory "{directory}/htdocs">
  Require all granted
</Directory>
<Location /app>
  AuthType openid-connect
  Require valid-user
</Location>
"""


@contextlib.contextmanager
def running_apache(
    port: int,
    issuer: str,
    client_id: str,
    client_secret: str,
    *,
    scope: str,
    extra: str = "",
) -> Iterator[ApacheRelyingParty]:
    apache = require_program("apache2", "AUTHYARD_REQUIRE_APACHE", "apache2")
    if not (MODULES / "mod_auth_openidc.so").exists():
        require_program("mod_auth_openidc.so", "AUTHYARD_REQUIRE_APACHE", "libapache2-mod-auth-openidc")
    # The children run as www-data (as a root-started Apache must): they need a path they may traverse,
    # which pytest's private temporary folders are not.
    directory = Path(tempfile.mkdtemp(prefix="authyard-apache-"))
    directory.chmod(0o755)
    (directory / "htdocs" / "app").mkdir(parents=True)
    (directory / "htdocs" / "app" / "index.html").write_text(PROTECTED_PAGE)
    (directory / "htdocs" / "ready.html").write_text("ready\n")
    (directory / "htdocs" / "signed-out.html").write_text(SIGNED_OUT_PAGE)
    config = directory / "httpd.conf"
    config.write_text(
        render_config(directory, port, issuer, client_id, client_secret, scope=scope, extra=extra)
    )
    process = ServerProcess(
        "apache2",
        [apache, "-f", str(config), "-DFOREGROUND"],
        directory,
        port,
        clean_environment(),
        "/ready.html",
    )
    process.start(START_TIMEOUT_SECONDS)
    try:
        yield ApacheRelyingParty(process.base_url, directory)
    finally:
        process.stop()
        shutil.rmtree(directory, ignore_errors=True)


def info(client: httpx.Client, relying_party: ApacheRelyingParty) -> dict[str, object]:
    response = client.get(relying_party.info_url)
    response.raise_for_status()
    data: dict[str, object] = response.json()
    return data
