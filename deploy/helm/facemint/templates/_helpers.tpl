{{/*
Names, labels and the component table shared by every template.

Most named templates take a context `(dict "root" $ "component" "<name>")`; "facemint.name", "facemint.fullname"
and "facemint.chart" take the root context `$`.
*/}}

{{/* The chart name, or nameOverride: the app.kubernetes.io/name label. */}}
{{- define "facemint.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-<chart>" (or the release name alone when it contains the chart name), at most 63 characters. */}}
{{- define "facemint.fullname" -}}
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

{{/* The helm.sh/chart label: "<chart>-<version>". */}}
{{- define "facemint.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
"<fullname>-<component>": the prefix is shortened, never the component, so that two components can never end up
with the same 63-character name.
*/}}
{{- define "facemint.componentName" -}}
{{- $max := sub 62 (len .component) | int }}
{{- printf "%s-%s" (include "facemint.fullname" .root | trunc $max | trimSuffix "-") .component }}
{{- end }}

{{/* Labels that select a component's pods; never includes helm.sh/chart or the version, which change. */}}
{{- define "facemint.selectorLabels" -}}
app.kubernetes.io/name: {{ include "facemint.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* Labels of pod templates: the selector labels plus stable descriptive labels. */}}
{{- define "facemint.podLabels" -}}
{{ include "facemint.selectorLabels" . }}
app.kubernetes.io/part-of: facemint
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "facemint.labels" -}}
helm.sh/chart: {{ include "facemint.chart" .root }}
{{ include "facemint.podLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag}; an empty tag means the chart's appVersion. */}}
{{- define "facemint.image" -}}
{{- $registry := .root.Values.imageRegistry | trimSuffix "/" }}
{{- printf "%s%s:%s" (ternary (printf "%s/" $registry) "" (ne $registry "")) .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* The ServiceAccount a component's pods run as. */}}
{{- define "facemint.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create }}
{{- include "facemint.componentName" . }}
{{- else -}}
default
{{- end }}
{{- end }}

{{/*
The component table: which values block configures a component, its settings prefix, its ports and what it uses.
`targets` maps each gRPC service it calls to the setting that holds the address (FACEMINT_<PREFIX>_<setting>,
set to <release>-<target>:50051). `role`: the PostgreSQL role of a `database` component, which owns its schema and
applies its migrations at start (ADR 14); the migration Job creates the roles first. It mirrors the settings classes (settings.py of each service); deploy/__init__.py
(COMPONENTS) lists the same components and `make helm-lint` checks that the two agree.
*/}}
{{- define "facemint.components" -}}
gateway:
  key: gateway
  envPrefix: GATEWAY
  grpc: false
  httpPort: 8080
  targets:
    task-orchestrator: ORCHESTRATOR_TARGET
    library: LIBRARY_TARGET
    webhook-dispatcher: WEBHOOK_TARGET
  database: true
  role: facemint_gateway
  nats: false
  objectStore: true
  qdrant: false
  models: false
task-orchestrator:
  key: taskOrchestrator
  envPrefix: TASK_ORCHESTRATOR
  grpc: true
  httpPort: 8081
  targets:
    media-decoder: MEDIA_DECODER_TARGET
    library: LIBRARY_TARGET
  database: true
  role: facemint_task_orchestrator
  nats: true
  objectStore: false
  qdrant: false
  models: false
media-decoder:
  key: mediaDecoder
  envPrefix: MEDIA_DECODER
  grpc: true
  httpPort: 8081
  targets:
    inference: INFERENCE__TARGET
  database: false
  nats: false
  objectStore: false
  qdrant: false
  models: false
inference:
  key: inference
  envPrefix: INFERENCE
  grpc: true
  httpPort: 8081
  targets: {}
  database: false
  nats: false
  objectStore: false
  qdrant: false
  models: true
library:
  key: library
  envPrefix: LIBRARY
  grpc: true
  httpPort: 8081
  targets:
    media-decoder: MEDIA_DECODER_TARGET
  database: true
  role: facemint_library
  nats: false
  objectStore: false
  qdrant: true
  models: false
webhook-dispatcher:
  key: webhookDispatcher
  envPrefix: WEBHOOK_DISPATCHER
  grpc: true
  httpPort: 8081
  targets: {}
  database: true
  role: facemint_webhook_dispatcher
  nats: true
  objectStore: false
  qdrant: false
  models: false
{{- end }}

{{/* One component's row of the table above, as YAML (use with fromYaml). */}}
{{- define "facemint.component" -}}
{{- $all := include "facemint.components" .root | fromYaml }}
{{- if not (hasKey $all .component) }}
{{- fail (printf "unknown component %q" .component) }}
{{- end }}
{{- toYaml (index $all .component) }}
{{- end }}

{{/* The runner the inference service uses: "triton" or "onnxruntime". */}}
{{- define "facemint.inferenceRunner" -}}
{{- $runner := .Values.inference.runner }}
{{- if eq $runner "auto" }}
{{- if or .Values.triton.enabled .Values.triton.externalUrl }}triton{{ else }}onnxruntime{{ end }}
{{- else }}
{{- $runner }}
{{- end }}
{{- end }}

{{/* host:port of the Triton gRPC endpoint. */}}
{{- define "facemint.tritonUrl" -}}
{{- if .Values.triton.externalUrl }}
{{- .Values.triton.externalUrl }}
{{- else }}
{{- /* The headless Service resolves to every ready Triton pod; the client balances each call over them. */}}
{{- printf "dns:///%s-headless.%s.svc.%s:8001" (include "facemint.componentName" (dict "root" . "component" "triton")) .Release.Namespace .Values.clusterDomain }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the PostgreSQL DSN. */}}
{{- define "facemint.postgresqlSecret" -}}
{{- if .Values.postgresql.existingSecret }}
{{- .Values.postgresql.existingSecret }}
{{- else if .Values.postgresql.dsn }}
{{- include "facemint.componentName" (dict "root" . "component" "postgresql") }}
{{- else }}
{{- fail "set postgresql.existingSecret (a Secret holding the DSN) or postgresql.dsn (development only)" }}
{{- end }}
{{- end }}

{{/*
A digest of the Secrets a component reads: a change rolls its pods. Secrets created outside the chart are read with
`lookup` at install/upgrade time (`helm template`, which has no cluster, sees none of them); the development DSN
Secret the chart renders itself is hashed from its value.
*/}}
{{- define "facemint.secretsChecksum" -}}
{{- $root := .root }}
{{- $c := include "facemint.component" . | fromYaml }}
{{- $names := list }}
{{- if $c.database }}{{ $names = append $names (include "facemint.postgresqlSecret" $root) }}{{ end }}
{{- if and $c.objectStore $root.Values.objectStore.endpoint }}{{ $names = append $names $root.Values.objectStore.existingSecret }}{{ end }}
{{- if and $c.qdrant $root.Values.qdrant.existingSecret }}{{ $names = append $names $root.Values.qdrant.existingSecret }}{{ end }}
{{- if and $c.nats $root.Values.nats.existingSecret }}{{ $names = append $names $root.Values.nats.existingSecret }}{{ end }}
{{- if and $c.nats $root.Values.nats.tls.existingSecret }}{{ $names = append $names $root.Values.nats.tls.existingSecret }}{{ end }}
{{- $parts := list }}
{{- range $name := $names }}
{{- $parts = append $parts (printf "%s=%s" $name ((lookup "v1" "Secret" $root.Release.Namespace $name).data | default dict | toJson)) }}
{{- end }}
{{- if and $c.database (not $root.Values.postgresql.existingSecret) }}{{ $parts = append $parts $root.Values.postgresql.dsn }}{{ end }}
{{- join ";" $parts | sha256sum }}
{{- end }}

{{/* The model repository volume (a copy in an emptyDir, or a PVC). */}}
{{- define "facemint.modelsVolume" -}}
- name: models
{{- if eq .Values.models.source "pvc" }}
  persistentVolumeClaim:
    claimName: {{ required "models.pvc.existingClaim is required when models.source is pvc" .Values.models.pvc.existingClaim }}
    readOnly: true
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.models.sizeLimit }}
{{- end }}
{{- end }}

{{/* The initContainer that copies the model repository out of models.image (only when models.source is image). */}}
{{- define "facemint.modelsInitContainer" -}}
{{- if eq .Values.models.source "image" }}
- name: models
  image: {{ include "facemint.image" (dict "root" . "image" .Values.models.image) }}
  imagePullPolicy: {{ .Values.models.image.pullPolicy }}
  command:
    - cp
    - -R
    - {{ printf "%s/." (trimSuffix "/" .Values.models.image.path) }}
    - {{ .Values.models.mountPath }}
  securityContext: {{- toYaml .Values.containerSecurityContext | nindent 4 }}
  resources:
    requests:
      cpu: 50m
      memory: 64Mi
    limits:
      memory: 256Mi
  volumeMounts:
    - name: models
      mountPath: {{ .Values.models.mountPath }}
{{- end }}
{{- end }}

{{/* The mount of the model repository in a runtime container. */}}
{{- define "facemint.modelsMount" -}}
- name: models
  mountPath: {{ .Values.models.mountPath }}
  readOnly: true
{{- if and (eq .Values.models.source "pvc") .Values.models.pvc.subPath }}
  subPath: {{ .Values.models.pvc.subPath }}
{{- end }}
{{- end }}
