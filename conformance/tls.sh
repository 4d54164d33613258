#!/usr/bin/env bash
# A throwaway certificate authority and a server certificate it signs, for HAProxy to terminate TLS in front
# of `authserver serve` (which speaks plain HTTP): the conformance suite only talks to https:// endpoints.
#
#   conformance/tls.sh DIR HOSTNAME-OR-IPv4
#
# DIR receives ca.pem (the CA certificate, for clients to trust), server.pem (certificate, chain and key in
# one file, as HAProxy's `crt` takes it) and nothing else; the CA's key is deleted once it has signed, so the
# CA can never sign again.
set -euo pipefail

dir="${1:?usage: conformance/tls.sh DIR HOSTNAME}"
host="${2:?usage: conformance/tls.sh DIR HOSTNAME}"
umask 077
mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 2 \
  -subj "/CN=Authyard conformance throwaway CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
  -keyout "$work/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -subj "/CN=$host" \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
# A name, or an address (the kind job's issuer is the kind network's gateway address).
san="DNS:$host"
[[ "$host" =~ ^[0-9.]+$ ]] && san="IP:$host"
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san" >"$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$dir/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -CAserial "$work/ca.srl" \
  -days 2 -sha256 -extfile "$work/ext" -out "$work/server.crt" 2>/dev/null
cat "$work/server.crt" "$dir/ca.pem" "$work/server.key" >"$dir/server.pem"
openssl verify -CAfile "$dir/ca.pem" "$work/server.crt" >/dev/null
echo "tls: $dir/server.pem for $host, signed by $dir/ca.pem (its key is gone)"
