{{- /*
Template subset. The chart is rendered in CI without Helm (crates/medic/tests/helm_chart.rs has
a small renderer that fails on anything outside this list), so keep every template to:
  - output: {{ .Values.a.b }}, {{ .Release.Name }}, {{ .Release.Namespace }},
    {{ .Release.Service }}, {{ .Chart.Name }}, {{ .Chart.Version }}, {{ .Chart.AppVersion }};
    `.` is the current value (the root, or the item inside `range`), `$` always the root
  - {{- and -}} whitespace trimming; comments (slash-star inside the braces, on its own)
  - {{ if PIPELINE }} ... {{ else if PIPELINE }} ... {{ else }} ... {{ end }} on truthiness
    (false, 0, "", null, empty list/map are false)
  - {{ range PIPELINE }} ... {{ end }} over a list
  - {{ define "name" }} ... {{ end }} here, and {{ include "name" VALUE }}
  - pipelines `a | f b` (the left side is f's last argument) and parentheses `(f a b)`
  - functions: toYaml, nindent, indent, quote, default, printf (%s only), contains, trunc,
    trimSuffix, int, ne, not, fail, sha256sum; string literals "..." with \n \t \" \\ escapes
No `with`, variables ($x :=), `template`, `tpl`, `lookup`, or other Sprig functions.
*/ -}}

{{/* The chart's name. */}}
{{- define "medic.name" -}}
{{ .Chart.Name }}
{{- end }}

{{/* Name of every object: the release name, plus "-medic" unless it already says medic. */}}
{{- define "medic.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{ .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains .Chart.Name .Release.Name -}}
{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}
{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end -}}
{{- end }}

{{/* Labels that select the pod; they never change across upgrades. */}}
{{- define "medic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "medic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "medic.labels" -}}
{{ include "medic.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The ServiceAccount medic runs as. */}}
{{- define "medic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Values.serviceAccount.name | default (include "medic.fullname" .) }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end }}

{{/* The image reference: repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "medic.image" -}}
{{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Where the SQLite store and the ConfigMap history live (the data volume). */}}
{{- define "medic.dataDir" -}}
/var/lib/medic
{{- end }}

{{/*
RBAC rules: generated text, the output of `medic rbac --config medic.yaml` for this chart's
default config and policies (its sources watch pods, events, workloads, configmaps, nodes, topology;
its actuator runs restart_workload, rollback_release, revert_config, scale_workload,
set_resources). crates/medic/tests/helm_chart.rs fails when they drift from `medic rbac`.
Namespaced rules go to a ClusterRole, or to a Role per namespace when `namespaces` is set.
*/}}
{{- define "medic.namespacedRules" -}}
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "patch", "watch"]
- apiGroups: [""]
  resources: ["endpoints", "events", "services"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apps"]
  resources: ["controllerrevisions"]
  verbs: ["list"]
- apiGroups: ["apps"]
  resources: ["daemonsets", "deployments", "statefulsets"]
  verbs: ["get", "list", "patch", "watch"]
- apiGroups: ["apps"]
  resources: ["deployments/scale", "statefulsets/scale"]
  verbs: ["patch"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "patch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
{{- end }}

{{/* Rules on objects outside namespaces (nodes): always in a ClusterRole. */}}
{{- define "medic.clusterRules" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list", "watch"]
{{- end }}

{{/* medic.yaml. */}}
{{- define "medic.config" -}}
# medic.yaml, rendered by the medic chart {{ .Chart.Version }} from the release's values.
agent:
  {{- toYaml .Values.config.agent | nindent 2 }}
sources:
  # Watches of the API server with the pod's ServiceAccount (in-cluster credentials).
  - name: cluster
    type: kubernetes
    {{- if .Values.namespaces }}
    namespaces:
      {{- toYaml .Values.namespaces | nindent 6 }}
    {{- end }}
    exclude_namespaces:
      {{- toYaml .Values.excludeNamespaces | nindent 6 }}
    {{- if .Values.config.kubernetesSource }}
    {{- toYaml .Values.config.kubernetesSource | nindent 4 }}
    {{- end }}
detectors:
  {{- toYaml .Values.config.detectors | nindent 2 }}
correlation:
  {{- toYaml .Values.config.correlation | nindent 2 }}
policy_files: ["policies.yaml"]
guards:
  {{- toYaml .Values.config.guards | nindent 2 }}
actuators:
  # Changes through the API server with the pod's ServiceAccount.
  kubernetes:
    {{- if .Values.namespaces }}
    namespaces:
      {{- toYaml .Values.namespaces | nindent 6 }}
    {{- end }}
    exclude_namespaces:
      {{- toYaml .Values.excludeNamespaces | nindent 6 }}
    # The ConfigMap contents medic saw, so revert_config can restore them after a restart.
    history_file: "${MEDIC_STATE_DIR}/medic-configmaps.json"
    {{- if .Values.config.kubernetesActuator }}
    {{- toYaml .Values.config.kubernetesActuator | nindent 4 }}
    {{- end }}
store:
  sqlite: "${MEDIC_STORE}"
escalation:
  {{- toYaml .Values.config.escalation | nindent 2 }}
{{- if .Values.config.extra }}
{{ toYaml .Values.config.extra }}
{{- end }}
{{- end }}

{{/* policies.yaml. */}}
{{- define "medic.policies" -}}
policies:
  {{- toYaml .Values.policies | nindent 2 }}
{{- end }}
