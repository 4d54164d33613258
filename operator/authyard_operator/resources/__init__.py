"""The children of an AuthServer, one module each: pure functions from the spec to plain manifests."""
