"""Names shared by the CRDs, the renderers and the runtime: changing one of these is an API change."""

from __future__ import annotations

GROUP = "authyard.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

FIELD_MANAGER = "authyard-operator"

DEFAULT_IMAGE = "authyard/authserver:0.1.0"
DEFAULT_PGBOUNCER_IMAGE = "edoburu/pgbouncer:v1.24.1-p0"

HTTP_PORT = 8080
PGBOUNCER_PORT = 6432
# The name the server pods connect to on PgBouncer. PgBouncer's config parser accepts only
# [A-Za-z0-9_.*-] in a key, quoted or not; a fixed alias keeps any real database name (which may hold
# other characters) in the quoted `dbname=` value, where every version accepts it.
PGBOUNCER_DATABASE_ALIAS = "authyard"

# The server image runs as this uid; the pod spec pins it so runAsNonRoot can be verified by the kubelet.
SERVER_UID = 10001
# The uid of the `postgres` user in the Alpine-based PgBouncer image.
PGBOUNCER_UID = 70

# Annotation keys the operator owns.
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"
LAST_KEY_ROTATION_ANNOTATION = f"{GROUP}/last-rotation"

# Pod shutdown (the server's graceful_shutdown): on SIGTERM a pod keeps serving with readiness failing while
# the Service drops it, then finishes in-flight requests; the kubelet's SIGKILL comes only after both.
SHUTDOWN_DRAIN_SECONDS = 5
SHUTDOWN_TIMEOUT_SECONDS = 20
TERMINATION_GRACE_PERIOD_SECONDS = SHUTDOWN_DRAIN_SECONDS + SHUTDOWN_TIMEOUT_SECONDS + 5
