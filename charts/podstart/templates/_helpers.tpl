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

{{/* "true" when the metrics server binds a loopback address. */}}
{{- define "podstart.metricsLoopback" -}}
{{- $a := .Values.podstart.metricsAddress }}
{{- if or (hasPrefix "127." $a) (eq $a "::1") (eq $a "localhost") }}true{{ end }}
{{- end }}

{{/* A probe from values; httpGet.host set to the metrics address when that is loopback. */}}
{{- define "podstart.probe" -}}
{{- $p := deepCopy .probe }}
{{- if and .host (hasKey $p "httpGet") }}
{{- if not (hasKey $p.httpGet "host") }}
{{- $_ := set $p.httpGet "host" .host }}
{{- end }}
{{- end }}
{{- toYaml $p }}
{{- end }}

{{/* tcp://host:port of the gRPC TCP listener; IPv6 addresses bracketed. */}}
{{- define "podstart.grpcListen" -}}
{{- $a := .Values.grpc.tcp.address }}
{{- if contains ":" $a }}
{{- printf "tcp://[%s]:%v" $a .Values.grpc.tcp.port }}
{{- else }}
{{- printf "tcp://%s:%v" $a .Values.grpc.tcp.port }}
{{- end }}
{{- end }}

{{/* The Secret holding the gRPC server certificate (empty with tls.hostPath). */}}
{{- define "podstart.grpcTLSSecret" -}}
{{- if not .Values.grpc.tls.hostPath }}
{{- if .Values.grpc.tls.secretName }}
{{- .Values.grpc.tls.secretName }}
{{- else if .Values.grpc.tls.certManager.enabled }}
{{- printf "%s-grpc-tls" (include "podstart.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The ConfigMap of the authorization policy; empty without one. */}}
{{- define "podstart.authzConfigMap" -}}
{{- if .Values.authz.existingConfigMap }}
{{- .Values.authz.existingConfigMap }}
{{- else if .Values.authz.rules }}
{{- printf "%s-authz" (include "podstart.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Where the mounted TLS files and policy are, inside the container. */}}
{{- define "podstart.tlsDir" -}}/etc/podstart/tls/server{{- end }}
{{- define "podstart.clientCADir" -}}/etc/podstart/tls/client-ca{{- end }}
{{- define "podstart.authzDir" -}}/etc/podstart/authz{{- end }}

{{- define "podstart.clientCAFile" -}}
{{- if and .Values.grpc.tls.clientCA.name (not .Values.grpc.tls.hostPath) }}
{{- printf "%s/%s" (include "podstart.clientCADir" .) .Values.grpc.tls.clientCA.key }}
{{- else }}
{{- printf "%s/%s" (include "podstart.tlsDir" .) .Values.grpc.tls.clientCA.key }}
{{- end }}
{{- end }}

{{/* Combinations of values that cannot work, refused at render time. */}}
{{- define "podstart.validate" -}}
{{- $tcp := .Values.grpc.tcp }}
{{- $tls := .Values.grpc.tls }}
{{- if and $tcp.enabled (not $tcp.insecure) (not $tls.secretName) (not $tls.hostPath) (not $tls.certManager.enabled) }}
{{- fail "grpc.tcp.enabled serves mutual TLS: set grpc.tls.secretName (an existing Secret), grpc.tls.hostPath or grpc.tls.certManager.enabled" }}
{{- end }}
{{- if and $tcp.enabled $tls.certManager.enabled (not $tls.certManager.issuerRef.name) }}
{{- fail "grpc.tls.certManager.enabled needs grpc.tls.certManager.issuerRef.name" }}
{{- end }}
{{- if and $tcp.enabled $tcp.insecure (or $tls.secretName $tls.hostPath $tls.certManager.enabled) }}
{{- fail "grpc.tcp.insecure serves plaintext: it ignores grpc.tls; unset one of them" }}
{{- end }}
{{- if and .Values.hostNetwork $tcp.enabled (gt (int $tcp.hostPort) 0) (ne (int $tcp.hostPort) (int $tcp.port)) }}
{{- fail "with hostNetwork the gRPC port is the node's: grpc.tcp.hostPort must be 0 or equal grpc.tcp.port" }}
{{- end }}
{{- if and $tcp.enabled (eq (int $tcp.port) (int .Values.podstart.metricsPort)) }}
{{- fail "grpc.tcp.port and podstart.metricsPort must differ" }}
{{- end }}
{{- if include "podstart.metricsLoopback" . }}
{{- if not .Values.hostNetwork }}
{{- fail "podstart.metricsAddress is a loopback address: the kubelet probes the pod's IP, which the metrics server would not answer. Set hostNetwork: true (the probes then reach the node's loopback, which is the pod's) or keep 0.0.0.0 and admit only the monitoring namespace with networkPolicy" }}
{{- end }}
{{- if or .Values.serviceMonitor.enabled .Values.podMonitor.enabled }}
{{- fail "podstart.metricsAddress is a loopback address: Prometheus cannot scrape it; turn serviceMonitor and podMonitor off" }}
{{- end }}
{{- end }}
{{- if and .Values.networkPolicy.enabled .Values.hostNetwork }}
{{- fail "networkPolicy.enabled: a NetworkPolicy does not apply to hostNetwork pods; restrict the ports with the nodes' firewall" }}
{{- end }}
{{- end }}
