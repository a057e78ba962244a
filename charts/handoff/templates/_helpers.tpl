{{/* Names and labels. */}}
{{- define "handoff.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "handoff.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include "handoff.selector" (list . "bot") */}}
{{- define "handoff.selector" -}}
{{- $top := index . 0 -}}
app.kubernetes.io/name: {{ $top.Chart.Name }}
app.kubernetes.io/instance: {{ $top.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "handoff.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
BullMQ keys KEDA counts. The prefix and queue names are Handoff's own (src/queue/queues.ts
prefix "hfq", src/queue/jobs.ts queueNames, src/queue/flows.ts workstreamQueueName); BullMQ 6
keeps waiting jobs in the list <prefix>:<queue>:wait and running ones in <prefix>:<queue>:active.
*/}}
{{- define "handoff.runnerQueues" -}}
plan: hfq:handoff-plan
run: hfq:handoff-run
workstream: hfq:handoff-workstream
{{- end -}}

{{- define "handoff.graceSeconds" -}}
{{- add (div (add (int .Values.shutdownTimeoutMs) 999) 1000) (int .Values.extraGraceSeconds) -}}
{{- end -}}

{{- define "handoff.redisUrlSecret" -}}
{{- if .Values.redis.bundled.enabled -}}
{{- "" -}}
{{- else -}}
{{- required "redis.external.existingSecret: name the Secret holding the Redis URL (or set redis.bundled.enabled for a trial)" .Values.redis.external.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "handoff.redisAddress" -}}
{{- if .Values.redis.bundled.enabled -}}
{{- printf "%s-redis:6379" (include "handoff.fullname" .) -}}
{{- else -}}
{{- required "redis.external.address: host:port of your Redis, for KEDA's redis trigger" .Values.redis.external.address -}}
{{- end -}}
{{- end -}}

{{/* The Secret given to one role: include "handoff.roleSecret" (list . "bot") */}}
{{- define "handoff.roleSecret" -}}
{{- $top := index . 0 -}}
{{- $role := index $top.Values (index . 1) -}}
{{- if $role.existingSecret -}}
{{- $role.existingSecret -}}
{{- else if $top.Values.secrets.existingSecret -}}
{{- $top.Values.secrets.existingSecret -}}
{{- else if $top.Values.secrets.inline -}}
{{- printf "%s-inline" (include "handoff.fullname" $top) -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by bots and runners: include "handoff.env" (list . "bot") */}}
{{- define "handoff.env" -}}
{{- $top := index . 0 -}}
{{- $component := index . 1 -}}
- name: HANDOFF_HOST
  value: "0.0.0.0"
- name: HANDOFF_DATA_DIR
  value: /data
- name: HANDOFF_CONFIG
  value: /etc/handoff/handoff.yaml
{{- if $top.Values.policy }}
- name: HANDOFF_POLICY
  value: /etc/handoff/policy.yaml
{{- end }}
- name: HANDOFF_SHUTDOWN_TIMEOUT_MS
  value: {{ int $top.Values.shutdownTimeoutMs | quote }}
- name: HANDOFF_METRICS_PORT
  value: {{ int (index $top.Values $component).metricsPort | quote }}
- name: HANDOFF_S3_BUCKET
  value: {{ required "objectStore.s3.bucket: bots and runners are separate pods and share inputs and deliverables through an S3-compatible bucket" $top.Values.objectStore.s3.bucket | quote }}
{{- with $top.Values.objectStore.s3.prefix }}
- name: HANDOFF_S3_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- with $top.Values.objectStore.s3.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with $top.Values.objectStore.s3.endpoint }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ . | quote }}
{{- end }}
{{- if $top.Values.redis.bundled.enabled }}
- name: REDIS_URL
  value: {{ printf "redis://%s-redis:6379" (include "handoff.fullname" $top) | quote }}
{{- else }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "handoff.redisUrlSecret" $top }}
      key: {{ $top.Values.redis.external.urlKey }}
{{- end }}
{{- end -}}

{{/* Container securityContext of Handoff's own containers. */}}
{{- define "handoff.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The app image's user is handoff (uid 10001). */}}
{{- define "handoff.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* NetworkPolicy egress rules from a list of {cidr, except, ports}. */}}
{{- define "handoff.egressRules" -}}
{{- range . }}
- to:
    - ipBlock:
        cidr: {{ .cidr }}
        {{- with .except }}
        except:
          {{- toYaml . | nindent 10 }}
        {{- end }}
  ports:
    {{- range .ports }}
    - protocol: TCP
      port: {{ int . }}
    {{- end }}
{{- end }}
{{- end -}}

{{- define "handoff.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end -}}

{{- define "handoff.redisEgress" -}}
{{- if .Values.redis.bundled.enabled -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "handoff.selector" (list . "redis") | nindent 10 }}
  ports:
    - protocol: TCP
      port: 6379
{{- else -}}
{{- if not .Values.networkPolicy.egress.redis -}}
{{- fail "networkPolicy.egress.redis: name the CIDR and port of your Redis (or set networkPolicy.enabled: false)" -}}
{{- end -}}
{{- include "handoff.egressRules" .Values.networkPolicy.egress.redis -}}
{{- end -}}
{{- end -}}
