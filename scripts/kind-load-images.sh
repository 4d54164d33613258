#!/usr/bin/env bash
# Builds both images of a checkout with Docker and loads them into the kind cluster $KIND_CLUSTER, so the
# cluster never pulls them:
#   scripts/kind-load-images.sh CHECKOUT OPERATOR_IMAGE AUTHSERVER_IMAGE
# CHECKOUT is this repository or another commit's checkout (the e2e workflow's upgrade job builds the
# previous commit's images this way).
set -euo pipefail

if (($# != 3)); then
  echo "usage: $0 CHECKOUT OPERATOR_IMAGE AUTHSERVER_IMAGE" >&2
  exit 2
fi
checkout="$1" operator_image="$2" authserver_image="$3"
: "${KIND_CLUSTER:?KIND_CLUSTER names the kind cluster to load the images into}"

docker build -f "$checkout/images/Dockerfile" --target authserver -t "$authserver_image" "$checkout"
docker build -f "$checkout/images/Dockerfile" --target operator -t "$operator_image" "$checkout"
kind load docker-image "$authserver_image" "$operator_image" --name "$KIND_CLUSTER"
docker image inspect --format '{{index .RepoTags 0}} {{.Id}} {{.Size}} bytes' "$authserver_image" "$operator_image"
