#!/usr/bin/env bash
# An Authyard issuer that a kind cluster's API server trusts, for the e2e workflow's kubectl-sign-in job
# (docs/kubernetes-sign-in.md explains the same configuration for a real cluster).
#
#   scripts/kind-oidc-issuer.sh DIR
#
# 1. Creates the docker network "kind" with a known gateway address (kind joins an existing network of that
#    name), so that the issuer's address is known before the cluster exists: https://GATEWAY:9443.
# 2. Runs `authserver serve` (embedded SQLite, as the README's quick start) on 127.0.0.1:8080 with that
#    issuer, and HAProxy terminating TLS on GATEWAY:9443 with a throwaway CA (conformance/tls.sh).
# 3. Writes DIR/authn/authentication.yaml (the API server's structured authentication configuration: the
#    issuer, its CA, audience `kubectl`, username and groups claim mappings) and DIR/kind.yaml (the cluster
#    configuration that mounts it into the control plane and passes --authentication-config).
# 4. Prints the variables the e2e test reads (AUTHYARD_E2E_OIDC_*), for "$GITHUB_ENV".
set -euo pipefail

dir="$(realpath -m "${1:?usage: scripts/kind-oidc-issuer.sh DIR}")"
root="$(cd "$(dirname "$0")/.." && pwd)"
gateway="${KIND_GATEWAY:-172.30.0.1}"
subnet="${KIND_SUBNET:-172.30.0.0/16}"
port=9443
issuer="https://$gateway:$port"
mkdir -p "$dir/authn" "$dir/data"

if ! docker network inspect kind >/dev/null 2>&1; then
  docker network create kind --subnet "$subnet" --gateway "$gateway" \
    -o com.docker.network.bridge.enable_ip_masquerade=true >/dev/null
fi

bash "$root/conformance/tls.sh" "$dir/tls" "$gateway" >/dev/null
cp "$dir/tls/ca.pem" "$dir/authn/ca.pem"

admin_token="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
(
  cd "$dir/data"
  AUTHSERVER_ISSUER="$issuer" AUTHSERVER_ADMIN_TOKEN="$admin_token" \
    nohup "$root/.venv/bin/authserver" serve --host 127.0.0.1 --port 8080 >authserver.log 2>&1 &
)
ready=""
for _ in $(seq 1 120); do
  if curl -sf http://127.0.0.1:8080/readyz >/dev/null; then ready=1; break; fi
  sleep 0.5
done
[[ -n "$ready" ]] || { cat "$dir/data/authserver.log" >&2; exit 1; }

AUTHYARD_TLS_BIND="$gateway:$port" AUTHYARD_TLS_PEM="$dir/tls/server.pem" AUTHYARD_BACKEND=127.0.0.1:8080 \
  haproxy -D -f "$root/conformance/haproxy.cfg" -p "$dir/haproxy.pid"
curl -sf --retry 20 --retry-delay 1 --retry-all-errors --cacert "$dir/tls/ca.pem" \
  "$issuer/.well-known/openid-configuration" >/dev/null

# Kubernetes' structured authentication configuration (apiserver.config.k8s.io/v1beta1, Kubernetes 1.30+).
{
  echo "apiVersion: apiserver.config.k8s.io/v1beta1"
  echo "kind: AuthenticationConfiguration"
  echo "jwt:"
  echo "  - issuer:"
  echo "      url: $issuer"
  echo "      audiences: [kubectl]"
  echo "      certificateAuthority: |"
  sed 's/^/        /' "$dir/tls/ca.pem"
  echo "    claimMappings:"
  echo "      username: {claim: preferred_username, prefix: \"authyard:\"}"
  echo "      groups: {claim: groups, prefix: \"authyard:\"}"
} >"$dir/authn/authentication.yaml"

cat >"$dir/kind.yaml" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraMounts:
      - hostPath: $dir/authn
        containerPath: /etc/kubernetes/authn
        readOnly: true
    kubeadmConfigPatches:
      - |
        kind: ClusterConfiguration
        apiServer:
          extraArgs:
            authentication-config: /etc/kubernetes/authn/authentication.yaml
          extraVolumes:
            - name: authn
              hostPath: /etc/kubernetes/authn
              mountPath: /etc/kubernetes/authn
              readOnly: true
              pathType: Directory
EOF

echo "AUTHYARD_E2E_OIDC_ISSUER=$issuer"
echo "AUTHYARD_E2E_OIDC_CA=$dir/tls/ca.pem"
echo "AUTHYARD_E2E_OIDC_ADMIN_TOKEN=$admin_token"
echo "AUTHYARD_E2E_OIDC_KIND_CONFIG=$dir/kind.yaml"
