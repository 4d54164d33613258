"""The public API of the operator: spec and status models of the custom resources, and their rules."""

from authyard_operator.spec.authserver import AuthServerSpec, AuthServerStatus
from authyard_operator.spec.oauthclient import OAuthClientSpec, OAuthClientStatus
from authyard_operator.spec.rules import Problem, parse_spec, validate_semantics

__all__ = [
    "AuthServerSpec",
    "AuthServerStatus",
    "OAuthClientSpec",
    "OAuthClientStatus",
    "Problem",
    "parse_spec",
    "validate_semantics",
]
