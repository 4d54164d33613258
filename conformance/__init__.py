"""The OpenID Foundation conformance suite run against Authyard (.github/workflows/conformance.yml)."""
