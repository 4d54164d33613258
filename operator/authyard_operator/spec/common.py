"""Building blocks shared by the AuthServer and OAuthClient models.

The models are the single source of truth of the public API: the CRD schemas are generated from them
(``authyard_operator.codegen.crds``), and the operator parses every spec it reads through them. Hence a few
rules: every field has a ``description`` (it becomes ``kubectl explain``), constraints use only what the
Kubernetes structural schema can express (``ge``/``le``, never ``gt``/``lt``), and every list and string is
bounded so that the CEL rules stay within the API server's cost budget.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from authyard_values.durations import DURATION_PATTERN, parse_duration

# Kubernetes' own regular expression for resource quantities (250m, 1Gi, 0.5).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a pattern


class SpecModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors (the API server prunes them,
    so only typos in tests and examples can reach this)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _valid_duration(value: str) -> str:
    parse_duration(value)
    return value


# Go-style duration strings ("15m", "720h", "1h30m") kept as written, so that a round trip through the
# operator never rewrites what the user applied; `seconds_of` reads them.
Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32), AfterValidator(_valid_duration)]


def _valid_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and (len(value) > 64 or not re.match(QUANTITY_PATTERN, value)):
        raise ValueError(f"{value!r} is not a Kubernetes quantity; write it like 250m, 0.5, 512Mi or 1Gi")
    return value


# One validator for both spellings, so that an error names the field once (not once per union member).
Quantity = Annotated[
    int | str,
    AfterValidator(_valid_quantity),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": QUANTITY_PATTERN}]}),
]
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]
# Scope tokens per RFC 6749 §3.3: printable ASCII without space, double quote or backslash.
Scope = Annotated[str, Field(pattern=r"^[\x21\x23-\x5B\x5D-\x7E]+$", min_length=1, max_length=256)]
Audience = Annotated[str, Field(pattern=r"^\S+$", min_length=1, max_length=512)]
DnsSubdomain = Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253)]


def seconds_of(duration: str) -> float:
    return parse_duration(duration).total_seconds()


def timedelta_of(duration: str) -> timedelta:
    return parse_duration(duration)


class SecretKeyRef(SpecModel):
    """A key in a Secret in the same namespace as the resource."""

    name: DnsSubdomain = Field(description="Name of the Secret, in the namespace of this resource.")
    key: str = Field(
        pattern=SECRET_KEY_PATTERN, min_length=1, max_length=253, description="Key within the Secret's data."
    )


class ConfigMapKeyRef(SpecModel):
    """A key in a ConfigMap in the same namespace as the resource."""

    name: DnsSubdomain = Field(description="Name of the ConfigMap, in the namespace of this resource.")
    key: str = Field(
        pattern=SECRET_KEY_PATTERN,
        min_length=1,
        max_length=253,
        description="Key within the ConfigMap's data.",
    )


class ResourceRequirements(SpecModel):
    """Compute resources of the auth server container, as in a Pod spec."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=8,
        description="Minimum resources the scheduler reserves (e.g. cpu: 250m, memory: 256Mi). "
        "The HPA's utilization targets are percentages of these requests.",
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=8,
        description="Maximum resources the container may use (e.g. memory: 512Mi).",
    )


class RateLimit(SpecModel):
    """A token-endpoint budget for the whole AuthServer: every pod and worker together, each enforcing its
    share (the budget divided by the workers it counts live)."""

    requests_per_second: float = Field(
        ge=0,
        le=1000000,
        description="Sustained token requests per second for the whole AuthServer (above 0).",
    )
    burst: int = Field(
        ge=1,
        le=1000000,
        description="Token requests admitted at once after a quiet spell (each worker keeps at least one).",
    )


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(SpecModel):
    """A status condition in the shape of metav1.Condition (what kstatus, Argo CD and Flux read)."""

    type: str = Field(max_length=316, description="Type of the condition: Ready, Progressing or Degraded.")
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        "", max_length=1024, description="Machine-readable CamelCase reason for the last transition."
    )
    message: str = Field(
        "", max_length=32768, description="Human-readable details about the last transition."
    )
    last_transition_time: str | None = Field(
        None,
        json_schema_extra={"format": "date-time"},
        description="When the condition last changed status (RFC 3339).",
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation the condition was computed from."
    )


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]
