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

# The server image runs as this uid; the pod spec pins it so runAsNonRoot can be verified by the kubelet.
SERVER_UID = 10001
# The uid of the `postgres` user in the Alpine-based PgBouncer image.
PGBOUNCER_UID = 70

# Annotation keys the operator owns.
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"
LAST_KEY_ROTATION_ANNOTATION = f"{GROUP}/last-rotation"
