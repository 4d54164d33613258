"""Authyard side by side with peer servers, same machine, same session (``scripts/bench-peer.sh``).

Peers: Authly (Python, FastAPI + PostgreSQL, pinned from PyPI) for the endpoints it shares with Authyard,
and oidc-provider (Node.js, pinned from npm) for client_credentials and introspection, which Authly lacks.
"""

from bench.fleet import logger

log = logger("bench-peer")
