{{/* Names, labels and the derived runtime endpoint of the podstart chart. */}}

{{- define "podstart.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name when it already holds the chart name. */}}
{{- define "podstart.fullname" -}}
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

{{- define "podstart.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of the release (never the chart version). */}}
{{- define "podstart.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podstart.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "podstart.labels" -}}
helm.sh/chart: {{ include "podstart.chart" . }}
{{ include "podstart.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: node-agent
app.kubernetes.io/part-of: podstart
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "podstart.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "podstart.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "podstart.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Socket directory and file name of the runtime: the preset's, unless overridden. */}}
{{- define "podstart.runtimeSocketDir" -}}
{{- $presets := dict "containerd" "/run/containerd" "cri-o" "/var/run/crio" "k3s" "/run/k3s/containerd" }}
{{- default (get $presets .Values.runtime.preset) .Values.runtime.socketDir | trimSuffix "/" }}
{{- end }}

{{- define "podstart.runtimeSocketName" -}}
{{- $presets := dict "containerd" "containerd.sock" "cri-o" "crio.sock" "k3s" "containerd.sock" }}
{{- default (get $presets .Values.runtime.preset) .Values.runtime.socketName }}
{{- end }}

{{- define "podstart.runtimeEndpoint" -}}
{{- printf "unix://%s/%s" (include "podstart.runtimeSocketDir" .) (include "podstart.runtimeSocketName" .) }}
{{- end }}

{{- define "podstart.apiSocket" -}}
{{- printf "%s/podstart.sock" (.Values.podstart.socketDir | trimSuffix "/") }}
{{- end }}

{{/* host:port of the metrics server; IPv6 addresses bracketed. */}}
{{- define "podstart.metricsListen" -}}
{{- $a := .Values.podstart.metricsAddress }}
{{- if contains ":" $a }}
{{- printf "[%s]:%v" $a .Values.podstart.metricsPort }}
{{- else }}
{{- printf "%s:%v" $a .Values.podstart.metricsPort }}
{{- end }}
{{- end }}
