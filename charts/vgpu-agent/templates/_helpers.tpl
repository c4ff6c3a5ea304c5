{{/*
Names, labels, the image reference and the per-mode decisions (capabilities, mounts, environment)
shared by the templates.
*/}}

{{- define "vgpu-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vgpu-agent.fullname" -}}
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

{{- define "vgpu-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vgpu-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vgpu-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vgpu-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "vgpu-agent.serviceAccountName" -}}
{{- default (include "vgpu-agent.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* Where GPU feature labels go: off, nfd or api (a YAML `off` arrives as false). */}}
{{- define "vgpu-agent.nodeLabelsOutput" -}}
{{- $output := toString .Values.nodeLabels.output }}
{{- if has $output (list "nfd" "api") }}{{ $output }}{{ else }}off{{ end }}
{{- end }}

{{/* Whether the pod talks to the API: the config label (kubeApi) or GPU feature labels patched onto the Node. */}}
{{- define "vgpu-agent.usesApi" -}}
{{- if or .Values.kubeApi.enabled (eq (include "vgpu-agent.nodeLabelsOutput" .) "api") }}true{{ end }}
{{- end }}

{{- define "vgpu-agent.configMapName" -}}
{{- default (printf "%s-config" (include "vgpu-agent.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{/* Whether the pod mounts a config: an existing ConfigMap, or at least one key in config.map. */}}
{{- define "vgpu-agent.hasConfig" -}}
{{- if or .Values.config.existingConfigMap .Values.config.map }}true{{ end }}
{{- end }}

{{/* registry/repository:tag or registry/repository@digest; global.imageRegistry wins (air-gapped). */}}
{{- define "vgpu-agent.image" -}}
{{- $registry := .Values.global.imageRegistry | default .Values.image.registry }}
{{- $repository := .Values.image.repository }}
{{- if $registry }}{{ $repository = printf "%s/%s" $registry $repository }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{- define "vgpu-agent.imagePullSecrets" -}}
{{- $secrets := concat .Values.global.imagePullSecrets .Values.imagePullSecrets | uniq }}
{{- if $secrets }}
imagePullSecrets:
{{- range $secrets }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* plugin.deviceListStrategy as a list (it may be given as one string). */}}
{{- define "vgpu-agent.deviceListStrategies" -}}
{{- $value := .Values.plugin.deviceListStrategy }}
{{- if kindIs "string" $value }}{{ $value = splitList "," $value }}{{ end }}
{{- toJson (default (list) $value) }}
{{- end }}

{{/*
Whether the NVIDIA container toolkit must see CAP_SYS_ADMIN in the agent's containers: with a MIG
strategy (NVIDIA_MIG_MONITOR_DEVICES=all is honoured only then) and with volume-mounts (the toolkit is
then set to refuse NVIDIA_VISIBLE_DEVICES from containers without it).
*/}}
{{- define "vgpu-agent.needsSysAdmin" -}}
{{- $strategies := include "vgpu-agent.deviceListStrategies" . | fromJsonArray }}
{{- if or (has .Values.plugin.migStrategy (list "single" "mixed")) (has "volume-mounts" $strategies) }}true{{ end }}
{{- end }}

{{/* Root, no capability (SYS_ADMIN only where needed), no escalation, read-only root file system. */}}
{{- define "vgpu-agent.rootSecurityContext" -}}
runAsUser: 0
runAsGroup: 0
runAsNonRoot: false
readOnlyRootFilesystem: true
{{- if include "vgpu-agent.needsSysAdmin" . }}
{{- /* The API server refuses allowPrivilegeEscalation: false together with CAP_SYS_ADMIN. */}}
capabilities:
  drop: ["ALL"]
  add: ["SYS_ADMIN"]
{{- else }}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end }}
{{- end }}

{{- define "vgpu-agent.pluginSecurityContext" -}}
{{- if .Values.plugin.securityContext }}
{{- toYaml .Values.plugin.securityContext }}
{{- else if .Values.plugin.compatWithCPUManager }}
privileged: true
runAsUser: 0
readOnlyRootFilesystem: true
{{- else }}
{{- include "vgpu-agent.rootSecurityContext" . }}
{{- end }}
{{- end }}

{{- define "vgpu-agent.monitorSecurityContext" -}}
{{- if .Values.monitor.securityContext }}
{{- toYaml .Values.monitor.securityContext }}
{{- else }}
{{- include "vgpu-agent.rootSecurityContext" . }}
{{- end }}
{{- end }}

{{/*
HAMi-core host directories to mount: the hookPath (default /usr/local/vgpu) of every config in
config.map that has sharing.split or sharing.hami, or is HAMi's device-config.yaml (an `nvidia:`
section, read as sharing.hami with the default hookPath), plus split.hookPaths.
*/}}
{{- define "vgpu-agent.hookPaths" -}}
{{- $paths := list }}
{{- if not .Values.config.existingConfigMap }}
{{- range $key, $text := .Values.config.map }}
{{- $config := fromYaml (toString $text) }}
{{- $sharing := $config.sharing | default dict }}
{{- if kindIs "map" $sharing }}
{{- range $mode := list "split" "hami" }}
{{- if hasKey $sharing $mode }}
{{- $paths = append $paths ((get $sharing $mode | default dict).hookPath | default "/usr/local/vgpu") }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (hasKey $config "nvidia") (not (hasKey $config "sharing")) (not (hasKey $config "version")) }}
{{- $paths = append $paths "/usr/local/vgpu" }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson (concat $paths .Values.split.hookPaths | uniq | sortAlpha) }}
{{- end }}

{{/* The driver root, when it is a directory other than the host's root. */}}
{{- define "vgpu-agent.driverRootMount" -}}
{{- $root := .Values.plugin.nvidiaDriverRoot | default "/" | trimSuffix "/" }}
{{- if $root }}{{ $root }}{{ end }}
{{- end }}

{{/* Mounts of HAMi-core's host directories (plugin and monitor: the same paths). */}}
{{- define "vgpu-agent.hookPathMounts" -}}
{{- range $i, $path := include "vgpu-agent.hookPaths" . | fromJsonArray }}
- name: hook-path-{{ $i }}
  mountPath: {{ $path }}
{{- end }}
{{- end }}
