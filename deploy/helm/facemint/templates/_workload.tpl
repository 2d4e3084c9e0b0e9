{{/*
The resources of one Facemint service. templates/<component>/*.yaml each include one of these with
(dict "root" $ "component" "<component>"); a disabled component renders nothing.
*/}}

{{/* The non-secret settings of a component as a map of environment variables. */}}
{{- define "facemint.settings" -}}
{{- $root := .root }}
{{- $c := include "facemint.component" . | fromYaml }}
{{- $values := index $root.Values $c.key }}
{{- $all := include "facemint.components" $root | fromYaml }}
{{- $p := printf "FACEMINT_%s_" $c.envPrefix }}
{{- $env := dict }}
{{- $_ := set $env (print $p "HTTP__HOST") "0.0.0.0" }}
{{- $_ := set $env (print $p "HTTP__PORT") (toString $c.httpPort) }}
{{- if $c.grpc }}
{{- $_ := set $env (print $p "GRPC__HOST") "0.0.0.0" }}
{{- $_ := set $env (print $p "GRPC__PORT") "50051" }}
{{- end }}
{{- $_ := set $env (print $p "LOG__LEVEL") $root.Values.config.logLevel }}
{{- $_ := set $env (print $p "TRACING__OTLP_ENDPOINT") $root.Values.config.otlpEndpoint }}
{{- $_ := set $env (print $p "TRACING__INSECURE") (toString $root.Values.config.otlpInsecure) }}
{{- $_ := set $env (print $p "TRACING__SAMPLE_RATIO") (toString $root.Values.config.traceSampleRatio) }}
{{- $_ := set $env (print $p "SHUTDOWN_GRACE_SECONDS") (toString $root.Values.config.shutdownGraceSeconds) }}
{{- range $target, $setting := $c.targets }}
{{- if (index $root.Values (index $all $target).key).enabled }}
{{- $_ := set $env (print $p $setting) (printf "%s:50051" (include "facemint.componentName" (dict "root" $root "component" $target))) }}
{{- end }}
{{- end }}
{{- if $c.database }}
{{- $_ := set $env (print $p "DATABASE__MAX_POOL_SIZE") (toString $root.Values.postgresql.poolSize) }}
{{- end }}
{{- if $c.nats }}
{{- if not $root.Values.nats.existingSecret }}
{{- $_ := set $env (print $p "NATS__URL") $root.Values.nats.url }}
{{- end }}
{{- with $root.Values.nats.tls.existingSecret }}
{{- $_ := set $env (print $p "NATS__TLS_CA_FILE") "/etc/facemint/nats-tls/ca.crt" }}
{{- if $root.Values.nats.tls.clientCertificate }}
{{- $_ := set $env (print $p "NATS__TLS_CERT_FILE") "/etc/facemint/nats-tls/tls.crt" }}
{{- $_ := set $env (print $p "NATS__TLS_KEY_FILE") "/etc/facemint/nats-tls/tls.key" }}
{{- end }}
{{- end }}
{{- $_ := set $env (print $p "NATS__STREAM_REPLICAS") (toString $root.Values.nats.streamReplicas) }}
{{- end }}
{{- if and $c.objectStore $root.Values.objectStore.endpoint }}
{{- $_ := set $env (print $p "OBJECT_STORE__ENDPOINT") $root.Values.objectStore.endpoint }}
{{- $_ := set $env (print $p "OBJECT_STORE__REGION") $root.Values.objectStore.region }}
{{- $_ := set $env (print $p "OBJECT_STORE__BUCKET") $root.Values.objectStore.bucket }}
{{- end }}
{{- if $c.qdrant }}
{{- $_ := set $env (print $p "VECTOR_BACKEND") "qdrant" }}
{{- $_ := set $env (print $p "QDRANT__URL") $root.Values.qdrant.url }}
{{- $_ := set $env (print $p "QDRANT__SHARD_NUMBER") (toString $root.Values.qdrant.shardNumber) }}
{{- $_ := set $env (print $p "QDRANT__REPLICATION_FACTOR") (toString $root.Values.qdrant.replicationFactor) }}
{{- $_ := set $env (print $p "QDRANT__WRITE_CONSISTENCY_FACTOR") (toString $root.Values.qdrant.writeConsistencyFactor) }}
{{- end }}
{{- if $c.models }}
{{- $runner := include "facemint.inferenceRunner" $root }}
{{- $_ := set $env (print $p "RUNNER") $runner }}
{{- $_ := set $env (print $p "PACK") $values.pack }}
{{- $_ := set $env (print $p "MODEL_DIR") $root.Values.models.mountPath }}
{{- if eq $runner "triton" }}
{{- $_ := set $env (print $p "TRITON__URL") (include "facemint.tritonUrl" $root) }}
{{- $_ := set $env (print $p "TRITON__LOAD_BALANCING") "round_robin" }}
{{- end }}
{{- end }}
{{- range $k, $v := $values.env }}
{{- $_ := set $env $k (toString $v) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{- define "facemint.configmap" -}}
{{- $c := include "facemint.component" . | fromYaml }}
{{- if (index .root.Values $c.key).enabled }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "facemint.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "facemint.labels" . | nindent 4 }}
data:
  {{- include "facemint.settings" . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Environment variables read from Secrets. */}}
{{- define "facemint.secretEnv" -}}
{{- $root := .root }}
{{- $c := include "facemint.component" . | fromYaml }}
{{- $p := printf "FACEMINT_%s_" $c.envPrefix }}
{{- if $c.database }}
- name: {{ print $p "DATABASE__DSN" }}
  valueFrom:
    secretKeyRef:
      name: {{ include "facemint.postgresqlSecret" $root }}
      key: {{ printf "%s-dsn" .component }}
{{- end }}
{{- if and $c.nats $root.Values.nats.existingSecret }}
- name: {{ print $p "NATS__URL" }}
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.nats.existingSecret }}
      key: {{ $root.Values.nats.existingSecretKey }}
{{- end }}
{{- if and $c.objectStore $root.Values.objectStore.endpoint }}
- name: {{ print $p "OBJECT_STORE__ACCESS_KEY" }}
  valueFrom:
    secretKeyRef:
      name: {{ required "objectStore.existingSecret is required" $root.Values.objectStore.existingSecret }}
      key: {{ $root.Values.objectStore.accessKeyKey }}
