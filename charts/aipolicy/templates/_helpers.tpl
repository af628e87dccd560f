{{/* The release's full name: the release name, with the chart's name appended unless it has it. */}}
{{- define "aipolicy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aipolicy.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aipolicy.labels" -}}
{{ include "aipolicy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "aipolicy.serviceAccountName" -}}
{{- default (include "aipolicy.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "aipolicy.leaseName" -}}
{{- default (include "aipolicy.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}
