{{/* Chart name. */}}
{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name when it already contains the chart's name (so
`helm install berth` makes a Service named "berth", and Kubernetes injects
BERTH_PORT, BERTH_SERVICE_HOST… into every pod of the namespace — which
Berth ignores with a warning, see docs/configuration.md).
*/}}
{{- define "berth.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "berth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: berth
{{- end }}

{{- define "berth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "berth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "berth.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "berth.scheme" -}}
{{- if .Values.tls.existingSecret }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/*
Validation: fail the render with a message that says what to set, rather
than deploy something that cannot start.
*/}}
{{- define "berth.validate" -}}
{{- if not (has .Values.mode (list "single" "scale-out")) }}
{{- fail (printf "mode must be \"single\" or \"scale-out\", not %q" .Values.mode) }}
{{- end }}
{{- if eq .Values.mode "single" }}
{{- if ne (int .Values.replicaCount) 1 }}
{{- fail (printf "mode: single runs exactly one replica (the embedded SQLite store has one writer); replicaCount is %d. For several replicas use mode: scale-out with storage.s3 and metadata.postgres." (int .Values.replicaCount)) }}
{{- end }}
{{- else }}
{{- if or (not .Values.storage.s3) (not .Values.metadata.postgres) }}
{{- fail "mode: scale-out needs storage.s3 (at least bucket) and metadata.postgres (at least existingSecret) values. These config keys arrive with Berth's scale-out support (issue 10); until a Berth release has it, use mode: single." }}
{{- end }}
{{- if not .Values.storage.s3.bucket }}
{{- fail "mode: scale-out: storage.s3.bucket is required" }}
{{- end }}
{{- if not .Values.metadata.postgres.existingSecret }}
{{- fail "mode: scale-out: metadata.postgres.existingSecret is required (a Secret whose key \"dsn\" is the PostgreSQL connection string)" }}
{{- end }}
{{- if lt (int .Values.replicaCount) 2 }}
{{- fail (printf "mode: scale-out expects replicaCount of 2 or more, not %d" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.auth.token.enabled (not .Values.auth.token.existingSecret) }}
{{- fail "mode: scale-out with auth.token.enabled needs auth.token.existingSecret: every replica must sign tokens with the same key" }}
{{- end }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled .Values.podDisruptionBudget.minAvailable .Values.podDisruptionBudget.maxUnavailable }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- end }}

{{/*
config.yaml: what the values decide, with .Values.config merged over it.
*/}}
{{- define "berth.config" -}}
{{- $http := dict "addr" (printf ":%d" (int .Values.service.port)) }}
{{- if .Values.tls.existingSecret }}
{{- $_ := set $http "tls" (dict "cert_file" "/etc/berth/tls/tls.crt" "key_file" "/etc/berth/tls/tls.key") }}
{{- end }}
{{- $storage := dict "dir" "/var/lib/berth" }}
{{- $cfg := dict "http" $http "storage" $storage "log" (dict "format" "json") }}
{{- $metrics := dict "enabled" .Values.metrics.enabled }}
{{- if .Values.metrics.enabled }}
{{- $_ := set $metrics "addr" (printf ":%d" (int .Values.metrics.port)) }}
{{- end }}
{{- $_ := set $cfg "metrics" $metrics }}
{{- $auth := dict }}
{{- if .Values.auth.htpasswd.existingSecret }}
{{- $_ := set $auth "htpasswd" "/etc/berth/auth/htpasswd" }}
{{- end }}
{{- if .Values.auth.token.enabled }}
{{- $token := dict "enabled" true }}
{{- if .Values.auth.token.existingSecret }}
{{- $_ := set $token "key_file" "/etc/berth/token/token-key.pem" }}
{{- end }}
{{- $_ := set $auth "token" $token }}
{{- end }}
{{- if $auth }}
{{- $_ := set $cfg "auth" $auth }}
{{- end }}
{{- if eq .Values.mode "scale-out" }}
{{- $s3 := omit .Values.storage.s3 "existingSecret" }}
{{- if .Values.storage.s3.existingSecret }}
{{- $_ := set $s3 "access_key_id_file" "/etc/berth/s3/access_key_id" }}
{{- $_ := set $s3 "secret_access_key_file" "/etc/berth/s3/secret_access_key" }}
{{- end }}
{{- $_ := set $storage "s3" $s3 }}
{{- $pg := omit .Values.metadata.postgres "existingSecret" }}
{{- $_ := set $pg "dsn_file" "/etc/berth/postgres/dsn" }}
{{- $_ := set $cfg "metadata" (dict "postgres" $pg) }}
{{- end }}
{{- toYaml (mustMergeOverwrite $cfg (deepCopy .Values.config)) }}
{{- end }}
