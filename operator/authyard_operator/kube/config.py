"""Where the Kubernetes API is and how the operator proves who it is: in a pod, the service account;
elsewhere, the current context of KUBECONFIG (``~/.kube/config`` by default).

The in-cluster rules are client-go's: ``KUBERNETES_SERVICE_HOST``/``_PORT``, the mounted CA, and the mounted
token, which the kubelet rotates, so it is re-read rather than kept (credentials.py). Kubeconfig files
merge as kubectl merges them: the first file that names a context, cluster or user wins, and relative
paths are relative to the file that holds them.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(Exception):
    """No usable cluster configuration; the message says what is missing or wrong."""


@dataclass(frozen=True)
class ExecPlugin:
    """A kubeconfig ``user.exec`` credential plugin (client.authentication.k8s.io): a command that prints
    an ExecCredential with a token (cloud providers' CLIs: EKS, GKE, AKS)."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = "client.authentication.k8s.io/v1"
    cwd: str | None = None


@dataclass(frozen=True)
class ClusterConfig:
    server: str
    ca_file: str | None = None
    ca_pem: str | None = None
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    cert_pem: str | None = field(default=None, repr=False)
    key_pem: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    exec_plugin: ExecPlugin | None = None
    proxy: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """The server's CA (or the system's), and the client certificate when the user has one."""
        try:
            context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_pem)
            if self.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.cert_file or self.cert_pem:
                with tempfile.TemporaryDirectory(prefix="authyard-kube-") as directory:
                    # ssl loads a certificate chain only from files: the PEM lives there for this instant.
                    cert = self.cert_file or _write_private(Path(directory) / "client.crt", self.cert_pem)
                    key = self.key_file or _write_private(Path(directory) / "client.key", self.key_pem)
                    context.load_cert_chain(certfile=cert, keyfile=key)
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
            raise ConfigError(f"cannot load the TLS configuration for {self.server}: {error}") from None
        return context


def _write_private(path: Path, text: str | None) -> str:
    if not text:
        raise ConfigError(f"a client certificate needs both a certificate and a key ({path.name} missing)")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return str(path)


def load(environ: Mapping[str, str] | None = None) -> ClusterConfig:
    """In a pod: the service account; elsewhere: KUBECONFIG (as kopf and kubectl do)."""
    environ = os.environ if environ is None else environ
    return in_cluster(environ) or from_kubeconfig(environ)


def in_cluster(environ: Mapping[str, str], directory: Path | None = None) -> ClusterConfig | None:
    """The service account's view of the API, or None outside a pod."""
    directory = directory or SERVICE_ACCOUNT
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    token = directory / "token"
    if not host or not port or not token.is_file():
        return None
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    ca = directory / "ca.crt"
    return ClusterConfig(
        server=f"https://{host}:{port}", ca_file=str(ca) if ca.is_file() else None, token_file=str(token)
    )


def kubeconfig_paths(environ: Mapping[str, str]) -> list[Path]:
    listed = [Path(p).expanduser() for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p.strip()]
    return listed or [Path("~/.kube/config").expanduser()]


def from_kubeconfig(environ: Mapping[str, str], context_name: str | None = None) -> ClusterConfig:
    """The current context (or ``context_name``) of the merged kubeconfig files."""
    current: str | None = None
    entries: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"contexts": {}, "clusters": {}, "users": {}}
    paths = [path for path in kubeconfig_paths(environ) if path.is_file()]
    if not paths:
        raise ConfigError(
            "no Kubernetes configuration: not in a pod (KUBERNETES_SERVICE_HOST and a service-account token) "
            f"and no kubeconfig at {os.pathsep.join(map(str, kubeconfig_paths(environ)))}"
        )
    for path in paths:
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read kubeconfig {path}: {error}") from None
        if not isinstance(document, dict):
            raise ConfigError(f"kubeconfig {path} is not a mapping")
        current = current or document.get("current-context") or None
        for section, items in entries.items():
            item: Any
            for item in document.get(section) or []:
                kind = section[:-1]
                if isinstance(item, dict) and item.get("name") and item["name"] not in items:
                    items[item["name"]] = (item.get(kind) or {}, path.parent)
    name = context_name or current
    if not name:
        raise ConfigError("kubeconfig has no current-context")
    context = _entry(entries, "contexts", name)[0]
    cluster, cluster_dir = _entry(entries, "clusters", context.get("cluster"))
    user, user_dir = _entry(entries, "users", context.get("user")) if context.get("user") else ({}, None)
    if not cluster.get("server"):
        raise ConfigError(f"kubeconfig cluster {context.get('cluster')!r} has no server")
    if user.get("auth-provider"):
        raise ConfigError("kubeconfig auth-provider plugins are not supported: use an exec plugin")
    return ClusterConfig(
        server=str(cluster["server"]),
        ca_file=_path(cluster.get("certificate-authority"), cluster_dir),
        ca_pem=_pem(cluster.get("certificate-authority-data"), "certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=_path(user.get("client-certificate"), user_dir),
        key_file=_path(user.get("client-key"), user_dir),
        cert_pem=_pem(user.get("client-certificate-data"), "client-certificate-data"),
        key_pem=_pem(user.get("client-key-data"), "client-key-data"),
        token=user.get("token") or None,
        token_file=_path(user.get("tokenFile"), user_dir),
        username=user.get("username") or None,
        password=user.get("password") or None,
        exec_plugin=_exec_plugin(user.get("exec"), user_dir),
        proxy=cluster.get("proxy-url") or None,
    )


def _entry(
    entries: dict[str, dict[str, tuple[dict[str, Any], Path]]], section: str, name: Any
) -> tuple[dict[str, Any], Path | None]:
    found = entries[section].get(str(name)) if name else None
    if found is None:
        raise ConfigError(f"kubeconfig has no {section[:-1]} named {name!r}")
    return found


def _path(value: Any, base: Path | None) -> str | None:
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() or base is None else base / path)


def _pem(value: Any, what: str) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise ConfigError(f"kubeconfig {what} is not base64-encoded PEM") from None


def _exec_plugin(value: Any, base: Path | None) -> ExecPlugin | None:
    if not value:
        return None
    if not isinstance(value, dict) or not value.get("command"):
        raise ConfigError("kubeconfig user.exec needs a command")
    command = str(value["command"])
    if os.sep in command and not Path(command).is_absolute() and base is not None:
        command = str(base / command)  # a relative path, not a name on PATH
    return ExecPlugin(
        command=command,
        args=tuple(str(arg) for arg in value.get("args") or ()),
        env=tuple((str(item["name"]), str(item["value"])) for item in value.get("env") or ()),
        api_version=str(value.get("apiVersion") or "client.authentication.k8s.io/v1"),
        cwd=str(base) if base is not None else None,
    )
