#!/usr/bin/env bash
# What the e2e workflow prints when a job fails: the cluster's objects, events, the operator's logs and the
# auth server's logs in each namespace given.
#   scripts/kind-diagnostics.sh NAMESPACE...
# Every command may fail (the cluster may be half up): each is reported and the next one runs.
set -uo pipefail

kubectl get nodes -o wide
kubectl get authservers,oauthclients -A -o yaml
kubectl get all,pvc,hpa,pdb,lease,secrets -A
kubectl get events -A --sort-by=.lastTimestamp | tail -200
kubectl -n authyard-system logs -l app.kubernetes.io/name=authyard-operator --all-containers --prefix --tail=500
for namespace in "$@"; do
  kubectl -n "$namespace" logs -l app.kubernetes.io/name=authserver --all-containers --prefix --tail=200
done
exit 0
