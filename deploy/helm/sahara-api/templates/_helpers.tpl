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
A knob of deploy/defaults.env (files/defaults.env is a symlink to it) unless
the values give one: (dict "root" $ "key" "SAHARA_API_PORT" "value" .Values.api.port)
*/}}
{{- define "sahara-api.knob" -}}
{{- if kindIs "invalid" .value }}
{{- $line := regexFind (printf "(?m)^%s=.*$" .key) (.root.Files.Get "files/defaults.env") }}
{{- $line | required (printf "%s is not in files/defaults.env (a symlink to deploy/defaults.env)" .key) | trimPrefix (printf "%s=" .key) | trim }}
{{- else }}
{{- .value }}
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
