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

{{/* The CPU build of the image (TORCH_VARIANT=cpu): every process but the Ray GPU workers. */}}
{{- define "loraforge.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The GPU build (TORCH_VARIANT=gpu), tagged <tag>-gpu unless image.gpuTag says otherwise. */}}
{{- define "loraforge.gpuImage" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.gpuTag | default (printf "%s-gpu" $tag)) }}
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

{{/*
The GCS address (host:6379) flow runs join as Ray drivers. KubeRay names the head Service <cluster>-head-svc.
Empty: LoRA Forge starts Ray inside the pod that runs the flow.
*/}}
{{- define "loraforge.rayAddress" -}}
{{- if .Values.ray.enabled }}
{{- printf "%s-head-svc:6379" (include "loraforge.rayClusterName" .) }}
{{- else }}
{{- if hasPrefix "ray://" .Values.ray.address }}
{{- fail "ray.address must be the cluster's GCS address, host:6379: Ray Client (ray://) cannot run the model stages" }}
{{- end }}
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
{{ include "loraforge.secretEnvItem" (dict "secret" $secret "key" .) }}
{{- end }}
{{- end }}

{{/* One variable read from the Secret under its own name. Call with (dict "secret" NAME "key" KEY). */}}
{{- define "loraforge.secretEnvItem" -}}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end }}

{{/*
Volumes every LoRA Forge pod mounts: model weights on a shared claim (models.existingClaim, or the one
templates/models-pvc.yaml creates), so every Ray node and driver finds the same weights, and a scratch
LORAFORGE_HOME.
*/}}
{{- define "loraforge.modelsClaim" -}}
{{- .Values.models.existingClaim | default (printf "%s-models" (include "loraforge.fullname" .)) }}
{{- end }}

{{- define "loraforge.appVolumes" -}}
- name: models
  persistentVolumeClaim:
    claimName: {{ include "loraforge.modelsClaim" . }}
    {{- if .Values.models.readOnly }}
    readOnly: true
    {{- end }}
- name: data
  emptyDir: {}
{{- end }}

{{- define "loraforge.appVolumeMounts" -}}
- name: models
  mountPath: /models
  {{- if .Values.models.readOnly }}
  readOnly: true
  {{- end }}
- name: data
  mountPath: /data
{{- end }}

{{/*
Ray drivers (the API and the Prefect worker) join the cluster as a node with no CPUs or GPUs before their
command runs (infra/docker/ray-node-entrypoint.sh): a driver needs a raylet on its own host. tini stays PID 1
and reaps the raylet's processes.
*/}}
{{- define "loraforge.rayDriverCommand" -}}
[/usr/bin/tini, --, /usr/local/bin/ray-node-entrypoint]
{{- end }}

{{/* Ray's object store of a node lives in /dev/shm; the container default of 64 MiB would spill to disk. */}}
{{- define "loraforge.shmVolume" -}}
- name: shm
  emptyDir:
    medium: Memory
    sizeLimit: {{ . }}
{{- end }}

{{/*
`loraforge db upgrade`, retried until Postgres answers or migrations.waitTimeoutSeconds pass. Concurrent runs
(several pods starting at once) are safe: the command serializes on a Postgres advisory lock, and a try that
fails anyway is retried.
*/}}
{{- define "loraforge.migrateScript" -}}
{{- $m := .Values.migrations -}}
deadline=$(( $(date +%s) + {{ int $m.waitTimeoutSeconds }} ))
until loraforge db upgrade; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "catalog migrations did not succeed within {{ int $m.waitTimeoutSeconds }}s" >&2
    exit 1
  fi
  echo "catalog not ready (is Postgres still starting?); retrying in {{ int $m.retryIntervalSeconds }}s" >&2
  sleep {{ int $m.retryIntervalSeconds }}
done
{{- end }}

{{/*
The init container that migrates the catalog before the API or the worker starts. This, not a pre-install
hook, is what makes a fresh `helm install` work: Helm runs pre-install hooks before it creates any other
resource, so the chart's own Postgres would not exist yet and the hook would wait until `helm install` times
out. Call with the root context.
*/}}
{{- define "loraforge.migrateInitContainer" -}}
- name: migrate
  image: {{ include "loraforge.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: [sh, -c]
  args:
    - |
      {{- include "loraforge.migrateScript" . | nindent 6 }}
  envFrom:
    {{- include "loraforge.envFrom" . | nindent 4 }}
  env:
    {{- include "loraforge.secretEnv" . | nindent 4 }}
  resources:
    {{- toYaml .Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.containerSecurityContext | nindent 4 }}
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
{{- /* With autoscaling, the head's autoscaler sidecar talks to the Kubernetes API: without a serviceAccountName
  KubeRay gives the head a service account of its own, named after the RayCluster and bound to the Role the
  autoscaler needs, and its token must be mounted. */ -}}
{{- if and .head $root.Values.ray.enableInTreeAutoscaling -}}
automountServiceAccountToken: true
{{- else -}}
serviceAccountName: {{ include "loraforge.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- end }}
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
    # No Ray Client port: drivers join through the GCS (6379), see loraforge.rayAddress.
    ports:
      - name: gcs-server
        containerPort: 6379
      - name: dashboard
        containerPort: 8265
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
      - name: shm
        mountPath: /dev/shm
      - name: ray-tmp
        mountPath: /tmp/ray
volumes:
  {{- include "loraforge.appVolumes" $root | nindent 2 }}
  {{- include "loraforge.shmVolume" .group.shmSize | nindent 2 }}
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

{{/* The worker's probe: Prefect's runner /health on 127.0.0.1 (the image has Python, not curl). Call with the port. */}}
{{- define "loraforge.workerHealthCheck" -}}
exec:
  command:
    - python
    - -c
    - import urllib.request; urllib.request.urlopen('http://127.0.0.1:{{ . }}/health', timeout=4)
timeoutSeconds: 5
{{- end }}
