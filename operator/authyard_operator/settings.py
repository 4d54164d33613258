"""The operator's own configuration, from ``AUTHYARD_*`` environment variables (set by the Helm chart)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from authyard_values.durations import Duration
from authyard_values.lists import CommaList


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTHYARD_", extra="ignore")

    watch_namespaces: CommaList = Field(default_factory=list, description="Namespaces to watch; empty: all.")
    resync_interval: Duration = Field(
        timedelta(seconds=60),
        description="Full reconcile of every object: drift, signing-key rotation, pruning.",
    )
    client_resync_interval: Duration = Field(
        timedelta(minutes=5), description="Full reconcile of every OAuthClient: its Secret and registration."
    )
    usage_interval: Duration = Field(
        timedelta(seconds=60),
        description="How often each AuthServer's client usage is read (one admin API call per page of 1000 "
        "clients) into its OAuthClients' status.usage and Unused condition.",
    )
    unregister_timeout: Duration = Field(
        timedelta(minutes=5),
        description="How long deleting an OAuthClient retries an unreachable AuthServer before it lets go.",
    )
    leader_election: bool = Field(True, description="Run as active/standby through a Lease.")
    lease_name: str = "authyard-operator"
    lease_namespace: str = Field("default", description="Usually the operator's own namespace.")
    lease_duration: Duration = Field(
        timedelta(seconds=15), description="A silent leader loses the lease after."
    )
    lease_renew_interval: Duration = Field(timedelta(seconds=5))
    identity: str = Field("", description="This replica's name in the Lease; default: hostname + pid.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log verbosity.")
    health_port: int = Field(8081, description="kopf liveness endpoint: GET /healthz.")
    metrics_port: int = Field(8082, description="Prometheus metrics: GET /metrics; 0 disables.")
    admin_url_template: str = Field(
        "http://{name}.{namespace}.svc:8080",
        description="How the operator reaches an AuthServer's admin API ({name}, {namespace}).",
    )
