{{/* Names and labels shared by every template. */}}

{{- define "authyard-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "authyard-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "authyard-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "authyard-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "authyard-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "authyard-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: authyard
app.kubernetes.io/component: operator
{{- end -}}

{{- define "authyard-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "authyard-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "authyard-operator.leaseName" -}}
{{- default (include "authyard-operator.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{- define "authyard-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
RBAC. One rule per resource, so that a review (and the RBAC test) reads exactly what is granted.
The source is the operator's registry, operator/authyard_operator/kube/registry.py (RESOURCES); the test
tests/packaging/test_chart_rbac.py fails when these rules grant more or less than it.
*/}}

{{/* Namespaced resources, granted in every watched namespace (or cluster-wide when all are watched). */}}
{{- define "authyard-operator.namespacedRules" -}}
# The custom resources: kopf lists and watches them and patches finalizers and annotations.
- apiGroups: ["authyard.dev"]
  resources: ["authservers"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["authyard.dev"]
  resources: ["oauthclients"]
  verbs: ["get", "list", "watch", "patch"]
# Status is a subresource of both CRDs: kopf and the operator patch it there.
- apiGroups: ["authyard.dev"]
  resources: ["authservers/status", "oauthclients/status"]
  verbs: ["patch"]
# Children carry ownerReferences with blockOwnerDeletion: clusters running the
# OwnerReferencesPermissionEnforcement admission plugin require update on the owner's finalizers.
- apiGroups: ["authyard.dev"]
  resources: ["authservers/finalizers", "oauthclients/finalizers"]
  verbs: ["update"]
# Children of an AuthServer: server-side applied (patch), read back (get), pruned (delete).
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "patch", "delete"]
# ConfigMaps are also watched: a change to an OAuthClient's JWKS ConfigMap reaches its registration.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "patch", "delete", "list", "watch"]
# Credentials Secrets are replaced whole (create/update with resourceVersion).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "patch", "delete", "create", "update"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "patch", "delete"]
# Deployments are also watched: their rollout drives the AuthServer's Ready condition.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "patch", "delete", "list", "watch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["get", "patch", "delete"]
# Kubernetes Events about what the operator did or could not do.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* Cluster-scoped reads, needed in both modes. */}}
{{- define "authyard-operator.clusterScopedRules" -}}
# kopf follows namespaces; the operator never changes them.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
# kopf observes CRDs; the operator checks whether the ServiceMonitor CRD exists.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
# AuthServers trusting their own cluster's service-account tokens (spec.workloadIdentity.kubernetes): the
# operator reads the cluster's issuer from its discovery document, and binds the server pods' ServiceAccount
# to system:service-account-issuer-discovery (one ClusterRoleBinding per AuthServer, deleted with it).
- nonResourceURLs: ["/.well-known/openid-configuration"]
  verbs: ["get"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["clusterrolebindings"]
  verbs: ["get", "patch", "delete"]
# Binding a ClusterRole needs its permissions or bind on it (RBAC's escalation check): bind, on this one only.
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["clusterroles"]
  resourceNames: ["system:service-account-issuer-discovery"]
  verbs: ["bind"]
{{- end -}}

{{/* A duration value (30s, 5m, 1h30m, 2d) in seconds, for PromQL comparisons. */}}
{{- define "authyard-operator.seconds" -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)" . -1 -}}
{{- $number := float64 (regexFind "^[0-9]+(\\.[0-9]+)?" .) -}}
{{- $unit := regexFind "(ms|s|m|h|d)$" . -}}
{{- $factor := get (dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0) $unit -}}
{{- $total = addf $total (mulf $number $factor) -}}
{{- end -}}
{{- $total -}}
{{- end -}}
