{{/* Names, labels and the settings wiring shared by every LoRA Forge template. */}}

{{- define "loraforge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped base name; components append a suffix, so keep room for it. */}}
{{- define "loraforge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "loraforge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "loraforge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "loraforge.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Call with (dict "root" $ "component" "api"). */}}
{{- define "loraforge.labels" -}}
helm.sh/chart: {{ include "loraforge.chart" .root }}
{{ include "loraforge.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: loraforge
{{- end }}

{{- define "loraforge.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "loraforge.gpuImage" -}}
{{- $img := .Values.ray.gpuWorkers.image }}
{{- printf "%s:%s" ($img.repository | default .Values.image.repository) ($img.tag | default (include "loraforge.image" . | splitList ":" | last)) }}
{{- end }}

{{- define "loraforge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "loraforge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "loraforge.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "loraforge.fullname" .) }}
{{- end }}

{{- define "loraforge.configMapName" -}}
{{- printf "%s-settings" (include "loraforge.fullname" .) }}
{{- end }}

{{- define "loraforge.postgresHost" -}}
{{- printf "%s-postgres" (include "loraforge.fullname" .) }}
{{- end }}

{{- define "loraforge.minioHost" -}}
{{- printf "%s-minio" (include "loraforge.fullname" .) }}
{{- end }}

{{- define "loraforge.rayClusterName" -}}
{{- printf "%s-ray" (include "loraforge.fullname" .) }}
{{- end }}

{{/* host:port of the S3 endpoint. */}}
{{- define "loraforge.s3Endpoint" -}}
{{- if .Values.minio.bundled }}
{{- printf "%s:9000" (include "loraforge.minioHost" .) }}
{{- else }}
{{- required "objectStorage.endpoint is required when minio.bundled is false" .Values.objectStorage.endpoint }}
{{- end }}
{{- end }}

{{- define "loraforge.prefectApiUrl" -}}
{{- if .Values.prefect.bundled }}
{{- printf "http://%s-prefect:%v/api" (include "loraforge.fullname" .) .Values.prefect.port }}
{{- else }}
{{- required "prefect.apiUrl is required when prefect.bundled is false" .Values.prefect.apiUrl }}
{{- end }}
{{- end }}

{{/* KubeRay names the head Service <cluster>-head-svc. Empty: LoRA Forge starts Ray in the worker pod. */}}
{{- define "loraforge.rayAddress" -}}
{{- if .Values.ray.enabled }}
{{- printf "ray://%s-head-svc:10001" (include "loraforge.rayClusterName" .) }}
{{- else }}
{{- .Values.ray.address }}
{{- end }}
{{- end }}

{{/* Settings for every LoRA Forge process: the ConfigMap plus the secret values, by name. */}}
{{- define "loraforge.envFrom" -}}
- configMapRef:
    name: {{ include "loraforge.configMapName" . }}
{{- end }}

{{- define "loraforge.secretEnv" -}}
{{- include "loraforge.secretEnvItems" . | trim }}
{{- end }}

{{- define "loraforge.secretEnvItems" -}}
{{- $secret := include "loraforge.secretName" . }}
{{- $keys := list "LORAFORGE_CATALOG_URL" "LORAFORGE_S3_ACCESS_KEY" "LORAFORGE_S3_SECRET_KEY" "LORAFORGE_API_TOKEN" }}
{{- if .Values.ray.auth }}
{{- $keys = append $keys "RAY_AUTH_TOKEN" }}
{{- end }}
{{- range $keys }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
{{- end }}
{{- end }}

{{/* Volumes every LoRA Forge pod mounts: model weights and a scratch LORAFORGE_HOME. */}}
{{- define "loraforge.appVolumes" -}}
- name: models
{{- if .Values.models.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.models.existingClaim }}
{{- else if .Values.models.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "loraforge.fullname" . }}-models
{{- else }}
  emptyDir: {}
{{- end }}
- name: data
  emptyDir: {}
{{- end }}

{{- define "loraforge.appVolumeMounts" -}}
- name: models
  mountPath: /models
- name: data
  mountPath: /data
{{- end }}

{{- define "loraforge.configChecksum" -}}
checksum/settings: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}

{{/* A secret value: the one given, else the one already in the cluster, else a new random one. */}}
{{- define "loraforge.keepSecret" -}}
{{- $old := get .old .key | default "" | b64dec }}
{{- .value | default $old | default (randAlphaNum 32) }}
{{- end }}

{{/*
Pod spec of a Ray node. Every node runs the LoRA Forge image with the same settings as the Prefect worker,
because stage code runs inside Ray tasks and reads the catalog, storage and models from there.
Call with (dict "root" $ "name" "ray-head" "image" IMAGE "group" GROUP_VALUES "head" BOOL).
*/}}
{{- define "loraforge.rayPodSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "loraforge.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: {{ .name }}
    image: {{ .image }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    {{- if .head }}
    ports:
      - name: gcs-server
        containerPort: 6379
      - name: dashboard
        containerPort: 8265
      - name: client
        containerPort: 10001
    {{- end }}
    envFrom:
      {{- include "loraforge.envFrom" $root | nindent 6 }}
    env:
      {{- include "loraforge.secretEnv" $root | nindent 6 }}
    resources:
      {{- toYaml .group.resources | nindent 6 }}
    securityContext:
      {{- toYaml $root.Values.containerSecurityContext | nindent 6 }}
    volumeMounts:
      {{- include "loraforge.appVolumeMounts" $root | nindent 6 }}
      # Ray's object store lives in shared memory; the container default of 64 MiB would spill to disk.
      - name: shm
        mountPath: /dev/shm
      - name: ray-tmp
        mountPath: /tmp/ray
volumes:
  {{- include "loraforge.appVolumes" $root | nindent 2 }}
  - name: shm
    emptyDir:
      medium: Memory
      sizeLimit: {{ .group.shmSize }}
  - name: ray-tmp
    emptyDir: {}
{{- with .group.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .group.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
