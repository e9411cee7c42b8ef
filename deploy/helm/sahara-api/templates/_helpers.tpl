{{/* Chart name, overridable. */}}
{{- define "sahara-api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart> unless the release name already contains it. */}}
{{- define "sahara-api.fullname" -}}
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

{{- define "sahara-api.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "sahara-api.labels" -}}
helm.sh/chart: {{ include "sahara-api.chart" . }}
{{ include "sahara-api.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels; add app.kubernetes.io/component per workload. */}}
{{- define "sahara-api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sahara-api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sahara-api.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sahara-api.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding OS_DATABASE__CONNECTION, OS_DEFAULT__TRANSPORT_URL, OS_KEYSTONE_AUTHTOKEN__PASSWORD. */}}
{{- define "sahara-api.secretName" -}}
{{- default (include "sahara-api.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "sahara-api.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The rules between values, in one place (Bitnami's validateValues): each
broken rule is one line naming the values and the fix; the chart fails with
all of them. The same rules hold on a host, where the launcher checks the
knobs (sahara_api_knobs.py); single values are bounded by values.schema.json.
*/}}
{{- define "sahara-api.validateValues" -}}
{{- $api := .Values.api }}
{{- $messages := list }}
{{- if and .Values.metrics.enabled (eq (int $api.port) (int .Values.metrics.port)) }}
{{- $messages = append $messages (printf "metrics.port (%d) is the API's port: set another, or metrics.enabled=false" (int .Values.metrics.port)) }}
{{- end }}
{{- if le (int $api.stopTimeoutSeconds) (int $api.timeoutSeconds) }}
{{- $messages = append $messages (printf "api.stopTimeoutSeconds (%d) must be above api.timeoutSeconds (%d), or a stop kills requests still running" (int $api.stopTimeoutSeconds) (int $api.timeoutSeconds)) }}
{{- end }}
{{- if and $api.tls.enabled (ne $api.front "nginx") }}
{{- $messages = append $messages "api.tls.enabled needs api.front=nginx: TLS ends at the nginx front (docs/security.md)" }}
{{- end }}
{{- if and $api.tls.enabled (not $api.tls.secretName) }}
{{- $messages = append $messages "api.tls.enabled needs api.tls.secretName: a kubernetes.io/tls Secret with tls.crt and tls.key" }}
{{- end }}
{{- if and $api.elastic (lt (int $api.workers) 2) }}
{{- $messages = append $messages "api.elastic needs api.workers >= 2 to grow to: raise api.workers or set api.elastic=false" }}
{{- end }}
{{- if $messages }}
{{- fail (join "\n" $messages) }}
{{- end }}
{{- end }}

{{/*
Environment of every Sahara container: the image reads Sahara options as
OS_<GROUP>__<OPTION> (oslo.config), the same names as `docker run -e`.
*/}}
{{- define "sahara-api.env" -}}
- name: OS_KEYSTONE_AUTHTOKEN__AUTH_URL
  value: {{ .Values.keystone.authUrl | quote }}
- name: OS_KEYSTONE_AUTHTOKEN__WWW_AUTHENTICATE_URI
  value: {{ default .Values.keystone.authUrl .Values.keystone.wwwAuthenticateUri | quote }}
- name: OS_KEYSTONE_AUTHTOKEN__INTERFACE
  value: {{ .Values.keystone.interface | quote }}
- name: OS_KEYSTONE_AUTHTOKEN__USERNAME
  value: {{ .Values.keystone.username | quote }}
- name: OS_KEYSTONE_AUTHTOKEN__PROJECT_NAME
  value: {{ .Values.keystone.projectName | quote }}
{{- with .Values.keystone.memcachedServers }}
- name: OS_KEYSTONE_AUTHTOKEN__MEMCACHED_SERVERS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.plugins }}
- name: OS_DEFAULT__PLUGINS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
