{{/* Chart name, truncated to the 63 characters Kubernetes allows in names. */}}
{{- define "sparta.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: <release>-sparta unless the release already says sparta. */}}
{{- define "sparta.fullname" -}}
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

{{- define "sparta.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sparta.labels" -}}
helm.sh/chart: {{ include "sparta.chart" . }}
{{ include "sparta.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sparta.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sparta.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sparta.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sparta.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Whole seconds (rounded up) in a Sparta duration: 1500ms, 90s, 2m, 1h or bare seconds. */}}
{{- define "sparta.seconds" -}}
{{- $d := toString . | trim }}
{{- if not (regexMatch "^[0-9]+(ms|s|m|h)?$" $d) }}
{{- fail (printf "%q is not a Sparta duration (e.g. 30s, 2m)" $d) }}
{{- end }}
{{- $n := regexFind "^[0-9]+" $d | int }}
{{- $unit := regexFind "[a-z]+$" $d }}
{{- if eq $unit "ms" }}{{ div (add $n 999) 1000 }}
{{- else if eq $unit "m" }}{{ mul $n 60 }}
{{- else if eq $unit "h" }}{{ mul $n 3600 }}
{{- else }}{{ $n }}
{{- end }}
{{- end }}

{{/* The --storage URL for the configured backend. */}}
{{- define "sparta.storageUrl" -}}
{{- $s := .Values.storage }}
{{- if eq $s.type "filesystem" }}
{{- $s.filesystem.mountPath }}
{{- else if eq $s.type "s3" }}
{{- if not $s.s3.bucket }}{{ fail "storage.s3.bucket is required when storage.type is s3" }}{{ end }}
{{- $prefix := trimAll "/" $s.s3.prefix }}
{{- if $prefix }}{{ printf "s3://%s/%s" $s.s3.bucket $prefix }}{{ else }}{{ printf "s3://%s" $s.s3.bucket }}{{ end }}
{{- else if eq $s.type "memory" }}
{{- "memory://" }}
{{- else }}
{{- fail (printf "storage.type must be filesystem, s3 or memory, not %q" $s.type) }}
{{- end }}
{{- end }}

{{/* Checks that stop a broken release before it reaches the cluster. */}}
{{- define "sparta.validate" -}}
{{- if not .Values.config.upstream }}
{{- fail "config.upstream is required: your upstream proxies in GOPROXY syntax, e.g. https://goproxy.example.com" }}
{{- end }}
{{- $s3 := .Values.storage.s3 }}
{{- if and (eq .Values.storage.type "s3") $s3.endpoint (not $s3.pathStyle) }}
{{- if not (regexMatch (printf "^https?://%s[.]" (regexQuoteMeta $s3.bucket)) $s3.endpoint) }}
{{- fail (printf "storage.s3.endpoint %q with pathStyle: false must be the bucket's own URL (https://%s.<host>): object_store sends virtual-hosted requests to the endpoint as is. Use pathStyle: true for a service endpoint such as MinIO's." $s3.endpoint $s3.bucket) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.storage.type "s3") $s3.allowHttp (not $s3.endpoint) }}
{{- fail "storage.s3.allowHttp needs storage.s3.endpoint (an http:// S3-compatible endpoint)" }}
{{- end }}
{{- if eq .Values.storage.type "filesystem" }}
{{- if or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled }}
{{- fail "storage.type=filesystem keeps modules on one ReadWriteOnce volume: use replicaCount: 1 and autoscaling.enabled: false, or storage.type=s3 to scale out" }}
{{- end }}
{{- end }}
{{- if eq .Values.storage.type "memory" }}
{{- if or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled }}
{{- fail "storage.type=memory is per pod and lost on restart: use it with replicaCount: 1 only (tests, demos)" }}
{{- end }}
{{- end }}
{{- $grace := include "sparta.seconds" .Values.config.shutdownGrace | int }}
{{- if .Values.terminationGracePeriodSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add $grace (int .Values.preStopSleepSeconds)) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed config.shutdownGrace (%ds) plus preStopSleepSeconds (%d), or Kubernetes kills Sparta mid-shutdown" (int .Values.terminationGracePeriodSeconds) $grace (int .Values.preStopSleepSeconds)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Kubernetes waits this long after SIGTERM: the preStop sleep, Sparta's grace, and a margin. */}}
{{- define "sparta.terminationGrace" -}}
{{- if .Values.terminationGracePeriodSeconds }}
{{- .Values.terminationGracePeriodSeconds }}
{{- else }}
{{- add (include "sparta.seconds" .Values.config.shutdownGrace | int) (int .Values.preStopSleepSeconds) 15 }}
{{- end }}
{{- end }}
