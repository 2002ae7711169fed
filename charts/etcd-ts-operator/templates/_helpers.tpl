{{/* Names, labels and the image of the etcd-ts operator chart: one place, used by every template. */}}

{{- define "etcd-ts-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "etcd-ts-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "etcd-ts-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of the operator's pods: never change them on upgrade (Deployment selectors are immutable). */}}
{{- define "etcd-ts-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "etcd-ts-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "etcd-ts-operator.labels" -}}
helm.sh/chart: {{ include "etcd-ts-operator.chart" . }}
{{ include "etcd-ts-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: etcd-ts
{{- end -}}

{{- define "etcd-ts-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "etcd-ts-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "etcd-ts-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "etcd-ts-operator.leaseName" -}}
{{- default (include "etcd-ts-operator.fullname" .) .Values.operator.leaderElection.leaseName -}}
{{- end -}}

{{/*
The labels etcd-ts-operator puts on every member pod and Service (operator/api/labels.ts); the member monitors
select by them.
*/}}
{{- define "etcd-ts-operator.memberSelector" -}}
matchLabels:
  app.kubernetes.io/name: etcd-ts
  app.kubernetes.io/managed-by: etcd-ts-operator
  app.kubernetes.io/component: member
{{- end -}}

{{/* Where the member monitors look: the values' list, else the watched namespace, else every namespace. */}}
{{- define "etcd-ts-operator.memberNamespaceSelector" -}}
{{- if .Values.members.monitor.namespaces -}}
matchNames:
{{- range .Values.members.monitor.namespaces }}
  - {{ . | quote }}
{{- end }}
{{- else if .Values.operator.watchNamespace -}}
matchNames:
  - {{ .Values.operator.watchNamespace | quote }}
{{- else -}}
any: true
{{- end -}}
{{- end -}}

{{/*
Relabelings every member scrape gets: job="etcd-ts" and etcd_cluster from the pod's instance label, which
files/etcd-alerts.yaml and the dashboard group by; pod and namespace come with the target already.
*/}}
{{- define "etcd-ts-operator.memberRelabelings" -}}
- action: replace
  targetLabel: job
  replacement: etcd-ts
- action: replace
  sourceLabels: [__meta_kubernetes_pod_label_app_kubernetes_io_instance]
  targetLabel: etcd_cluster
{{- end -}}