- name: {{ print $p "OBJECT_STORE__SECRET_KEY" }}
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.objectStore.existingSecret }}
      key: {{ $root.Values.objectStore.secretKeyKey }}
{{- end }}
{{- if and $c.qdrant $root.Values.qdrant.existingSecret }}
- name: {{ print $p "QDRANT__API_KEY" }}
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.qdrant.existingSecret }}
      key: {{ $root.Values.qdrant.existingSecretKey }}
{{- end }}
{{- end }}

{{- define "facemint.deployment" -}}
{{- $root := .root }}
{{- $c := include "facemint.component" . | fromYaml }}
{{- $values := index $root.Values $c.key }}
{{- if $values.enabled }}
{{- /* The inference service reads the model repository with both runners (Triton mode still loads
       face_mesh/canonical_face_468.npy from it). */}}
{{- $useModels := $c.models }}
{{- $secretEnv := include "facemint.secretEnv" . | trim }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "facemint.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "facemint.labels" . | nindent 4 }}
spec:
  {{- if not $values.autoscaling.enabled }}
  replicas: {{ $values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "facemint.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "facemint.podLabels" . | nindent 8 }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "facemint.settings" . | sha256sum }}
        checksum/secrets: {{ include "facemint.secretsChecksum" . }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "facemint.serviceAccountName" . }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
      # Service links would inject FACEMINT_<SERVICE>_PORT=tcp://... variables that collide with the settings prefix.
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $values.runtimeClassName }}
      runtimeClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if and $useModels (eq $root.Values.models.source "image") }}
      initContainers:
        {{- include "facemint.modelsInitContainer" $root | trim | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "facemint.image" (dict "root" $root "image" $values.image) }}
          imagePullPolicy: {{ $values.image.pullPolicy }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ $c.httpPort }}
              protocol: TCP
            {{- if $c.grpc }}
            - name: grpc
              containerPort: 50051
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "facemint.componentName" . }}
          {{- if or $secretEnv $values.extraEnv }}
          env:
            {{- with $secretEnv }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- end }}
          # The HTTP listener starts once the service has set itself up (models loaded, pools open): the startup
          # probe gives it up to 5 minutes before liveness takes over.
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 60
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          {{- if $root.Values.preStopSleepSeconds }}
          # Keep serving while the endpoint is removed from Services and load balancers; SIGTERM comes after.
          lifecycle:
            preStop:
              sleep:
                seconds: {{ $root.Values.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $useModels }}
            {{- include "facemint.modelsMount" $root | trim | nindent 12 }}
            {{- end }}
            {{- if and $c.nats $root.Values.nats.tls.existingSecret }}
            - name: nats-tls
              mountPath: /etc/facemint/nats-tls
              readOnly: true
            {{- end }}
            {{- with $values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
        {{- with $values.extraContainers }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $values.tmpSizeLimit }}
        {{- if $useModels }}
        {{- include "facemint.modelsVolume" $root | trim | nindent 8 }}
        {{- end }}
        {{- if and $c.nats $root.Values.nats.tls.existingSecret }}
        - name: nats-tls
          secret:
            secretName: {{ $root.Values.nats.tls.existingSecret }}
        {{- end }}
        {{- with $values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- range . }}
        {{- $constraint := . }}
        {{- if not .labelSelector }}
        {{- $constraint = merge (dict "labelSelector" (dict "matchLabels" (include "facemint.selectorLabels" $ | fromYaml))) . }}
        {{- end }}
        - {{- toYaml $constraint | nindent 10 }}
        {{- end }}
      {{- end }}
{{- end }}
{{- end }}

{{- define "facemint.service" -}}
{{- $root := .root }}
{{- $c := include "facemint.component" . | fromYaml }}
{{- $values := index $root.Values $c.key }}
{{- if $values.enabled }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "facemint.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "facemint.labels" . | nindent 4 }}
  {{- with (dig "service" "annotations" dict $values) }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ dig "service" "type" "ClusterIP" $values }}
  selector:
    {{- include "facemint.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $c.httpPort }}
      targetPort: http
      protocol: TCP
      appProtocol: http
    {{- if $c.grpc }}
    - name: grpc
      port: 50051
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    {{- end }}
{{- end }}
{{- end }}

{{- define "facemint.hpa" -}}
{{- $root := .root }}
{{- $c := include "facemint.component" . | fromYaml }}
{{- $values := index $root.Values $c.key }}
{{- if and $values.enabled $values.autoscaling.enabled }}
{{- if gt (int $values.autoscaling.minReplicas) (int $values.autoscaling.maxReplicas) }}
{{- fail (printf "%s.autoscaling.minReplicas is above maxReplicas" $c.key) }}
{{- end }}
{{- if and $root.Values.keda.enabled (has .component (list "task-orchestrator" "media-decoder" "inference")) }}
{{- /* The work behind these three is the detection job queue: scale on the lag of both its consumers (videos and
       GIFs on orchestrator-detect, images on orchestrator-detect-image; KEDA follows the trigger asking for the most
       replicas), and on CPU. KEDA manages the HorizontalPodAutoscaler itself, so the chart renders none for them. */}}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "facemint.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "facemint.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "facemint.componentName" . }}
  minReplicaCount: {{ $values.autoscaling.minReplicas }}
  maxReplicaCount: {{ $values.autoscaling.maxReplicas }}
  pollingInterval: {{ $root.Values.keda.pollingInterval }}
  cooldownPeriod: {{ $root.Values.keda.cooldownPeriod }}
  triggers:
    {{- range $consumer := list "orchestrator-detect" "orchestrator-detect-image" }}
    - type: nats-jetstream
      metadata:
        natsServerMonitoringEndpoint: {{ required "keda.natsMonitoringEndpoint is required with keda.enabled" $root.Values.keda.natsMonitoringEndpoint | quote }}
        account: {{ $root.Values.keda.account | quote }}
        stream: FACEMINT_JOBS
        consumer: {{ $consumer }}
        lagThreshold: {{ index $root.Values.keda.lagThreshold $c.key | toString | quote }}
        activationLagThreshold: "0"
        useHttps: {{ $root.Values.keda.useHttps | toString | quote }}
    {{- end }}
    - type: cpu
      metricType: Utilization
      metadata:
        value: {{ $values.autoscaling.targetCPUUtilizationPercentage | toString | quote }}
{{- else }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "facemint.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "facemint.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "facemint.componentName" . }}
  minReplicas: {{ $values.autoscaling.minReplicas }}
  maxReplicas: {{ $values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}
{{- end }}

{{- define "facemint.pdb" -}}
{{- $root := .root }}
{{- $c := include "facemint.component" . | fromYaml }}
{{- $values := index $root.Values $c.key }}
{{- if and $values.enabled $values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "facemint.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "facemint.labels" . | nindent 4 }}
spec:
  minAvailable: {{ $values.pdb.minAvailable }}
  selector:
    matchLabels:
      {{- include "facemint.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{- define "facemint.serviceaccount" -}}
{{- $root := .root }}
{{- $c := include "facemint.component" . | fromYaml }}
{{- if and (index $root.Values $c.key).enabled $root.Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "facemint.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "facemint.labels" . | nindent 4 }}
  {{- with $root.Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
{{- end }}
{{- end }}
